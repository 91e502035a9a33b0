"""Writing a message in the console: compose, preview (what it reaches and costs), send once.

The preview writes nothing; the send resolves the audience again and needs the preview's
one-time token, so a double click or a reposted form never sends twice.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import html
import re

import pytest
from django.contrib.auth.models import User
from django.contrib.sessions.backends.db import SessionStore
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone

from homelink.audit.models import AuditEvent
from homelink.console.messages.views import marked
from homelink.console.tests.compose import draft, new_url, preview, send, send_url, token_of
from homelink.console.tests.conftest import make_user, member_of
from homelink.messaging.models import Delivery, Message, Template
from homelink.register.models import Member
from homelink.schools.models import School

pytestmark = pytest.mark.django_db


@pytest.fixture
def sender(client, roll, sender_a):
    client.force_login(sender_a)
    return client


# --- compose ---------------------------------------------------------------------------------


def test_the_compose_page_offers_the_schools_years_and_groups_and_email_else_sms_first(
    sender, roll
):
    page = sender.get(new_url(roll)).content.decode()
    for year in ("7", "8", "9"):
        assert f'name="years" value="{year}"' in page
    for group in ("7A", "7B", "8B", "9C"):
        assert f'name="groups" value="{group}"' in page
    assert re.search(r'value="email_else_sms"[^>]*checked', page)
    assert re.search(r'name="who" value="parents"[^>]*checked', page)
    for label in ("Send by", "Send to", "Email subject", "SMS text", "Urgent", "Send later"):
        assert label in page
    assert 'type="date"' in page and 'type="time"' in page


def test_a_template_fills_the_form_and_another_schools_template_is_404(sender, roll, world_b):
    template = Template.objects.create(
        school=roll, name="Snow", subject="Snow day", sms_text="{school} is closed: snow."
    )
    page = sender.get(new_url(roll), {"template": template.pk}).content.decode()
    assert 'value="Snow day"' in page
    assert "{school} is closed: snow.</textarea>" in page
    assert "filled from the template “Snow”" in page
    assert sender.get(new_url(roll), {"template": world_b.template.pk}).status_code == 404
    assert sender.get(new_url(roll), {"template": "x"}).status_code == 404


def test_finding_students_by_name_offers_them_to_tick_and_keeps_what_was_typed(sender, roll):
    response = sender.post(
        new_url(roll),
        draft(action="find", students="chosen", student_q="smith", sms_text="Kept text"),
    )
    assert response.status_code == 200
    page = html.unescape(response.content.decode())
    amy = Member.objects.get(school=roll, mis_id="A1")
    ben = Member.objects.get(school=roll, mis_id="A2")
    assert f'name="student_ids" value="{amy.pk}"' in page
    assert f'name="student_ids" value="{ben.pk}"' in page
    assert "Smith, Amy (year 7, 7A; MIS id A1)" in page
    assert "Kept text</textarea>" in page
    assert "There is a problem" not in page  # a search is not a submission


def test_chosen_students_by_pasted_mis_ids_and_ticked_ones_together(sender, roll):
    ben = Member.objects.get(school=roll, mis_id="A2")
    page, _ = preview(
        sender,
        roll,
        students="chosen",
        years=[],
        student_ids=[str(ben.pk)],
        student_mis_ids="D1\nC1",
    )
    # Ben's parents (2 numbers) and Lou's Zoë; Kit has nobody.
    assert re.search(r"<dt>SMS</dt><dd>3</dd>", page)
    assert re.search(r"<dt>Students nobody reaches</dt><dd>1</dd>", page)


def test_unknown_mis_ids_are_an_error_on_their_field(sender, roll):
    response = sender.post(new_url(roll), draft(students="chosen", student_mis_ids="A1, ZZ9"))
    assert response.status_code == 400
    page = response.content.decode()
    assert "No current student has the MIS id ZZ9." in page
    assert 'id="id_student_mis_ids_error"' in page


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        ({"years": []}, "years", "Choose at least one year group."),
        ({"students": "groups"}, "groups", "Choose at least one registration group."),
        ({"who": "individuals"}, "people", "Choose at least one person"),
        ({"sms_text": ""}, "sms_text", "Write the SMS text."),
        ({"sms_text": "Hi {chidren}"}, "sms_text", "Unknown merge field {chidren}"),
        ({"mode": "email"}, "subject", "Write the email"),
        ({"send_date": "2020-01-01", "send_time": "09:00"}, "send_date", "That time has passed"),
        ({"send_date": "2030-01-01"}, "send_time", "Give the time to send at"),
    ],
)
def test_what_cannot_be_sent_is_shown_against_its_field(sender, roll, values, field, message):
    response = sender.post(new_url(roll), draft(**values))
    assert response.status_code == 400
    page = response.content.decode()
    assert message in page
    assert f'id="id_{field}_error"' in page
    assert 'role="alert"' in page and "There is a problem" in page
    assert not Message.objects.exists()


# --- the preview -----------------------------------------------------------------------------


def test_the_preview_counts_recipients_parts_credits_and_marks_the_ucs2_character(sender, roll):
    page, _ = preview(sender, roll)
    # Year 7's parents by SMS: Mary, Dan and Jill have mobiles; Kit Kay has nobody.
    assert re.search(r"<dt>People</dt><dd>3</dd>", page)
    assert re.search(r"<dt>SMS</dt><dd>3</dd>", page)
    assert re.search(r"<dt>Emails</dt><dd>0</dd>", page)
    assert re.search(r"<dt>Parts per SMS</dt><dd>1</dd>", page)
    assert re.search(r"<dt>Encoding</dt><dd>UCS-2</dd>", page)
    assert re.search(r"<dt>Credits it costs</dt><dd>3</dd>", page)
    assert re.search(r"<dt>The school's credits</dt><dd>1000</dd>", page)
    assert "School closed today <mark>\u2013</mark> sorry" in page
    assert "U+2013 en dash" in page
    assert re.search(r"<dt>Students nobody reaches</dt><dd>1</dd>", page)
    unreachable = reverse("console:message_draft_unreachable", kwargs={"urn": roll.urn})
    assert f'href="{unreachable}?mode=sms&amp;who=parents' in page
    assert ">Send now</button>" in page
    assert not Message.objects.exists()
    assert School.objects.get(pk=roll.pk).sms_credits == 1000


def test_the_preview_gives_the_range_of_parts_when_names_change_the_length(sender, roll):
    # 150 characters, a space and the name: Dan Smith makes 160 (one part), Mary Smith and
    # Jill Jones 161 (two).
    page, _ = preview(sender, roll, sms_text="x" * 150 + " {name}")
    assert re.search(r"<dt>Parts per SMS</dt><dd>1\u20132</dd>", page)
    assert re.search(r"<dt>Encoding</dt><dd>GSM-7</dd>", page)
    assert re.search(r"<dt>Credits it costs</dt><dd>5</dd>", page)
    assert "<mark>" not in page.split('id="examples"')[0]


def test_names_outside_gsm7_are_counted(sender, roll):
    page, _ = preview(sender, roll, years=["9"], sms_text="Hello {name}")
    assert "1 copy is sent as UCS-2 because a name" in page
    assert "SMS to Zoë Brown" in page and "Hello Zoë Brown" in page


def test_the_preview_shows_the_first_copies_rendered(sender, roll):
    page, _ = preview(
        sender,
        roll,
        mode="email_else_sms",
        subject="About {children}",
        email_body="Dear {name}, {school} is closed.",
        sms_text="{school} is closed.",
    )
    assert "Email to Mary Smith" in page
    assert "About Amy" in page and "Dear Mary Smith, Example Academy is closed." in page
    assert "SMS to Dan Smith" in page
    assert re.search(r"<dt>Emails</dt><dd>2</dd>", page)
    assert re.search(r"<dt>SMS</dt><dd>1</dd>", page)


def test_the_marks_split_the_text_into_runs():
    assert marked("a\u2019b\u2019\u2019c", ("\u2019",)) == [
        ("a", False),
        ("\u2019", True),
        ("b", False),
        ("\u2019\u2019", True),
        ("c", False),
    ]


# --- sending ---------------------------------------------------------------------------------


def test_a_sender_sends_and_lands_on_the_message(sender, roll, sender_a):
    _, token = preview(sender, roll)
    response = send(sender, roll, token)
    message = Message.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse(
        "console:message", kwargs={"urn": roll.urn, "message_id": message.pk}
    )
    assert (message.sms_count, message.credits_charged, message.created_by_id) == (
        3,
        3,
        sender_a.pk,
    )
    assert message.audience_label == "Parents of year 7"
    assert Delivery.objects.filter(message=message).count() == 3
    assert School.objects.get(pk=roll.pk).sms_credits == 997
    page = sender.get(response["Location"]).content.decode()
    assert "Sending: 3 messages (3 SMS) queued." in page


def test_an_administrator_can_send_too(client, roll, admin_a):
    client.force_login(admin_a)
    _, token = preview(client, roll)
    assert send(client, roll, token).status_code == 302
    assert Message.objects.get().created_by_id == admin_a.pk


def test_a_viewer_reads_the_compose_page_but_cannot_preview_or_send(client, roll, viewer_a):
    client.force_login(viewer_a)
    page = client.get(new_url(roll)).content.decode()
    assert "Only the school's senders and administrators can send messages." in page
    assert 'name="sms_text"' not in page
    assert client.post(new_url(roll), draft()).status_code == 403
    assert client.post(send_url(roll), {**draft(), "token": "x"}).status_code == 403
    assert not Message.objects.exists()


def test_a_double_submit_sends_once_and_the_repost_leads_to_the_message(sender, roll):
    _, token = preview(sender, roll)
    first = send(sender, roll, token)
    second = send(sender, roll, token)
    message = Message.objects.get()
    assert first["Location"] == second["Location"]
    assert Delivery.objects.count() == 3
    assert AuditEvent.objects.filter(action="message.queued").count() == 1
    page = sender.get(second["Location"]).content.decode()
    assert "This message was already sent" in page and "nothing more was sent" in page
    assert str(message.pk) in second["Location"]


def test_each_preview_has_its_own_token(sender, roll):
    _, one = preview(sender, roll)
    _, two = preview(sender, roll, years=["8"])
    assert one != two
    assert send(sender, roll, one).status_code == 302
    assert send(sender, roll, two, years=["8"]).status_code == 302
    assert Message.objects.count() == 2


def test_a_token_this_session_never_issued_sends_nothing(sender, roll):
    response = send(sender, roll, "made-up")
    assert response.status_code == 400
    page = response.content.decode()
    assert "This preview is too old to send" in page
    assert not Message.objects.exists()
    # The page is a fresh preview: its own token sends.
    assert send(sender, roll, token_of(page)).status_code == 302


def test_a_large_send_needs_the_second_confirmation(sender, roll):
    School.objects.filter(pk=roll.pk).update(large_send_threshold=2)
    page, token = preview(sender, roll)
    assert "I confirm sending 3 messages" in page
    response = send(sender, roll, token)
    assert response.status_code == 400
    assert "confirm the large send" in response.content.decode()
    assert not Message.objects.exists()
    assert School.objects.get(pk=roll.pk).sms_credits == 1000
    # A confirmation of fewer than it now sends (the audience grew since) asks again.
    response = send(sender, roll, token, confirmed_large="2")
    assert response.status_code == 400
    assert "confirm the large send" in response.content.decode()
    assert not Message.objects.exists()
    # The refused token was not used up: confirming the count shown sends.
    response = send(sender, roll, token, confirmed_large="3")
    assert response.status_code == 302
    assert Message.objects.get().sms_count == 3


def test_not_enough_credits_is_refused_and_nothing_is_written(sender, roll):
    School.objects.filter(pk=roll.pk).update(sms_credits=2)
    page, token = preview(sender, roll)
    assert "Not enough SMS credits: this needs 3 and the school has 2." in page
    assert ">Send now</button>" not in page
    events = AuditEvent.objects.count()
    response = send(sender, roll, token)
    assert response.status_code == 400
    assert "needs 3 SMS credits and the school has 2" in response.content.decode()
    assert not Message.objects.exists() and not Delivery.objects.exists()
    assert School.objects.get(pk=roll.pk).sms_credits == 2
    assert AuditEvent.objects.count() == events


def test_the_send_checks_the_draft_again(sender, roll):
    _, token = preview(sender, roll)
    response = send(sender, roll, token, sms_text="")
    assert response.status_code == 400
    assert "Write the SMS text." in response.content.decode()
    assert not Message.objects.exists()


def test_a_scheduled_send_says_when_and_is_listed_as_scheduled(sender, roll):
    when = timezone.localtime() + dt.timedelta(days=2)
    values = {"send_date": when.strftime("%Y-%m-%d"), "send_time": "09:30"}
    page, token = preview(sender, roll, **values)
    assert "Schedule for" in page
    send(sender, roll, token, **values)
    message = Message.objects.get()
    assert message.scheduled
    assert timezone.localtime(message.send_at).strftime("%Y-%m-%d %H:%M") == (
        f"{when:%Y-%m-%d} 09:30"
    )
    listing = sender.get(reverse("console:messages", kwargs={"urn": roll.urn})).content.decode()
    assert "Scheduled for" in listing


def test_urgent_email_else_sms_to_staff_by_role(sender, roll):
    values = {
        "mode": "email_else_sms",
        "who": "staff",
        "staff_roles": ["teacher"],
        "subject": "Staff meeting",
        "email_body": "At 4pm, {name}.",
        "urgent": "on",
    }
    _, token = preview(sender, roll, **values)
    send(sender, roll, token, **values)
    message = Message.objects.get()
    assert message.urgent and message.audience_label == "Staff: Teacher"
    assert list(Delivery.objects.values_list("to", "priority")) == [
        ("tess@example.org", Delivery.URGENT)
    ]


def test_chosen_people_found_by_search(sender, roll):
    response = sender.post(new_url(roll), draft(action="find", who="individuals", person_q="jill"))
    page = html.unescape(response.content.decode())
    match = re.search(r'name="people" value="(adult:\d+)"', page)
    assert match is not None
    assert "Jill Jones (parent or carer of Jo)" in page
    values = {"who": "individuals", "people": [match.group(1)]}
    _, token = preview(sender, roll, **values)
    send(sender, roll, token, **values)
    assert list(Delivery.objects.values_list("to", flat=True)) == ["+447700900003"]


def test_another_schools_people_cannot_be_chosen(sender, roll, world_b):
    response = sender.post(
        new_url(roll), draft(who="individuals", people=[f"adult:{world_b.adult.pk}"])
    )
    assert response.status_code == 400
    assert "Choose people from the list." in response.content.decode()
    assert not Message.objects.filter(school=roll).exists()


def test_parents_plus_staff_by_role(sender, roll):
    values = {"mode": "email", "subject": "Hi", "email_body": "Hi", "also_roles": ["teacher"]}
    page, _ = preview(sender, roll, **values)
    assert "Parents of year 7 and staff: Teacher" in page
    assert re.search(r"<dt>Emails</dt><dd>3</dd>", page)  # Mary, Jill and Tess


def test_a_sender_at_one_school_cannot_send_at_another(client, roll, world_b):
    user = make_user("both@example.org")
    member_of(user, roll, "sender")
    member_of(user, world_b.school, "viewer")
    client.force_login(user)
    assert client.post(new_url(world_b.school), draft()).status_code == 403


@pytest.mark.django_db(transaction=True)
def test_two_sends_of_one_preview_at_the_same_moment_send_once(client, roll, sender_a):
    """A double click: two requests with the same token race; the token is marked in the
    transaction that queues the message, behind a lock, so the second finds it used."""
    import threading

    from django.db import connections
    from django.test import Client

    client.force_login(sender_a)
    _, token = preview(client, roll)
    barrier = threading.Barrier(2)
    statuses: list[int] = []

    def post() -> None:
        twin = Client()
        twin.cookies = client.cookies
        try:
            barrier.wait()
            statuses.append(send(twin, roll, token).status_code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=post) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [302, 302]
    assert Message.objects.count() == 1
    assert Delivery.objects.count() == 3
    assert School.objects.get(pk=roll.pk).sms_credits == 997


def test_a_time_the_clocks_skip_is_refused(sender, roll):
    # The clocks go forward at 01:00 on the last Sunday of March: 01:30 does not exist then.
    year = timezone.localdate().year + 1
    day = dt.date(year, 3, 31)
    day -= dt.timedelta(days=(day.weekday() + 1) % 7)
    response = sender.post(new_url(roll), draft(send_date=day.isoformat(), send_time="01:30"))
    assert response.status_code == 400
    assert "That time does not exist on that day" in response.content.decode()


def test_console_posts_stay_out_of_error_reports(
    rf: RequestFactory, school: School, sender_a: User
) -> None:
    """A crash while staff send a message must not mail its text, or the names and addresses
    of a form, to the operators."""
    from django.views.debug import SafeExceptionReporterFilter

    from homelink.console.messages.views import message_new

    request = rf.post(
        f"/console/{school.urn}/messages/new/",
        {"action": "preview", "sms_text": "Dear Mary, Amy was absent", "subject": "Absence"},
    )
    request.user = sender_a
    request.session = SessionStore()
    # Whether the page renders without middleware does not matter: only the marking does.
    with contextlib.suppress(Exception):
        message_new(request, urn=school.urn)
    cleaned = SafeExceptionReporterFilter().get_post_parameters(request)
    assert "Amy" not in str(cleaned)
    assert "Absence" not in str(cleaned)
