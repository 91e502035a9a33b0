"""Sending: what the outbox holds after ``message_send``, credits, confirmation, schedule, cancel."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pytest
from django.db import connections
from django.utils import timezone

from homelink.audit.models import AuditEvent
from homelink.messaging.audience import Audience
from homelink.messaging.models import Delivery, Message, Template
from homelink.messaging.services import (
    Draft,
    NeedsConfirmation,
    NotEnoughCredits,
    SendError,
    credits_add,
    message_cancel,
    message_preview,
    message_send,
    template_save,
)
from homelink.schools.models import School

pytestmark = pytest.mark.django_db

TEXT = "Dear {name}, school is closed today. {school}"


def sms_draft(**kw: Any) -> Draft:
    values: dict[str, Any] = {"mode": "sms", "audience": Audience(), "sms_text": TEXT}
    values.update(kw)
    return Draft(**values)


def credits(school: School) -> int:
    return School.objects.values_list("sms_credits", flat=True).get(pk=school.pk)


def test_a_send_writes_one_delivery_per_copy_and_charges_its_parts(family: School) -> None:
    # 151 + 1 + a name of at least nine characters: over 160, so two parts each.
    long_text = "x" * 151 + " {name}"
    message = message_send(
        school=family, draft=sms_draft(sms_text=long_text), actor="test", via="test"
    )
    rows = list(Delivery.objects.filter(message=message).values_list("to", "parts", "status"))
    assert sorted(rows) == [
        ("+447700900001", 2, "queued"),
        ("+447700900002", 2, "queued"),
        ("+447700900003", 2, "queued"),
    ]
    assert (message.sms_count, message.email_count, message.credits_charged) == (3, 0, 6)
    assert credits(family) == 1000 - 6
    event = AuditEvent.objects.get(action="message.queued")
    assert event.detail["credits"] == 6
    assert "07700" not in str(event.detail)


def test_the_preview_counts_what_the_send_then_writes(family: School) -> None:
    draft = Draft(
        mode="email_else_sms",
        audience=Audience(),
        subject="Closed",
        email_body="Dear {name}, about {children}",
        sms_text="Closed today \u2013 sorry",  # the en dash forces UCS-2
    )
    preview = message_preview(school=family, draft=draft)
    assert (preview.email_count, preview.sms_count, preview.credits) == (3, 1, 1)
    assert preview.text_size.encoding == "UCS-2"
    assert preview.text_size.ucs2_chars == ("\u2013",)
    assert [u.name for u in preview.resolved.unreachable] == ["Kit Kay"]
    message = message_send(school=family, draft=draft, actor="test")
    assert Delivery.objects.filter(message=message).count() == preview.total
    assert message.unreachable_count == 1


def test_not_enough_credits_is_refused_and_nothing_is_written(family: School) -> None:
    School.objects.filter(pk=family.pk).update(sms_credits=2)
    family.refresh_from_db()
    with pytest.raises(NotEnoughCredits) as refused:
        message_send(school=family, draft=sms_draft(), actor="test")
    assert (refused.value.needed, refused.value.available) == (3, 2)
    assert not Message.objects.exists()
    assert not Delivery.objects.exists()
    assert credits(family) == 2


@pytest.mark.django_db(transaction=True)
def test_credits_never_go_negative_when_sends_race(family: School) -> None:
    """Two sends at once with credits for one: exactly one is queued (the charge is a
    conditional update inside the queuing transaction)."""
    School.objects.filter(pk=family.pk).update(sms_credits=4)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def send() -> None:
        try:
            barrier.wait()
            message_send(school=family, draft=sms_draft(), actor="test")
            outcomes.append("sent")
        except NotEnoughCredits:
            outcomes.append("refused")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=send) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["refused", "sent"]
    assert credits(family) == 1
    assert Message.objects.count() == 1


def test_a_large_send_needs_a_second_confirmation(family: School) -> None:
    School.objects.filter(pk=family.pk).update(large_send_threshold=2)
    family.refresh_from_db()
    with pytest.raises(NeedsConfirmation) as asked:
        message_send(school=family, draft=sms_draft(), actor="test")
    assert asked.value.count == 3
    assert not Message.objects.exists()
    message_send(school=family, draft=sms_draft(), actor="test", confirmed_large=True)
    assert Message.objects.count() == 1


def test_a_mistyped_merge_field_or_missing_text_is_refused(family: School) -> None:
    with pytest.raises(SendError) as refused:
        message_send(school=family, draft=sms_draft(sms_text="Hi {nmae}"), actor="test")
    assert "{nmae}" in str(refused.value)
    with pytest.raises(SendError):
        message_send(school=family, draft=Draft(mode="email", audience=Audience()), actor="test")
    assert not Message.objects.exists()


def test_an_audience_nobody_in_can_be_reached_is_refused(family: School) -> None:
    kit = Audience(students="years", years=("7",), parents="prime")
    with pytest.raises(SendError, match="Nobody"):
        message_send(
            school=family,
            draft=sms_draft(audience=Audience(students="years", years=("12",))),
            actor="test",
        )
    assert message_send(school=family, draft=sms_draft(audience=kit), actor="test").sms_count


def test_scheduled_sends_wait_and_past_times_are_refused(family: School) -> None:
    later = timezone.now() + dt.timedelta(hours=3)
    message = message_send(school=family, draft=sms_draft(send_at=later), actor="test")
    assert message.scheduled
    assert set(Delivery.objects.values_list("next_attempt_at", flat=True)) == {later}
    with pytest.raises(SendError, match="passed"):
        message_send(
            school=family,
            draft=sms_draft(send_at=timezone.now() - dt.timedelta(hours=1)),
            actor="test",
        )


def test_urgent_messages_are_marked_to_go_first(family: School) -> None:
    urgent = message_send(school=family, draft=sms_draft(urgent=True), actor="test")
    bulk = message_send(school=family, draft=sms_draft(), actor="test")
    assert set(Delivery.objects.filter(message=urgent).values_list("priority", flat=True)) == {
        Delivery.URGENT
    }
    assert set(Delivery.objects.filter(message=bulk).values_list("priority", flat=True)) == {
        Delivery.BULK
    }


def test_cancel_stops_what_has_not_gone_and_refunds_it(family: School) -> None:
    message = message_send(
        school=family,
        draft=sms_draft(send_at=timezone.now() + dt.timedelta(hours=1)),
        actor="test",
    )
    first = Delivery.objects.filter(message=message).order_by("id").first()
    assert first is not None
    Delivery.objects.filter(pk=first.pk).update(status=Delivery.Status.SENT)
    assert message_cancel(message=message, actor="test") == 2
    assert credits(family) == 1000 - 1
    assert message.status == Message.Status.CANCELLED
    assert message.credits_refunded == 2
    statuses = sorted(Delivery.objects.filter(message=message).values_list("status", flat=True))
    assert statuses == ["cancelled", "cancelled", "sent"]
    with pytest.raises(SendError):
        message_cancel(message=message, actor="test")


def test_credits_are_added_and_never_removed_below_zero(family: School) -> None:
    assert credits_add(school=family, amount=500, actor="cli") == 1500
    with pytest.raises(Exception, match="cannot remove"):
        credits_add(school=family, amount=-2000, actor="cli")
    assert credits(family) == 1500


def test_templates_keep_merge_fields_and_unique_names(family: School) -> None:
    template = template_save(
        school=family, name="Closure", sms_text="Closed today, {name}.", actor="test"
    )
    assert Template.objects.get(pk=template.pk).sms_text == "Closed today, {name}."
    with pytest.raises(Exception, match="already"):
        template_save(school=family, name="Closure", actor="test")
    with pytest.raises(Exception, match="Unknown merge field"):
        template_save(school=family, name="Other", sms_text="{parent}", actor="test")
    other = School.objects.create(urn="100002", name="Other")
    template_save(school=other, name="Closure", actor="test")  # names are per school


def test_the_queuing_is_a_handful_of_queries(
    family: School, django_assert_max_num_queries: Any
) -> None:
    with django_assert_max_num_queries(20):
        message_send(
            school=family, draft=sms_draft(mode="both", subject="S", email_body="B"), actor="test"
        )


def test_a_large_send_confirmed_for_fewer_than_it_now_reaches_asks_again(family: School) -> None:
    School.objects.filter(pk=family.pk).update(large_send_threshold=2)
    family.refresh_from_db()
    with pytest.raises(NeedsConfirmation):
        message_send(school=family, draft=sms_draft(), actor="test", confirmed_up_to=2)
    message = message_send(school=family, draft=sms_draft(), actor="test", confirmed_up_to=3)
    assert message.sms_count == 3
