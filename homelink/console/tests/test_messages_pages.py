"""The console's other message pages: the list, one message (totals, recipients, CSV, cancel,
replies), the unreachable list, replies and blocked numbers, templates, and the dashboard's
delivery panel."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from homelink.audit.models import AuditEvent
from homelink.console.tests.compose import draft, preview, send
from homelink.console.tests.conftest import make_message
from homelink.messaging.models import (
    Delivery,
    GatewayHealth,
    InboundSms,
    Message,
    SmsBlock,
    Template,
)
from homelink.messaging.selectors import delivery_problems
from homelink.register.models import Adult, Member
from homelink.schools.models import School

pytestmark = pytest.mark.django_db


def url(name: str, school: School, **kwargs: Any) -> str:
    return reverse(f"console:{name}", kwargs={"urn": school.urn, **kwargs})


@pytest.fixture
def sent(client, roll, sender_a) -> Message:
    """Year 7's parents by SMS, sent by the sender through the pages."""
    client.force_login(sender_a)
    _, token = preview(client, roll)
    send(client, roll, token)
    return Message.objects.get(school=roll)


def mary(school: School) -> Adult:
    return Adult.objects.get(school=school, forename="Mary")


def deliveries(message: Message, n: int, **values: Any) -> None:
    now = timezone.now()
    Delivery.objects.bulk_create(
        Delivery(
            message=message,
            school=message.school,
            channel="email",
            to=f"p{i}@example.org",
            name=f"Parent {i:03d}",
            next_attempt_at=now,
            **values,
        )
        for i in range(n)
    )


# --- the list --------------------------------------------------------------------------------


def test_the_list_shows_each_message_its_progress_and_the_credits(client, sent, roll, viewer_a):
    Delivery.objects.filter(message=sent, to="+447700900001").update(status="delivered")
    Delivery.objects.filter(message=sent, to="+447700900002").update(status="failed")
    client.force_login(viewer_a)
    page = client.get(url("messages", roll)).content.decode()
    assert "Parents of year 7" in page and "SMS only" not in page
    assert "<td>SMS</td>" in page
    assert "<dt>SMS credits</dt><dd>997</dd>" in page
    row = page.split("Parents of year 7")[1].split("</tr>")[0]
    cells = re.findall(r"<td>(.*?)</td>", row, re.S)
    # Messages, waiting, sent, delivered, failed, created by.
    assert [re.sub(r"<[^>]+>", "", c).strip() for c in cells[1:]] == [
        "3 SMS",
        "1",
        "0",
        "1",
        "1",
        "sender@a.example",
    ]
    assert url("message_new", roll) not in page  # viewers do not get the link to write


def test_the_list_costs_the_same_queries_for_more_messages(client, roll, sender_a):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    adult = Adult.objects.filter(school=roll).first()
    assert adult is not None
    client.force_login(sender_a)

    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(url("messages", roll)).status_code == 200
        return len(ctx.captured_queries)

    make_message(roll, adult, to="a@example.org")
    few = queries()
    for n in range(20):
        make_message(roll, adult, to=f"{n}@example.org")
    assert queries() == few


# --- one message -----------------------------------------------------------------------------


def test_the_message_page_shows_what_was_sent_totals_and_recipients(client, sent, roll):
    Delivery.objects.filter(message=sent, to="+447700900002").update(
        status="failed", reason="unknown number", status_at=timezone.now()
    )
    page = client.get(url("message", roll, message_id=sent.pk)).content.decode()
    assert "<h1>Message to Parents of year 7</h1>" in page
    assert "School closed today \u2013 sorry" in page
    assert "sender@a.example" in page
    # The chart: a table with text for every status, the bars hidden from screen readers.
    assert '<caption class="visually-hidden">Delivery totals, of 3 messages</caption>' in page
    assert re.search(r"<th scope=\"row\">Waiting to send</th>\s*<td>2 <span", page)
    assert re.search(r"<th scope=\"row\">Failed</th>\s*<td>1 <span class=\"muted\">\(33%\)", page)
    assert 'aria-hidden="true"' in page
    # Stored in E.164, shown as a GB school writes them.
    for number in ("07700 900001", "07700 900002", "07700 900003"):
        assert number in page
    assert "unknown number" in page
    assert "3 recipients." in page


def test_the_recipients_filter_by_status_and_page_by_100(client, roll, sender_a):
    message = make_message(roll, mary(roll), to="x@example.org")
    deliveries(message, 150, status="failed", reason="bounced mailbox")
    client.force_login(sender_a)
    page = client.get(url("message", roll, message_id=message.pk), {"status": "failed"})
    html = page.content.decode()
    assert "150 recipients, page 1 of 2." in html
    assert html.count("bounced mailbox") == 100
    assert "status=failed&amp;page=2" in html
    second = client.get(
        url("message", roll, message_id=message.pk), {"status": "failed", "page": 2}
    )
    assert second.content.decode().count("bounced mailbox") == 50
    waiting = client.get(url("message", roll, message_id=message.pk), {"status": "queued"})
    assert "1 recipient." in waiting.content.decode()


def test_the_csv_has_every_row_and_is_recorded_as_an_export(client, roll, sender_a):
    message = make_message(roll, mary(roll), to="x@example.org")
    deliveries(message, 250, status="sent")
    Delivery.objects.filter(message=message, to="p7@example.org").update(name="=HYPERLINK(1)")
    client.force_login(sender_a)
    response = client.get(url("message_csv", roll, message_id=message.pk))
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == (
        f'attachment; filename="message-{roll.urn}-{message.pk}-deliveries.csv"'
    )
    assert response["Cache-Control"] == "no-store"
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 252
    assert rows[0]["to"] == "x@example.org" and rows[0]["status"] == "sent"
    assert rows[0]["name"] == "Mary Smith" and rows[0]["children"] == "Ada"
    assert any(r["name"] == "'=HYPERLINK(1)" for r in rows)  # never a formula
    assert rows[0]["sent_at"].startswith(str(timezone.localdate()))
    event = AuditEvent.objects.get(action="message.deliveries_exported")
    assert (event.school_id, event.actor_id, event.object_id) == (
        roll.pk,
        sender_a.pk,
        str(message.pk),
    )
    assert event.detail == {"rows": 252, "format": "csv"}


def test_viewers_may_read_and_download_but_not_cancel(client, sent, roll, viewer_a):
    client.force_login(viewer_a)
    page = client.get(url("message", roll, message_id=sent.pk)).content.decode()
    assert "Only the school's senders and administrators can cancel it." in page
    assert "Cancel the message</button>" not in page
    assert client.get(url("message_csv", roll, message_id=sent.pk)).status_code == 200
    response = client.post(url("message_cancel", roll, message_id=sent.pk), {"confirm": "on"})
    assert response.status_code == 403
    assert Delivery.objects.filter(message=sent, status="queued").count() == 3


def test_a_sender_cancels_what_is_not_sent_and_gets_the_credits_back(client, sent, roll):
    Delivery.objects.filter(message=sent, to="+447700900001").update(status="sent")
    page = client.get(url("message", roll, message_id=sent.pk)).content.decode()
    assert "2 messages have not been sent yet." in page
    response = client.post(url("message_cancel", roll, message_id=sent.pk), {"confirm": "on"})
    assert response.status_code == 302
    sent.refresh_from_db()
    assert sent.status == Message.Status.CANCELLED
    assert sorted(Delivery.objects.filter(message=sent).values_list("status", flat=True)) == [
        "cancelled",
        "cancelled",
        "sent",
    ]
    assert School.objects.get(pk=roll.pk).sms_credits == 999
    page = client.get(response["Location"]).content.decode()
    assert "Cancelled: 2 messages will not be sent, and 2 SMS credits went back." in page
    assert "Cancel the message</button>" not in page
    assert AuditEvent.objects.filter(action="message.cancelled").count() == 1


def test_cancelling_needs_the_box_ticked(client, sent, roll):
    response = client.post(url("message_cancel", roll, message_id=sent.pk), {})
    assert response.status_code == 400
    assert "Tick the box to confirm" in response.content.decode()
    assert Delivery.objects.filter(message=sent, status="queued").count() == 3


def test_a_message_already_sent_cannot_be_cancelled(client, sent, roll):
    Delivery.objects.filter(message=sent).update(status="sent")
    page = client.get(url("message", roll, message_id=sent.pk)).content.decode()
    assert "Cancel the message</button>" not in page
    response = client.post(
        url("message_cancel", roll, message_id=sent.pk), {"confirm": "on"}, follow=True
    )
    assert "Everything in this message has been sent already." in response.content.decode()


def test_replies_to_the_message_are_listed_on_it(client, sent, roll):
    mary = Adult.objects.get(school=roll, forename="Mary")
    InboundSms.objects.create(
        school=roll, from_number="+447700900001", text="Thanks, see you", in_reply_to=sent
    )
    InboundSms.objects.create(
        school=roll, from_number="+447700900003", text="STOP", action="stop", in_reply_to=sent
    )
    page = client.get(url("message", roll, message_id=sent.pk)).content.decode()
    assert "Thanks, see you" in page and "Mary Smith" in page
    amy = Member.objects.get(school=roll, mis_id="A1")
    assert url("member", roll, member_id=amy.pk) in page
    assert "STOP: SMS turned off for this number" in page
    assert mary.pk  # resolved by the number: the inbound handler left the adult empty


def test_another_schools_message_is_404_even_for_its_csv(client, sent, roll, world_b):
    for name in ("message", "message_csv", "message_unreachable"):
        assert client.get(url(name, roll, message_id=world_b.message.pk)).status_code == 404
    assert not AuditEvent.objects.filter(action="message.deliveries_exported").exists()


# --- the unreachable list --------------------------------------------------------------------


def test_the_drafts_unreachable_list_is_a_printable_page(client, roll, sender_a):
    client.force_login(sender_a)
    page, _ = preview(client, roll)
    link = re.search(r'href="([^"]*/messages/unreachable/\?[^"]+)"', page)
    assert link is not None
    response = client.get(link.group(1).replace("&amp;", "&"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "<h1>Nobody reachable: 1</h1>" in html
    assert "Kit Kay" in html and "<td>7</td>" in html and "<td>7A</td>" in html
    assert "no linked adult" in html
    assert "Parents of year 7, by SMS" in html
    assert "@media print" in open_css()  # the menus are left off the printout


def open_css() -> str:
    from django.contrib.staticfiles import finders

    path = finders.find("console/console.css")
    assert path is not None
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def test_the_unreachable_list_takes_a_post_too(client, roll, sender_a):
    client.force_login(sender_a)
    data = draft()
    data.pop("action")
    response = client.post(url("message_draft_unreachable", roll), data)
    assert "<h1>Nobody reachable: 1</h1>" in response.content.decode()


def test_a_sent_messages_unreachable_list_is_as_the_register_is_now(client, sent, roll):
    Adult.objects.filter(school=roll, forename="Jill").update(mobile="")
    page = client.get(url("message_unreachable", roll, message_id=sent.pk)).content.decode()
    assert "as the register is now" in page
    assert "when 1 was unreachable" in page
    assert "<h1>Nobody reachable: 2</h1>" in page
    assert "Jo Jones" in page and "no adult with a mobile that takes SMS" in page


def test_an_unreachable_query_that_makes_no_sense_is_400(client, roll, sender_a):
    client.force_login(sender_a)
    response = client.get(url("message_draft_unreachable", roll), {"mode": "fax", "who": "x"})
    assert response.status_code == 400
    assert "There is a problem" in response.content.decode()
    assert client.get(url("message_draft_unreachable", roll)).status_code == 200


# --- replies and blocked numbers -------------------------------------------------------------


def test_the_replies_page_resolves_senders_and_lists_blocked_numbers(client, sent, roll, viewer_a):
    mary = Adult.objects.get(school=roll, forename="Mary")
    tess = Member.objects.get(school=roll, mis_id="S1")
    Member.objects.filter(pk=tess.pk).update(mobile="+447700900009")
    InboundSms.objects.create(school=roll, from_number="+447700900001", text="Is it snow?")
    InboundSms.objects.create(
        school=roll, from_number="+447700900002", text="stop", action="stop", in_reply_to=sent
    )
    InboundSms.objects.create(
        school=roll, from_number="+447700900002", text="START", action="start"
    )
    InboundSms.objects.create(school=roll, from_number="+447700900099", text="Who is this?")
    InboundSms.objects.create(
        school=roll, from_number="+447700900009", text="On my way", member=tess
    )
    SmsBlock.objects.create(school=roll, number="+447700900001", keyword="STOP")
    client.force_login(viewer_a)
    page = client.get(url("replies", roll)).content.decode()
    received = page.split('id="texts"')[1].split('id="blocked"')[0]
    texts = ("On my way", "Who is this?", "START</p>", "stop</p>", "Is it snow?")
    positions = [received.index(t) for t in texts]
    assert positions == sorted(positions), "newest first"
    assert "Unknown number" in page
    assert "STOP: SMS turned off for this number" in page
    assert "START: SMS back on for this number" in page
    assert url("member", roll, member_id=tess.pk) in page
    amy = Member.objects.get(school=roll, mis_id="A1")
    blocked = page.split('id="blocked"')[1]
    assert "07700 900001" in blocked and "Mary Smith" in blocked
    assert url("member", roll, member_id=amy.pk) in blocked
    assert url("message", roll, message_id=sent.pk) in page
    assert mary.pk


# --- templates -------------------------------------------------------------------------------


def test_a_sender_creates_edits_and_deletes_a_template(client, roll, sender_a):
    client.force_login(sender_a)
    page = client.get(url("templates", roll)).content.decode()
    for field in ("{name}", "{children}", "{school}"):
        assert field in page
    response = client.post(
        url("template_new", roll),
        {"name": "Snow", "subject": "Closed", "sms_text": "{school} is closed today."},
    )
    assert response.status_code == 302
    template = Template.objects.get(school=roll)
    page = client.get(url("templates", roll)).content.decode()
    assert "Snow" in page and "1 part, GSM-7" in page
    assert f"?template={template.pk}" in page
    response = client.post(
        url("template_edit", roll, template_id=template.pk),
        {"name": "Snow day", "subject": "Closed", "email_body": "Dear {name}"},
    )
    assert response.status_code == 302
    template.refresh_from_db()
    assert (template.name, template.email_body, template.sms_text) == (
        "Snow day",
        "Dear {name}",
        "",
    )
    response = client.post(url("template_delete", roll, template_id=template.pk))
    assert response.status_code == 302
    assert not Template.objects.filter(school=roll).exists()
    actions = list(
        AuditEvent.objects.filter(action__startswith="template.").values_list("action", flat=True)
    )
    assert sorted(actions) == ["template.deleted", "template.saved", "template.saved"]


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"name": ""}, "name", "Give the template a name."),
        ({"name": "X", "sms_text": "Hi {nmae}"}, "sms_text", "Unknown merge field {nmae}"),
        ({"name": "Taken"}, "name", "The school has a template with that name already."),
    ],
)
def test_template_errors_show_against_their_field(client, roll, sender_a, data, field, message):
    Template.objects.create(school=roll, name="Taken")
    client.force_login(sender_a)
    response = client.post(url("template_new", roll), data)
    assert response.status_code == 400
    page = response.content.decode()
    assert message in page and f'id="id_{field}_error"' in page
    assert Template.objects.filter(school=roll).count() == 1


def test_viewers_read_templates_but_cannot_change_them(client, roll, viewer_a):
    template = Template.objects.create(school=roll, name="Snow", sms_text="Closed")
    client.force_login(viewer_a)
    page = client.get(url("template_edit", roll, template_id=template.pk)).content.decode()
    assert "Only the school's senders and administrators can change templates." in page
    assert "Closed" in page and '<form method="post"' not in page
    for name, kwargs in (
        ("template_new", {}),
        ("template_edit", {"template_id": template.pk}),
        ("template_delete", {"template_id": template.pk}),
    ):
        assert client.post(url(name, roll, **kwargs), {"name": "Mine"}).status_code == 403
    assert Template.objects.get(school=roll).name == "Snow"


# --- the dashboard ---------------------------------------------------------------------------


def test_the_dashboard_shows_delivery_and_a_stall(client, roll, admin_a, request):
    now = timezone.now()
    message = make_message(roll, mary(roll), to="x@example.org")
    Delivery.objects.filter(message=message, status="queued").update(
        next_attempt_at=now - dt.timedelta(minutes=5)
    )
    Delivery.objects.filter(message=message, status="sent").update(
        status="failed", status_at=now - dt.timedelta(hours=1), sent_at=None
    )
    client.force_login(admin_a)
    page = client.get(url("dashboard", roll)).content.decode()
    assert "<dt>Messages waiting to be sent now</dt><dd>1</dd>" in page
    assert "<dt>Failed in the last 24 hours</dt><dd>1</dd>" in page
    assert "Delivery has stalled: 1 message has been due for more than 2 minutes" in page
    # A worker that sent anything, for any school, in the last two minutes is alive.
    world_b = request.getfixturevalue("world_b")
    Delivery.objects.filter(school=world_b.school, status="sent").update(sent_at=now)
    assert delivery_problems(roll, now) == []


def test_delivery_problems_say_nothing_when_nothing_is_due(roll):
    now = timezone.now()
    make_message(roll, mary(roll), to="x@example.org")  # due just now, not two minutes ago
    Delivery.objects.update(sent_at=None)
    assert delivery_problems(roll, now) == []
    assert delivery_problems(roll, now + dt.timedelta(minutes=3))[0].startswith(
        "Delivery has stalled"
    )


def test_delivery_problems_add_the_gateways_health(roll):
    now = timezone.now()
    GatewayHealth.objects.create(
        gateway="sms", last_error_at=now, last_error="connection refused", failures_in_row=3
    )
    problems = delivery_problems(roll, now)
    assert len(problems) == 1 and "connection refused" in problems[0]


def test_a_head_request_for_the_csv_records_no_export(client, sent, roll):
    response = client.head(url("message_csv", roll, message_id=sent.pk))
    assert response.status_code == 200
    assert not AuditEvent.objects.filter(action="message.deliveries_exported").exists()


def test_a_message_reads_as_sent_once_nothing_waits(sent: Message) -> None:
    """The state staff see follows the copies: sending while any wait, sent once none do, and a
    scheduled message stops reading as scheduled when its time has come."""
    from homelink.messaging.models import Delivery
    from homelink.messaging.selectors import message_progress, message_state

    message = sent
    now = timezone.now()
    assert message_state(message, message_progress(message), now) == "sending"
    Delivery.objects.filter(message=message).update(status=Delivery.Status.SENT)
    assert message_state(message, message_progress(message), now) == "sent"
    message.send_at = now + dt.timedelta(hours=1)
    assert message_state(message, message_progress(message), now) == "scheduled"
    assert message_state(message, message_progress(message), now + dt.timedelta(hours=2)) == "sent"
