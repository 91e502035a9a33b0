"""Gateway health: what the dispatcher records after each batch, and what the dashboard says."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from homelink.messaging.health import gateway_health_record, gateway_problems
from homelink.messaging.models import GatewayHealth

pytestmark = pytest.mark.django_db


def test_errors_count_up_and_a_success_clears_them() -> None:
    gateway_health_record("twilio", ok=False, error="twilio 20503: overloaded")
    gateway_health_record("twilio", ok=False, error="twilio: connection failed (TimeoutError)")
    row = GatewayHealth.objects.get(gateway="twilio")
    assert row.failures_in_row == 2
    assert row.last_error == "twilio: connection failed (TimeoutError)"
    assert row.last_ok_at is None
    gateway_health_record("twilio", ok=True)
    row.refresh_from_db()
    assert row.failures_in_row == 0
    assert row.last_ok_at is not None
    assert row.last_error_at is not None


def test_a_first_success_makes_the_row() -> None:
    gateway_health_record("http", ok=True)
    row = GatewayHealth.objects.get(gateway="http")
    assert (row.failures_in_row, row.last_error_at) == (0, None)


def test_no_personal_data_in_the_error() -> None:
    gateway_health_record(
        "http", ok=False, error="http 400: The 'To' number +447700900123 (pat@example.org) is bad"
    )
    assert GatewayHealth.objects.get().last_error == "http 400: The 'To' number … (…) is bad"


def test_problems_are_recent_errors_newer_than_the_last_success() -> None:
    now = timezone.now()
    gateway_health_record("twilio", ok=False, error="twilio 20503: overloaded")
    gateway_health_record("twilio", ok=False, error="twilio 20503: overloaded")
    gateway_health_record("http", ok=False, error="http 503")
    gateway_health_record("http", ok=True)
    gateway_health_record("email", ok=False, error="SMTP: connection refused")
    GatewayHealth.objects.filter(gateway="email").update(last_error_at=now - timedelta(minutes=31))
    problems = gateway_problems(now)
    assert len(problems) == 1
    (sentence,) = problems
    assert sentence.startswith("Twilio (SMS) has failed 2 times in a row, last at ")
    assert sentence.endswith(": twilio 20503: overloaded.")


def test_one_failure_reads_well() -> None:
    gateway_health_record("custom", ok=False, error="down")
    assert gateway_problems(timezone.now())[0].startswith("The custom gateway has failed once,")


def test_nothing_wrong_no_sentences() -> None:
    gateway_health_record("twilio", ok=True)
    assert gateway_problems(timezone.now()) == []


@pytest.mark.django_db(transaction=True)
def test_workers_recording_at_once_lose_no_failure() -> None:
    workers = 6
    barrier = threading.Barrier(workers)
    errors: list[BaseException] = []

    def record() -> None:
        try:
            barrier.wait(timeout=10)
            gateway_health_record("twilio", ok=False, error="twilio 20503: overloaded")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=record) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert GatewayHealth.objects.get(gateway="twilio").failures_in_row == workers
