"""Receipts move a delivery's status forward only, whatever order they come in."""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import partial

import pytest
from django.db import connection

from homelink.messaging.models import Delivery
from homelink.messaging.receipts import receipt_record, twilio_reason
from homelink.messaging.tests.sms_helpers import delivery, status_of
from homelink.schools.models import School

pytestmark = pytest.mark.django_db

S = Delivery.Status


def twilio(gateway_id: str, status: str, **kw: object) -> bool:
    return receipt_record(gateway="twilio", gateway_id=gateway_id, status=status, **kw)  # type: ignore[arg-type]


def test_a_receipt_moves_the_status_forward_and_says_so(school: School) -> None:
    row = delivery(school, gateway_id="SM1")
    assert twilio("SM1", S.DELIVERED)
    row.refresh_from_db()
    assert row.status == S.DELIVERED
    assert row.status_at is not None


def test_duplicates_change_nothing(school: School) -> None:
    row = delivery(school, gateway_id="SM1")
    assert twilio("SM1", S.DELIVERED)
    row.refresh_from_db()
    first_at = row.status_at
    assert not twilio("SM1", S.DELIVERED)
    row.refresh_from_db()
    assert row.status_at == first_at


def test_a_late_sent_after_delivered_changes_nothing(school: School) -> None:
    row = delivery(school, gateway_id="SM1")
    assert twilio("SM1", S.DELIVERED)
    assert not twilio("SM1", S.SENT)
    assert status_of(row) == S.DELIVERED


def test_out_of_order_the_final_status_wins(school: School) -> None:
    row = delivery(school, gateway_id="SM1", status=S.SENDING)
    assert twilio("SM1", S.FAILED, reason="twilio 30003: phone switched off")
    assert not twilio("SM1", S.SENT)
    assert not twilio("SM1", S.DELIVERED)  # one final status does not replace another
    row.refresh_from_db()
    assert (row.status, row.reason) == (S.FAILED, "twilio 30003: phone switched off")


def test_sent_then_delivered(school: School) -> None:
    row = delivery(school, gateway_id="SM1", status=S.SENDING)
    assert twilio("SM1", S.SENT)
    assert status_of(row) == S.SENT
    assert twilio("SM1", S.DELIVERED)
    assert status_of(row) == S.DELIVERED


def test_a_receipt_before_the_worker_recorded_the_id_fills_it_in(school: School) -> None:
    row = delivery(school, status=S.SENDING, gateway="", gateway_id="")
    assert twilio("SM9", S.DELIVERED, delivery_id=row.pk)
    row.refresh_from_db()
    assert (row.status, row.gateway, row.gateway_id) == (S.DELIVERED, "twilio", "SM9")


def test_a_receipt_naming_a_delivery_with_another_id_is_refused(school: School) -> None:
    row = delivery(school, gateway_id="SM1")
    assert not twilio("SM2", S.DELIVERED, delivery_id=row.pk)
    assert status_of(row) == S.SENT


def test_a_receipt_from_another_gateway_is_refused(school: School) -> None:
    row = delivery(school, gateway="http", gateway_id="SM1")
    assert not twilio("SM1", S.DELIVERED, delivery_id=row.pk)
    assert not twilio("SM1", S.DELIVERED)
    assert status_of(row) == S.SENT


def test_a_generic_receipt_may_name_only_the_delivery(school: School) -> None:
    row = delivery(school, gateway="http", gateway_id="fake-1")
    assert receipt_record(gateway="http", gateway_id="", status=S.DELIVERED, delivery_id=row.pk)
    row.refresh_from_db()
    assert (row.status, row.gateway_id) == (S.DELIVERED, "fake-1")


def test_unknown_deliveries_change_nothing(school: School) -> None:
    row = delivery(school, gateway_id="SM1")
    assert not twilio("SM404", S.DELIVERED)
    assert not twilio("SM1", S.DELIVERED, delivery_id=row.pk + 1000)
    assert not twilio("", S.DELIVERED)
    assert status_of(row) == S.SENT


def test_a_cancelled_or_skipped_copy_is_not_revived(school: School) -> None:
    row = delivery(school, gateway_id="SM1", status=S.CANCELLED)
    assert not twilio("SM1", S.DELIVERED)
    assert status_of(row) == S.CANCELLED


def test_only_receipt_statuses_may_be_set(school: School) -> None:
    delivery(school, gateway_id="SM1")
    with pytest.raises(ValueError, match="queued"):
        twilio("SM1", S.QUEUED)


def test_twilio_error_codes_in_words() -> None:
    assert twilio_reason("30003") == "twilio 30003: phone switched off or out of coverage"
    assert twilio_reason("31999") == "twilio 31999"
    assert twilio_reason("") == "twilio: not delivered"


def race(*calls: Callable[[], object]) -> None:
    """Run ``calls`` in threads released together; each closes its own connection."""
    barrier = threading.Barrier(len(calls))
    errors: list[BaseException] = []

    def run(call: Callable[[], object]) -> None:
        try:
            barrier.wait(timeout=10)
            call()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []


@pytest.mark.django_db(transaction=True)
def test_two_receipts_at_once_cannot_move_it_back(school: School) -> None:
    """``delivered`` and a late ``sent`` race, many times: ``delivered`` always stands."""
    rows = [delivery(school, gateway_id=f"SM{n}", status=S.SENDING) for n in range(10)]
    for row in rows:
        race(
            partial(twilio, row.gateway_id, S.DELIVERED),
            partial(twilio, row.gateway_id, S.SENT),
        )
        assert status_of(row) == S.DELIVERED
