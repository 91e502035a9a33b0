"""The school's privacy notice (issue 13, points 1 and 2): versions, receipts, the footer of
every email, the stop link, and the first-contact notice that reaches every adult from the MIS
before the school's first message does.

The roll (console/tests/compose.py): Mary Smith (email and mobile; Amy and Ben), Dan Smith
(mobile only), Jill Jones (email and mobile), Zoë Brown (mobile only), all imported; a teacher.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from homelink.audit.models import AuditEvent
from homelink.mail_testing import Mailbox
from homelink.messaging.audience import Audience
from homelink.messaging.dispatch import NOTICE_FIRST, claim, drain
from homelink.messaging.models import Delivery, Message, OutboxMessage
from homelink.messaging.services import Draft, NotEnoughCredits, message_preview, message_send
from homelink.privacy import notices
from homelink.privacy.models import NoticeReceipt, PrivacyNotice
from homelink.privacy.tokens import ADULT, read_stop_token, stop_token
from homelink.register.models import Adult, Source
from homelink.schools.models import School

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("notices_on")]

Status = Delivery.Status
PASSWORD = "correct horse battery staple"


def send(school: School, **kw: Any) -> Message:
    values: dict[str, Any] = {
        "mode": "email_else_sms",
        "audience": Audience(),
        "subject": "Closed today",
        "email_body": "Dear {name}, school is closed today.",
        "sms_text": "School is closed today. {school}",
    }
    values.update(kw)
    return message_send(school=school, draft=Draft(**values), actor="test")


def adult(school: School, forename: str) -> Adult:
    return Adult.objects.get(school=school, forename=forename)


def notice_message(school: School) -> Message:
    return Message.objects.get(school=school, kind=Message.Kind.NOTICE)


def stop_path(url: str) -> str:
    match = re.search(r"https://homelink\.example\.org(/p/[\w-]+/)", url)
    assert match is not None, url
    return match.group(1)


# --- versions ---------------------------------------------------------------------------------


def test_a_school_starts_with_a_default_notice_naming_it_with_the_retention_defaults(
    roll: School,
) -> None:
    current = notices.notice_current(roll)
    assert current.version == 1
    text = current.text
    assert "Example Academy is the data controller" in text
    assert "names and contact details" in text.lower()
    for period in ("12 months after leaving", "Messages and their delivery records: 24 months"):
        assert period in text
    assert "6 years" in text
    assert "subject access request" in text and "ico.org.uk" in text
    assert "stop messages" in text and "Data protection officer" in text
    # Asked again: the same version, not a new one.
    assert notices.notice_current(roll).pk == current.pk


def test_each_save_is_a_new_version_and_earlier_ones_stay_readable(
    roll: School, admin_a: Any
) -> None:
    first = notices.notice_current(roll)
    second = notices.notice_publish(
        school=roll, text="Version two.\r\nDPO: dpo@example.org", actor=admin_a
    )
    assert (second.version, second.text) == (2, "Version two.\nDPO: dpo@example.org")
    first.refresh_from_db()
    assert first.text == notices.default_text(roll)
    assert notices.notice_current(roll).pk == second.pk
    event = AuditEvent.objects.get(action="privacy.notice_published")
    assert (event.actor_id, event.detail) == (admin_a.pk, {"version": 2})
    # The same text again, or nothing: refused, nothing written.
    for text in ("Version two.\nDPO: dpo@example.org", "  "):
        with pytest.raises(Exception, match=r"current notice already|Write the notice"):
            notices.notice_publish(school=roll, text=text, actor=admin_a)
    assert PrivacyNotice.objects.filter(school=roll).count() == 2


def test_the_console_page_publishes_versions_and_shows_old_ones_to_administrators_only(
    roll: School, admin_a: Any, sender_a: Any, viewer_a: Any
) -> None:
    url = reverse("console:notices", kwargs={"urn": roll.urn})
    client = Client()
    client.force_login(admin_a)
    page = client.get(url).content.decode()
    assert "Version 1" in page and "Example Academy is the data controller" in page
    assert "<strong>4</strong> adults from the MIS have never been sent the notice" in page
    response = client.post(url, {"text": "Our new notice. DPO: Ann Lee, dpo@example.org"})
    assert response.status_code == 302
    page = client.get(url).content.decode()
    assert "Version 2</a> (current)" in page and "Our new notice." in page
    old = client.get(url + "?version=1").content.decode()
    assert "Example Academy is the data controller" in old
    # Bad input: a clear error, nothing changed.
    response = client.post(url, {"text": ""})
    assert response.status_code == 400 and "Write the notice." in response.content.decode()
    assert PrivacyNotice.objects.filter(school=roll).count() == 2
    # The public page shows the current version to anyone.
    public = Client().get(reverse("privacy_notice", kwargs={"urn": roll.urn}))
    assert "Our new notice." in public.content.decode()
    for user in (sender_a, viewer_a):
        other = Client()
        other.force_login(user)
        assert other.get(url).status_code == 403
        assert other.post(url, {"text": "x"}).status_code == 403


# --- the first-contact notice ---------------------------------------------------------------------


def test_a_send_queues_the_notice_first_to_every_untold_adult_it_reaches_in_one_transaction(
    roll: School,
) -> None:
    send(roll, audience=Audience(students="years", years=("7",)))
    notice = notice_message(roll)
    # Year 7 reaches Mary (email), Dan (SMS) and Jill (email); Zoë's child is in year 9.
    copies = sorted(notice.deliveries.values_list("channel", "to", "priority"))
    assert copies == [
        ("email", "jill@example.org", Delivery.URGENT),
        ("email", "mary@example.org", Delivery.URGENT),
        ("sms", "+447700900002", Delivery.URGENT),
    ]
    assert (notice.email_count, notice.sms_count, notice.credits_charged) == (2, 1, 1)
    receipts = NoticeReceipt.objects.filter(school=roll).values_list(
        "adult__forename", "how", "delivery__message_id", "notice__version"
    )
    assert set(receipts) == {
        ("Mary", "email", notice.pk, 1),
        ("Dan", "sms", notice.pk, 1),
        ("Jill", "email", notice.pk, 1),
    }
    # The message's credit (Dan's SMS) and the notice's (Dan's SMS): 1,000 - 2.
    roll.refresh_from_db()
    assert roll.sms_credits == 998
    assert AuditEvent.objects.filter(action="privacy.notice_queued").get().detail["sms"] == 1
    # Told (or on its way): a second send tells nobody again; Zoë is still untold.
    send(roll)
    assert Message.objects.filter(kind=Message.Kind.NOTICE).count() == 2
    second = Message.objects.filter(kind=Message.Kind.NOTICE).latest("pk")
    assert list(second.deliveries.values_list("to", flat=True)) == ["+447700900004"]
    assert notices.untold_count(roll) == 0
    send(roll)
    assert Message.objects.filter(kind=Message.Kind.NOTICE).count() == 2


def test_the_preview_counts_the_notice_and_its_credits(roll: School) -> None:
    preview = message_preview(
        school=roll, draft=Draft(mode="sms", audience=Audience(), sms_text="Hi")
    )
    assert preview.notices is not None
    # Mary and Jill by email, Dan and Zoë by SMS (whatever channel the message itself uses).
    assert preview.notices.as_json() == {"email": 2, "sms": 2, "credits": 2, "unreachable": 0}
    assert preview.as_json()["privacy_notices"]["sms"] == 2
    roll.sms_credits = preview.credits + 1
    roll.save()
    assert not preview.enough_credits or preview.credits_available != roll.sms_credits
    with pytest.raises(NotEnoughCredits):
        send(roll, mode="sms")
    assert not Message.objects.exists()
    roll.refresh_from_db()
    assert roll.sms_credits == preview.credits + 1


def test_adults_not_from_the_mis_or_already_shown_it_are_not_sent_it(roll: School) -> None:
    Adult.objects.filter(school=roll, forename="Dan").update(source=Source.WEB)
    notices.notice_shown(
        school=roll, notice=notices.notice_current(roll), adult=adult(roll, "Jill")
    )
    Adult.objects.filter(school=roll, forename="Zoë").update(opted_out=True)
    send(roll)
    assert list(notice_message(roll).deliveries.values_list("to", flat=True)) == [
        "mary@example.org"
    ]


def test_the_sms_notice_is_one_part_with_the_adults_own_link(roll: School) -> None:
    dan = adult(roll, "Dan")
    text = notices.sms_text_for(roll, dan.pk)
    assert text.startswith("Example Academy uses your contact details")
    assert len(text) <= 160
    token = read_stop_token(stop_path(text)[3:-1])
    assert token is not None and (token.kind, token.pk) == (ADULT, dan.pk)


def test_a_copy_waits_while_its_adults_notice_is_queued_and_goes_once_it_has_gone(
    roll: School,
) -> None:
    # Dan: the message by SMS... and his notice by SMS too; Mary: the message by SMS, her
    # notice by email (another channel, another worker's turn).
    message = send(
        roll,
        mode="sms",
        audience=Audience(students="chosen", student_ids=(roll.members.get(mis_id="A1").pk,)),
    )
    sms_copies = {d.to: d for d in message.deliveries.all()}
    assert set(sms_copies) == {"+447700900001", "+447700900002"}
    # The SMS channel's claim takes Dan's notice (urgent) and both message copies: the notice
    # goes, the two message copies wait (Dan's notice is being sent, Mary's is queued).
    claimed = claim("sms", "w1", limit=10)
    assert [(d.message.kind, d.to) for d in claimed] == [("notice", "+447700900002")]
    waiting = Delivery.objects.filter(message=message)
    assert set(waiting.values_list("status", "reason", "attempts")) == {
        (Status.QUEUED, NOTICE_FIRST, 0)
    }
    assert all(d.next_attempt_at > timezone.now() for d in waiting)
    # Dan's notice recorded as sent; Mary's email notice still queued.
    Delivery.objects.filter(pk=claimed[0].pk).update(status=Status.SENT)
    waiting.update(next_attempt_at=timezone.now() - dt.timedelta(seconds=1))
    claimed = claim("sms", "w1", limit=10)
    assert [d.to for d in claimed] == ["+447700900002"]
    # Once Mary's notice has gone, her copy goes.
    assert drain("email") == 1
    Delivery.objects.filter(message=message, to="+447700900001").update(
        next_attempt_at=timezone.now() - dt.timedelta(seconds=1)
    )
    assert [d.to for d in claim("sms", "w1", limit=10)] == ["+447700900001"]


def test_the_outbox_gets_each_adults_notice_before_their_message(roll: School) -> None:
    """Every channel drained by the worker's own loop: per address, the notice comes first."""
    send(roll, mode="both")
    deadline = timezone.now() + dt.timedelta(seconds=30)
    while Delivery.objects.filter(status__in=[Status.QUEUED, Status.SENDING]).exists():
        assert timezone.now() < deadline, "the outbox never emptied"
        Delivery.objects.filter(status=Status.QUEUED).update(next_attempt_at=timezone.now())
        drain(seconds=5)
    assert set(Delivery.objects.values_list("status", flat=True)) == {Status.SENT}
    for person in Adult.objects.filter(school=roll):
        kinds = [
            d.message.kind
            for d in Delivery.objects.filter(adult=person)
            .select_related("message")
            .order_by("sent_at", "pk")
        ]
        assert kinds[0] == "notice" and "school" in kinds, (person.forename, kinds)
        first_school = min(
            d.sent_at
            for d in Delivery.objects.filter(adult=person, message__kind="school")
            if d.sent_at
        )
        notice_sent = Delivery.objects.get(adult=person, message__kind="notice").sent_at
        assert notice_sent is not None and notice_sent <= first_school
    # The SMS notice went with its link filled in, not "{link}".
    sms = OutboxMessage.objects.filter(channel="sms", body__contains="Privacy notice and opt-out")
    assert sms.count() == 2 and not sms.filter(body__contains="{link}").exists()


# --- the footer and the stop link -----------------------------------------------------------------


def test_every_email_ends_with_the_notice_and_a_stop_link_that_works_without_signing_in(
    roll: School, smtp: Mailbox
) -> None:
    message = send(roll, mode="email")
    assert drain("email") == 2  # the two notices; the two message copies wait for them
    Delivery.objects.filter(message=message).update(next_attempt_at=timezone.now())
    assert drain("email") == 2
    mary = smtp.to("mary@example.org")
    assert [m["Subject"] for m in mary] == [
        "How Example Academy uses your contact details",
        "Closed today",
    ]
    for email in mary:
        body = Mailbox.body(email)
        assert "Privacy notice: https://homelink.example.org/privacy/100001/" in body
        assert "Stop messages from Example Academy: https://homelink.example.org/p/" in body
    notice_body = Mailbox.body(mary[0])
    assert "Dear Mary Smith," in notice_body
    assert "version 1," in notice_body and "Example Academy is the data controller" in notice_body

    # The stop link: GET asks and changes nothing; POST (CSRF-checked) opts out; again, nothing.
    path = stop_path(Mailbox.body(mary[1]))
    client = Client(enforce_csrf_checks=True)
    page = client.get(path)
    assert page.status_code == 200
    assert "Stop all messages from Example Academy" in page.content.decode()
    assert not adult(roll, "Mary").opted_out
    assert client.post(path).status_code == 403  # no CSRF token
    assert not adult(roll, "Mary").opted_out
    token = page.cookies["csrftoken"].value
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode())
    assert csrf is not None and token
    done = client.post(path, {"csrfmiddlewaretoken": csrf.group(1)})
    assert done.status_code == 200 and "Messages stopped" in done.content.decode()
    assert adult(roll, "Mary").opted_out
    again = client.post(path, {"csrfmiddlewaretoken": csrf.group(1)})
    assert again.status_code == 200
    assert (
        AuditEvent.objects.filter(action="person.opted_out", actor_label="stop link").count() == 1
    )
    assert "Messages are stopped already" in client.get(path).content.decode()
    # A token we did not make, or one altered: 404.
    assert Client().get(path[:-3] + "xx/").status_code == 404
    assert Client().get("/p/a1-AAAAAAAAAAAAAAAAAAAAAA/").status_code == 404


def test_opting_out_from_the_notices_link_stops_the_message_waiting_for_it(roll: School) -> None:
    message = send(roll, mode="sms", audience=Audience(students="years", years=("9",)))
    assert drain("sms", seconds=5) == 1  # Zoë's notice; her message copy waits
    sms = OutboxMessage.objects.get(to="+447700900004")
    path = stop_path(sms.body)
    client = Client()
    client.get(path)
    client.post(path, {"csrfmiddlewaretoken": client.cookies["csrftoken"].value})
    assert adult(roll, "Zoë").opted_out
    Delivery.objects.filter(message=message).update(next_attempt_at=timezone.now())
    drain("sms", seconds=5)
    copy = Delivery.objects.get(message=message)
    assert copy.status == Status.SKIPPED and "opted out" in copy.reason
    assert OutboxMessage.objects.filter(to="+447700900004").count() == 1
    # Its credit came back.
    message.refresh_from_db()
    assert message.credits_refunded == 1


def test_stop_tokens_are_per_person_and_unforgeable() -> None:
    token = stop_token(ADULT, 42)
    found = read_stop_token(token)
    assert found is not None and (found.kind, found.pk) == (ADULT, 42)
    head, _, mac = token.partition("-")
    assert (head, len(mac)) == ("a16", 22)  # 42 in base 36; 128 bits of MAC
    assert read_stop_token(f"a17-{mac}") is None  # 43 with 42's MAC
    assert read_stop_token(f"m{head[1:]}-{mac}") is None
    for junk in ("", "-", "a-", "zz-abc", "a" + "1" * 40 + "-x", "a1-" + "A" * 22):
        assert read_stop_token(junk) is None


# --- the account, the dashboard, the command --------------------------------------------------------


def test_a_parent_reads_each_schools_notice_from_the_account_and_is_recorded_as_shown(
    roll: School,
) -> None:
    from homelink.accounts.tests.conftest import make_parent

    user = make_parent("mary.parent@example.org")
    mary = adult(roll, "Mary")
    mary.account = user
    mary.save(update_fields=["account"])
    client = Client()
    client.force_login(user)
    account = client.get(reverse("account")).content.decode()
    url = reverse("privacy_notice", kwargs={"urn": roll.urn})
    assert f'href="{url}"' in account
    page = client.get(url).content.decode()
    assert "Example Academy is the data controller" in page and "Continue to your account" in page
    client.get(url)
    receipt = NoticeReceipt.objects.get(school=roll)
    assert (receipt.adult_id, receipt.account_id, receipt.how) == (mary.pk, user.pk, "shown")
    assert mary not in notices.untold_adults(roll)
    # Anyone may read it; only a linked parent's reading is recorded.
    assert Client().get(url).status_code == 200
    assert NoticeReceipt.objects.count() == 1


def test_the_dashboard_counts_adults_not_yet_told(roll: School, admin_a: Any) -> None:
    client = Client()
    client.force_login(admin_a)
    url = reverse("console:dashboard", kwargs={"urn": roll.urn})
    told = re.compile(r"not yet sent the privacy notice</dt><dd><a [^>]+>(\d+)</a>")
    match = told.search(client.get(url).content.decode())
    assert match is not None and match.group(1) == "4"
    send(roll, audience=Audience(students="years", years=("7",)))
    match = told.search(client.get(url).content.decode())
    assert match is not None and match.group(1) == "1"


def test_the_console_button_sends_the_notice_to_everyone_not_yet_told(
    roll: School, admin_a: Any, sender_a: Any
) -> None:
    url = reverse("console:notice_send", kwargs={"urn": roll.urn})
    sender = Client()
    sender.force_login(sender_a)
    assert sender.post(url).status_code == 403
    client = Client()
    client.force_login(admin_a)
    response = client.post(url)
    notice = notice_message(roll)
    assert response["Location"] == reverse(
        "console:message", kwargs={"urn": roll.urn, "message_id": notice.pk}
    )
    assert (notice.email_count, notice.sms_count) == (2, 2)
    assert notices.untold_count(roll) == 0
    client.post(url)
    assert Message.objects.count() == 1


def test_homelink_privacy_notify_dry_run_prints_counts_and_sends_nothing(roll: School) -> None:
    out = StringIO()
    call_command("privacy", "notify", "--school", roll.urn, "--dry-run", stdout=out)
    assert "4 adult(s) from the MIS not yet told; 2 by email, 2 by SMS" in out.getvalue()
    assert "Dry run" in out.getvalue()
    assert not Message.objects.exists() and not NoticeReceipt.objects.exists()
    out = StringIO()
    call_command("privacy", "notify", "--school", roll.urn, "--json", stdout=out)
    result = json.loads(out.getvalue())
    assert result["untold"] == 4 and result["email"] == 2 and result["sms"] == 2
    assert result["message_id"] == notice_message(roll).pk
    out = StringIO()
    call_command("privacy", "notify", "--school", roll.urn, stdout=out)
    assert "0 adult(s)" in out.getvalue() and "Nothing to send" in out.getvalue()
    with pytest.raises(CommandError, match="no school with URN 999"):
        call_command("privacy", "notify", "--school", "999")


def test_with_the_notice_turned_off_sends_are_as_before(roll: School, settings: Any) -> None:
    settings.HOMELINK_FIRST_CONTACT_NOTICE = False
    send(roll)
    assert not Message.objects.filter(kind=Message.Kind.NOTICE).exists()
    # The school can still send it when it chooses.
    result = notices.notify_untold(school=roll, actor="test", via="test")
    assert result.message is not None and result.untold == 4
