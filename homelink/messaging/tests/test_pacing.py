"""Sending at a real provider's pace, urgent work first and fair shares, in one process on
either database (homelink/messaging/tests/test_delivery_under_load.py runs the same promises
through several ``homelink worker`` processes on PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from collections.abc import Iterator
from email.utils import format_datetime
from typing import Any

import pytest
from django.utils import timezone

from homelink.bench.world import parents_school
from homelink.mail_testing import Mailbox
from homelink.messaging.audience import Audience
from homelink.messaging.dispatch import claim, drain
from homelink.messaging.fakes import FakeSmsGateway
from homelink.messaging.gateways.connection import Answer, answer_error, parse_retry_after
from homelink.messaging.lanes import place
from homelink.messaging.models import Delivery, GatewayPace, Message
from homelink.messaging.pacing import Pace, outage_backoff
from homelink.messaging.services import Draft, message_send
from homelink.schools.models import School

pytestmark = pytest.mark.django_db

Status = Delivery.Status


def send(school: School, mode: str = "sms", **kw: Any) -> Message:
    values: dict[str, Any] = {
        "mode": mode,
        "audience": Audience(),
        "subject": "Closed",
        "email_body": "Dear {name}, closed today.",
        "sms_text": "Dear {name}, closed today.",
    }
    values.update(kw)
    return message_send(school=school, draft=Draft(**values), actor="test", confirmed_large=True)


@pytest.fixture
def limited(settings: Any) -> Iterator[FakeSmsGateway]:
    """A provider that takes 500 messages a second and answers 429 above that."""
    with FakeSmsGateway(rate=500) as fake:
        settings.HOMELINK_SMS_GATEWAY = "homelink.messaging.gateways.http.HttpGateway"
        settings.HOMELINK_HTTP_SMS = fake.http_settings()
        yield fake


# --- the provider's answers ----------------------------------------------------------------------


def test_retry_after_in_seconds_or_as_a_date_and_never_for_long() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 0.5 ") == 0.5
    soon = format_datetime(timezone.now() + dt.timedelta(seconds=30), usegmt=True)
    seconds = parse_retry_after(soon)
    assert seconds is not None and 25 <= seconds <= 31
    assert parse_retry_after("86400") == 300.0  # a day is a typo: five minutes at most
    assert parse_retry_after("-4") == 0.0
    for unreadable in ("", None, "soon", "nan"):
        assert parse_retry_after(unreadable) is None


@pytest.mark.parametrize(
    ("status", "retry_after", "retry", "hold", "gateway_wide"),
    [
        (429, 7.0, True, 7.0, True),
        (429, None, True, 1.0, True),  # Twilio's 429 says nothing of when
        (503, None, True, None, True),
        (401, None, True, None, True),  # the credentials: every copy would fail alike
        (400, None, False, None, False),
        (409, None, True, None, False),
    ],
)
def test_what_each_answer_means_for_the_whole_gateway(
    status: int, retry_after: float | None, retry: bool, hold: float | None, gateway_wide: bool
) -> None:
    error = answer_error("x", Answer(status, b"", retry_after))
    assert (error.retry, error.hold, error.gateway_wide) == (retry, hold, gateway_wide)


# --- the shared pace -----------------------------------------------------------------------------


def test_two_workers_reservations_never_overlap() -> None:
    one, two = Pace("http", 100), Pace("http", 100)
    first = one.reserve(25)
    second = two.reserve(25)
    third = one.reserve(1)
    assert second.start == pytest.approx(first.at(25))
    assert third.start == pytest.approx(second.at(25))
    assert first.gap == 0.01


def test_a_hold_and_an_outage_stop_every_worker_and_a_success_clears_the_back_off() -> None:
    pace = Pace("http", 100)
    until = pace.hold(3)
    # (Times cross from the database's clock to this one: allow a few milliseconds.)
    assert Pace("http", 100).reserve(1).start >= until - 0.01
    assert Pace("http", 0).reserve(1).start >= until - 0.01  # unpaced gateways are held too
    GatewayPace.objects.update(hold_until=0)
    first = pace.strike()
    # Another worker caught in the same outage: still one strike, the same hold.
    assert Pace("http", 100).strike() == pytest.approx(first, abs=0.05)
    assert GatewayPace.objects.get(gateway="http").strikes == 1
    GatewayPace.objects.update(hold_until=0)  # the back-off has passed; it fails again
    second = pace.strike()
    assert GatewayPace.objects.get(gateway="http").strikes == 2
    assert second - time.time() == pytest.approx(outage_backoff(2), abs=0.1)
    assert outage_backoff(30) == 60
    pace.recovered()
    assert GatewayPace.objects.get(gateway="http").strikes == 0


def test_the_pace_keeps_the_databases_clock_not_a_workers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A worker whose clock is an hour fast must not hold every other worker for an hour:
    slots and holds are reckoned on the database's clock."""
    from homelink.messaging import pacing

    real = time.time
    monkeypatch.setattr(pacing.time, "time", lambda: real() + 3600)
    fast = Pace("http", 100)
    fast_slots = fast.reserve(10)
    fast.hold(1)
    # On its own clock its slots are now, not an hour ago or ahead.
    assert abs(fast_slots.start - (real() + 3600)) < 2
    monkeypatch.setattr(pacing.time, "time", real)
    slots = Pace("http", 100).reserve(10)
    assert slots.start - real() < 2


# --- a rate-limited provider --------------------------------------------------------------------


def test_a_send_to_a_limited_provider_goes_at_its_rate_with_nothing_failed(
    limited: FakeSmsGateway, settings: Any
) -> None:
    settings.HOMELINK_SMS_RATE = 500
    school = parents_school("900101", 2_000)
    message = send(school)
    started = time.monotonic()
    drain("sms", seconds=120)
    elapsed = time.monotonic() - started
    counts = Counter(Delivery.objects.filter(message=message).values_list("status", flat=True))
    assert counts == {Status.SENT: 2_000}
    # Never over the rate by more than one second's worth, and no faster than the rate allows.
    assert limited.max_in_window(1.0) <= 2 * 500
    assert elapsed >= 2_000 / 500 * 0.9
    assert limited.refused <= 50


def test_a_provider_that_says_429_slows_the_gateway_and_costs_no_attempt(
    limited: FakeSmsGateway, settings: Any
) -> None:
    """No rate configured: the provider's 429s and their Retry-After are the only limit."""
    settings.HOMELINK_SMS_RATE = 0
    school = parents_school("900102", 1_500)
    message = send(school)
    drain("sms", seconds=120)
    rows = Delivery.objects.filter(message=message)
    assert Counter(rows.values_list("status", flat=True)) == {Status.SENT: 1_500}
    assert limited.refused > 0
    assert set(rows.values_list("attempts", flat=True)) == {1}


# --- urgent first, fair shares ------------------------------------------------------------------


def test_urgent_sms_goes_before_bulk_email_already_queued(
    family: School, smtp: Mailbox, settings: Any
) -> None:
    bulk = send(family, mode="email")
    urgent = send(family, mode="sms", urgent=True)
    drain()
    emails = list(Delivery.objects.filter(message=bulk).values_list("sent_at", flat=True))
    texts = list(Delivery.objects.filter(message=urgent).values_list("sent_at", flat=True))
    assert len(emails) == 3 and len(texts) == 3
    assert all(t is not None for t in [*emails, *texts])
    assert max(t for t in texts if t) < min(t for t in emails if t)


def test_a_message_queued_behind_a_big_send_is_interleaved_with_it() -> None:
    big = parents_school("900103", 400)
    small = parents_school("900104", 6)
    first = send(big)
    first_batch = claim("sms", "w", limit=100)
    # Exactly the limit: with statistics taken before the send (parents_school analyses the
    # tables), PostgreSQL once planned the claim so that it took every queued copy.
    assert len(first_batch) == 100
    assert Delivery.objects.filter(status=Status.SENDING).count() == 100
    assert {d.message_id for d in first_batch} == {first.pk}
    second = send(small)
    taken = claim("sms", "w", limit=12)
    # One for one: the small school's six go out with the big school's next six.
    assert Counter(d.message_id for d in taken) == {first.pk: 6, second.pk: 6}


def test_a_scheduled_message_joins_the_queue_as_it_stands_when_its_time_comes() -> None:
    big = parents_school("900105", 300)
    small = parents_school("900106", 4)
    first = send(big)
    later = send(small, send_at=timezone.now() + dt.timedelta(hours=1))
    assert set(Delivery.objects.filter(message=later).values_list("lane", flat=True)) == {None}
    claim("sms", "w", limit=100)
    Delivery.objects.filter(message=later).update(next_attempt_at=timezone.now())
    assert place() == 4
    taken = claim("sms", "w", limit=8)
    assert Counter(d.message_id for d in taken) == {first.pk: 4, later.pk: 4}
