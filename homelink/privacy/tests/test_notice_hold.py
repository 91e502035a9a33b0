"""The first-contact hold cannot be got round (review of issue 13, findings 1, 2 and 7): the
notice cannot be cancelled; a notice that could not be delivered holds the school's message
until the adult is told another way, or the message is not sent to them at all; and the stop
link of a copy to a shared address stops that address, for everyone on the copy.

The roll (conftest.py): Mary Smith (email and mobile) and Dan Smith (mobile only), Amy's and
Ben's; Jill Jones (email and mobile), Jo's; Zoë Brown (mobile only), Lou's.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from homelink.audit.models import AuditEvent
from homelink.mail_testing import Mailbox
from homelink.messaging.audience import Audience
from homelink.messaging.dispatch import claim, drain, email_for
from homelink.messaging.models import Delivery, Message, OutboxMessage
from homelink.messaging.services import SendError, message_cancel
from homelink.privacy import notices
from homelink.privacy.models import NoticeReceipt
from homelink.privacy.tests.test_notices import adult, send, stop_path
from homelink.privacy.tokens import ADULT, read_stop_token, stop_token
from homelink.register.models import Adult
from homelink.schools.models import School

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("notices_on")]

Status = Delivery.Status


def to_jo(school: School, mode: str) -> Message:
    """A message to Jo Jones's family: Jill, whose notice goes by email."""
    student = school.members.get(mis_id="B1").pk
    return send(school, mode=mode, audience=Audience(students="chosen", student_ids=(student,)))


def school_copies_claimed(channel: str) -> list[str]:
    Delivery.objects.filter(message__kind="school", status=Status.QUEUED).update(
        next_attempt_at=timezone.now()
    )
    return [d.to for d in claim(channel, "w1", limit=10) if d.message.kind == "school"]


NOTICE_SUBJECT = "How Example Academy uses your contact details"


def offered(smtp: Mailbox, address: str) -> list[str]:
    """The subjects of the emails given to the mail server for ``address`` (refused ones too)."""
    return [str(m["Subject"]) for m in smtp.to(address)]


def drain_all() -> None:
    """Every channel until nothing is waiting (held copies made due at once)."""
    deadline = timezone.now() + dt.timedelta(seconds=30)
    while Delivery.objects.filter(status__in=[Status.QUEUED, Status.SENDING]).exists():
        assert timezone.now() < deadline, "the outbox never emptied"
        Delivery.objects.filter(status=Status.QUEUED).update(next_attempt_at=timezone.now())
        drain(seconds=5)


# --- finding 1: the notice cannot be cancelled ---------------------------------------------------


def test_the_notice_cannot_be_cancelled_so_the_message_keeps_waiting_for_it(
    roll: School, sender_a: Any
) -> None:
    to_jo(roll, "sms")
    notice = Message.objects.get(school=roll, kind=Message.Kind.NOTICE)
    with pytest.raises(SendError, match="A privacy notice cannot be cancelled"):
        message_cancel(message=notice, actor=sender_a)
    notice.refresh_from_db()
    assert notice.status == Message.Status.QUEUED
    assert list(notice.deliveries.values_list("status", flat=True)) == [Status.QUEUED]
    assert not AuditEvent.objects.filter(action="message.cancelled").exists()
    # Jill's school SMS still waits for her email notice.
    assert school_copies_claimed("sms") == []

    # The console shows why instead of a button, and a forged POST changes nothing.
    client = Client()
    client.force_login(sender_a)
    kw = {"urn": roll.urn, "message_id": notice.pk}
    page = client.get(reverse("console:message", kwargs=kw)).content.decode()
    assert "A privacy notice cannot be cancelled" in page
    assert "Cancel the message</button>" not in page
    response = client.post(
        reverse("console:message_cancel", kwargs=kw), {"confirm": "on"}, follow=True
    )
    assert "A privacy notice cannot be cancelled" in response.content.decode()
    assert list(notice.deliveries.values_list("status", flat=True)) == [Status.QUEUED]
    # A school message still has its button.
    school_message = Message.objects.get(school=roll, kind=Message.Kind.SCHOOL)
    kw["message_id"] = school_message.pk
    assert (
        "Cancel the message</button>"
        in client.get(reverse("console:message", kwargs=kw)).content.decode()
    )


# --- finding 2: a notice that could not be delivered ---------------------------------------------


@pytest.mark.parametrize("ended", [Status.FAILED, Status.BOUNCED, Status.CANCELLED])
def test_a_notice_that_did_not_arrive_holds_the_message(roll: School, ended: str) -> None:
    """The reviewer's proof: Jill's email notice refused for good, her school SMS is claimed."""
    to_jo(roll, "sms")
    Delivery.objects.filter(message__kind="notice").update(status=ended)
    assert school_copies_claimed("sms") == []


def test_a_refused_email_notice_goes_again_by_sms_before_the_message(
    roll: School, smtp: Mailbox
) -> None:
    smtp.refuse.add("jill@example.org")
    message = to_jo(roll, "sms")
    assert drain("email") == 1
    first = Delivery.objects.get(message__kind="notice", channel="email")
    assert first.status == Status.FAILED and "550" in first.reason
    credits = School.objects.get(pk=roll.pk).sms_credits

    drain_all()
    # Her phone got the notice, then the message; the email never went.
    texts = list(OutboxMessage.objects.filter(to="+447700900003").order_by("pk"))
    assert len(texts) == 2
    assert "Privacy notice and opt-out: https://homelink.example.org/p/" in texts[0].body
    assert texts[1].body == "School is closed today. Example Academy"
    assert offered(smtp, "jill@example.org") == [NOTICE_SUBJECT]  # the one refused
    again = Message.objects.get(school=roll, kind="notice", deliveries__channel="sms")
    assert "other channel" in again.audience_label and again.credits_charged == 1
    assert School.objects.get(pk=roll.pk).sms_credits == credits - 1
    receipt = NoticeReceipt.objects.get(adult=adult(roll, "Jill"), how=NoticeReceipt.How.SMS)
    assert receipt.delivery is not None and receipt.delivery.status == Status.SENT
    event = AuditEvent.objects.get(action="privacy.notice_queued", object_id=again.pk)
    assert event.actor_label == notices.RETRY_ACTOR and event.detail["sms"] == 1
    assert Delivery.objects.get(message=message).status == Status.SENT
    # Told now: the next message goes without another notice.
    to_jo(roll, "sms")
    assert Message.objects.filter(school=roll, kind="notice").count() == 2


def test_with_no_other_channel_the_message_is_not_sent_and_the_page_says_why(
    roll: School, smtp: Mailbox
) -> None:
    Adult.objects.filter(school=roll, forename="Jill").update(mobile="")
    smtp.refuse.add("jill@example.org")
    message = to_jo(roll, "email")
    drain_all()
    copy = Delivery.objects.get(message=message)
    assert (copy.status, copy.reason) == (Status.SKIPPED, notices.NOT_TOLD)
    assert copy.reason == "not sent: the privacy notice could not be delivered to them first"
    # Only the notice was offered to her mail server (and refused); the message never was.
    assert offered(smtp, "jill@example.org") == [NOTICE_SUBJECT]
    assert Message.objects.filter(school=roll, kind="notice").count() == 1


def test_the_other_channel_is_tried_once(roll: School) -> None:
    message = to_jo(roll, "sms")
    Delivery.objects.filter(message__kind="notice").update(status=Status.FAILED)
    assert school_copies_claimed("sms") == []
    assert Message.objects.filter(school=roll, kind="notice").count() == 2
    # The SMS notice fails too (the network refused the number): nothing left to try.
    Delivery.objects.filter(message__kind="notice", status=Status.QUEUED).update(
        status=Status.FAILED
    )
    credits = School.objects.get(pk=roll.pk).sms_credits
    assert school_copies_claimed("sms") == []
    copy = Delivery.objects.get(message=message)
    assert (copy.status, copy.reason) == (Status.SKIPPED, notices.NOT_TOLD)
    assert Message.objects.filter(school=roll, kind="notice").count() == 2
    # Its credit went back.
    assert School.objects.get(pk=roll.pk).sms_credits == credits + 1


def test_an_adult_shown_the_notice_on_the_web_site_is_told(roll: School) -> None:
    to_jo(roll, "sms")
    Delivery.objects.filter(message__kind="notice").update(status=Status.FAILED)
    notices.notice_shown(
        school=roll, notice=notices.notice_current(roll), adult=adult(roll, "Jill")
    )
    assert school_copies_claimed("sms") == ["+447700900003"]
    assert Message.objects.filter(school=roll, kind="notice").count() == 1


def test_adults_never_sent_a_notice_are_not_held(roll: School, settings: Any) -> None:
    settings.HOMELINK_FIRST_CONTACT_NOTICE = False
    to_jo(roll, "sms")
    assert school_copies_claimed("sms") == ["+447700900003"]


# --- finding 7: the stop link of a shared address ------------------------------------------------


def test_the_stop_link_on_a_shared_address_stops_it_for_everyone_on_the_copy(
    roll: School, settings: Any
) -> None:
    settings.HOMELINK_FIRST_CONTACT_NOTICE = False
    Adult.objects.filter(school=roll, forename="Dan").update(email="mary@example.org")
    amy = Audience(students="chosen", student_ids=(roll.members.get(mis_id="A1").pk,))
    send(roll, mode="email", audience=amy)
    [copy] = claim("email", "w1", limit=10)
    mary, dan = adult(roll, "Mary"), adult(roll, "Dan")
    assert sorted(copy.adult_ids) == sorted([mary.pk, dan.pk])
    path = stop_path(str(email_for(copy).body))
    token = read_stop_token(path[3:-1])
    assert token is not None and set(token.pks) == {mary.pk, dan.pk}

    client = Client()
    page = client.get(path).content.decode()
    assert "shared by Mary and Dan" in page or "shared by Dan and Mary" in page
    # First names only: nothing the mailbox's greeting does not show already.
    assert "Smith" not in page and "mary@example.org" not in page
    assert not Adult.objects.filter(school=roll, opted_out=True).exists()
    done = client.post(path, {"csrfmiddlewaretoken": client.cookies["csrftoken"].value})
    assert "Messages stopped" in done.content.decode()
    assert set(Adult.objects.filter(school=roll, opted_out=True)) == {mary, dan}
    assert (
        AuditEvent.objects.filter(action="person.opted_out", actor_label="stop link").count() == 2
    )
    assert "Messages are stopped already" in client.get(path).content.decode()
    # The reviewer's proof: the address gets nothing more (here: nobody is left to send to).
    with pytest.raises(SendError, match="Nobody in this audience can be reached"):
        send(roll, mode="email", audience=amy)
    everyone = send(roll, mode="email")
    assert "mary@example.org" not in everyone.deliveries.values_list("to", flat=True)


def test_a_shared_link_cannot_be_altered_to_name_someone_else() -> None:
    token = stop_token(ADULT, (5, 9))
    found = read_stop_token(token)
    assert found is not None and found.pks == (5, 9)
    head, _, mac = token.partition("-")
    assert head == "a5_9"
    for altered in ("a5", "a9", "a5_a", "a9_5", "a5_9_10", "m5_9", "a5_5", "a5.9", "a5__9"):
        assert read_stop_token(f"{altered}-{mac}") is None
    # One person's link is written as it always was: links sent before still work.
    assert stop_token(ADULT, (42,)) == stop_token(ADULT, 42)
    assert stop_token(ADULT, 42).startswith("a16-")
    assert re.fullmatch(r"a16-[\w-]{22}", stop_token(ADULT, 42))
