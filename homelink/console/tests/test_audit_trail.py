"""Audit of access (issue 13, point 3): viewing a member's linked people, exports and letters
are recorded (who, when, which record, never personal values); administrators read the trail in
the console, filtered and paged, and export it, and never see another school's events."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from homelink.audit.models import AuditEvent
from homelink.audit.services import audit_record
from homelink.console.tests.conftest import World
from homelink.register.models import Link
from homelink.register.services import link_remove

pytestmark = pytest.mark.django_db


def audit_url(world: World, **query: Any) -> str:
    url = reverse("console:audit", kwargs={"urn": world.school.urn})
    return url + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


def csv_url(world: World) -> str:
    return reverse("console:audit_csv", kwargs={"urn": world.school.urn})


def member_url(world: World) -> str:
    return reverse(
        "console:member", kwargs={"urn": world.school.urn, "member_id": world.student.pk}
    )


def personal_values(world: World) -> list[str]:
    """Names, emails and numbers of the world's people: none may be in an access event."""
    values = [world.student.forename, world.student.surname, world.adult.forename]
    for link in Link.objects.filter(student=world.student).select_related("adult"):
        values += [link.adult.forename, link.adult.surname, link.adult.email, link.adult.mobile]
    return [v for v in values if v]


def event_text(event: AuditEvent) -> str:
    return json.dumps(
        [event.actor_label, event.action, event.object_type, event.object_id, event.detail]
    )


def read_csv(response: Any) -> list[list[str]]:
    body = b"".join(response.streaming_content).decode("utf-8")
    assert body.startswith("\ufeff"), body[:100]
    return list(csv.reader(io.StringIO(body[1:])))


# --- access is recorded ----------------------------------------------------------------------


def test_viewing_a_members_linked_people_is_recorded(
    client: Client, world_a: World, viewer_a: Any
) -> None:
    client.force_login(viewer_a)
    before = timezone.now()
    assert client.get(member_url(world_a)).status_code == 200
    assert client.get(member_url(world_a)).status_code == 200  # every view is a row

    events = list(AuditEvent.objects.filter(action="member.viewed").order_by("pk"))
    assert len(events) == 2
    for event in events:
        assert event.school == world_a.school
        assert event.actor_id == viewer_a.pk
        assert event.actor_label == f"user:{viewer_a.pk}"
        assert (event.object_type, event.object_id) == ("member", str(world_a.student.pk))
        assert event.at >= before
        assert event.detail == {}
        text = event_text(event)
        assert not [v for v in personal_values(world_a) if v in text]


def test_a_head_request_records_nothing(client: Client, world_a: World, viewer_a: Any) -> None:
    client.force_login(viewer_a)
    assert client.head(member_url(world_a)).status_code == 200
    assert not AuditEvent.objects.filter(action="member.viewed").exists()


def test_viewing_is_one_insert(client: Client, world_a: World, viewer_a: Any) -> None:
    client.force_login(viewer_a)
    client.get(member_url(world_a))  # warm the session and caches
    with CaptureQueriesContext(connection) as queries:
        client.get(member_url(world_a))
    audit_sql = [q["sql"] for q in queries.captured_queries if "audit_auditevent" in q["sql"]]
    assert len(audit_sql) == 1
    assert audit_sql[0].startswith("INSERT")


def test_printing_letters_in_the_console_is_recorded(
    client: Client, world_a: World, admin_a: Any
) -> None:
    client.force_login(admin_a)
    response = client.post(
        reverse("console:letters", kwargs={"urn": world_a.school.urn}), {"year": "8"}
    )
    assert response["Content-Type"] == "application/pdf"
    event = AuditEvent.objects.get(action="letters.issued")
    assert (event.actor_label, event.school_id) == (f"user:{admin_a.pk}", world_a.school.pk)
    assert event.detail["count"] == 1
    assert not [v for v in personal_values(world_a) if v in event_text(event)]


def test_printing_one_letter_from_a_members_page_is_recorded(
    client: Client, world_a: World, admin_a: Any
) -> None:
    client.force_login(admin_a)
    url = reverse(
        "console:member_letter_issue",
        kwargs={"urn": world_a.school.urn, "member_id": world_a.student.pk},
    )
    assert client.post(url)["Content-Type"] == "application/pdf"
    event = AuditEvent.objects.filter(actor_label=f"user:{admin_a.pk}").latest("pk")
    assert event.action == "codes.issued"


def test_homelink_letters_and_export_are_recorded(world_a: World, tmp_path: Any) -> None:
    call_command("letters", school=world_a.school.urn, year="8", out=tmp_path / "l.pdf")
    call_command("export", school=world_a.school.urn, json=True, stdout=io.StringIO())
    printed = AuditEvent.objects.get(action="letters.issued")
    exported = AuditEvent.objects.get(action="register.exported")
    assert printed.actor_label == exported.actor_label == "cli"
    assert exported.detail == {"members": 3}


def test_a_messages_csv_export_is_recorded(client: Client, world_a: World, admin_a: Any) -> None:
    client.force_login(admin_a)
    url = reverse(
        "console:message_csv",
        kwargs={"urn": world_a.school.urn, "message_id": world_a.message.pk},
    )
    read_csv(client.get(url))
    event = AuditEvent.objects.get(action="message.deliveries_exported")
    assert event.actor_id == admin_a.pk
    assert event.detail == {"rows": 2, "format": "csv"}


# --- who sees the trail ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["audit", "audit_csv", "records", "records_pdf"])
def test_only_administrators_see_the_trail_and_the_records(
    client: Client, world_a: World, viewer_a: Any, sender_a: Any, admin_a: Any, name: str
) -> None:
    url = reverse(f"console:{name}", kwargs={"urn": world_a.school.urn})
    for user in (viewer_a, sender_a):
        client.force_login(user)
        assert client.get(url).status_code == 403
    assert not AuditEvent.objects.filter(action__in=["audit.exported", "privacy.records_exported"])
    client.force_login(admin_a)
    assert client.get(url).status_code == 200


def test_the_nav_offers_the_pages_to_administrators_only(
    client: Client, world_a: World, viewer_a: Any, admin_a: Any
) -> None:
    dashboard = reverse("console:dashboard", kwargs={"urn": world_a.school.urn})
    client.force_login(viewer_a)
    assert audit_url(world_a) not in client.get(dashboard).content.decode()
    client.force_login(admin_a)
    assert audit_url(world_a) in client.get(dashboard).content.decode()


def test_another_schools_events_never_show(
    client: Client, world_a: World, world_b: World, admin_a: Any
) -> None:
    audit_record(school=world_b.school, actor_label="cli", action="only.in.school.b")
    client.force_login(admin_a)
    page = client.get(audit_url(world_a)).content.decode()
    assert "only.in.school.b" not in page
    assert "only.in.school.b" not in json.dumps(read_csv(client.get(csv_url(world_a))))
    # Another school's member or adult, asked for by id, is refused: nothing of theirs shows.
    for query in ({"member": world_b.student.pk}, {"adult": world_b.adult.pk}):
        response = client.get(audit_url(world_a, **query))
        assert response.status_code == 400
        assert world_b.student.surname not in response.content.decode()
    # Another school's event id as the page anchor starts from the newest.
    b_event = AuditEvent.objects.filter(school=world_b.school).latest("pk")
    assert client.get(audit_url(world_a, before=b_event.pk)).status_code == 200


# --- filters and paging ----------------------------------------------------------------------


def rows_of(client: Client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, response.content.decode()[:500]
    return response.content.decode()


def test_filter_by_action_in_words(client: Client, world_a: World, admin_a: Any) -> None:
    audit_record(school=world_a.school, actor_label="cli", action="register.exported")
    audit_record(school=world_a.school, actor_label="cli", action="some.future_action")
    client.force_login(admin_a)
    page = rows_of(client, audit_url(world_a, action="register.exported"))
    assert "Exported the register (homelink export)" in page
    assert "some.future_action" not in page.split("<tbody>")[1]
    # An unknown code is shown as it is stored, never hidden.
    assert "some.future_action" in rows_of(client, audit_url(world_a))
    assert client.get(audit_url(world_a, action="no.such.action")).status_code == 400


def test_filter_by_person(client: Client, world_a: World, admin_a: Any, viewer_a: Any) -> None:
    client.force_login(viewer_a)
    client.get(member_url(world_a))
    client.force_login(admin_a)
    page = rows_of(client, audit_url(world_a, actor=f"user:{viewer_a.pk}"))
    body = page.split("<tbody>")[1]
    assert body.count("<tr>") == 1
    assert "viewer@a.example" in body
    assert "Viewed a member&#x27;s linked people" in body
    # The world was built by actor "test": a label of its own in the choices.
    built = rows_of(client, audit_url(world_a, actor="test")).split("<tbody>")[1]
    assert "viewer@a.example" not in built
    assert "Added an adult" in built


def test_filter_by_member_finds_their_record_links_and_letters(
    client: Client, world_a: World, admin_a: Any
) -> None:
    client.force_login(admin_a)
    client.get(member_url(world_a))
    other = Link.objects.exclude(student=world_a.student).filter(school=world_a.school).first()
    assert other is not None
    audit_record(school=world_a.school, actor_label="cli", action="x.other_link", obj=other)
    audit_record(
        school=world_a.school,
        actor_label="cli",
        action="privacy.sar_downloaded",
        obj=world_a.student,
    )
    page = rows_of(client, audit_url(world_a, member=world_a.student.pk))
    body = page.split("<tbody>")[1]
    assert "Viewed a member&#x27;s linked people" in body
    assert "Linked an adult to a student" in body  # world_a.link's event, about the link
    assert "Issued a security code" in body  # the student's letter
    assert "Downloaded a subject access export" in body
    assert "x.other_link" not in body
    assert "Only entries about Ada Lovelace" in page


def test_filter_by_adult(client: Client, world_a: World, admin_a: Any) -> None:
    audit_record(
        school=world_a.school, actor_label="cli", action="x.about_adult", obj=world_a.adult
    )
    audit_record(school=world_a.school, actor_label="cli", action="x.not_about_adult")
    client.force_login(admin_a)
    body = rows_of(client, audit_url(world_a, adult=world_a.adult.pk)).split("<tbody>")[1]
    assert "x.about_adult" in body
    assert "Added an adult" in body  # adult_create's event
    assert "x.not_about_adult" not in body


def test_filter_by_dates(client: Client, world_a: World, admin_a: Any) -> None:
    now = timezone.now()
    for days, action in ((40, "x.long_ago"), (10, "x.ten_days_ago"), (0, "x.today")):
        AuditEvent.objects.create(
            school=world_a.school,
            actor_label="cli",
            action=action,
            at=now - dt.timedelta(days=days),
        )
    today = timezone.localdate(now)
    client.force_login(admin_a)
    since = (today - dt.timedelta(days=11)).isoformat()
    until = (today - dt.timedelta(days=9)).isoformat()
    body = rows_of(client, audit_url(world_a, since=since, until=until)).split("<tbody>")[1]
    assert "x.ten_days_ago" in body
    assert "x.long_ago" not in body and "x.today" not in body
    # A range that ends before it starts is an error, not an empty page.
    assert client.get(audit_url(world_a, since=until, until=since)).status_code == 400
    assert client.get(audit_url(world_a, since="yesterday")).status_code == 400


def test_pages_are_newest_first_and_bounded(client: Client, world_a: World, admin_a: Any) -> None:
    start = timezone.now() - dt.timedelta(days=1)
    AuditEvent.objects.bulk_create(
        AuditEvent(
            school=world_a.school,
            actor_label="cli",
            action=f"x.event_{i:03d}",
            at=start + dt.timedelta(seconds=i // 2),  # pairs share a moment: ties by id
        )
        for i in range(120)
    )
    client.force_login(admin_a)
    seen: list[str] = []
    url = audit_url(world_a, actor="cli")
    pages = 0
    while url:
        page = client.get(url).context["page"]
        pages += 1
        assert len(page.events) <= 50
        seen += [e.action for e in page.events if e.action.startswith("x.event_")]
        url = audit_url(world_a, actor="cli", before=page.older) if page.older else ""
    assert pages == 3
    assert seen == [f"x.event_{i:03d}" for i in reversed(range(120))]


# --- the export ------------------------------------------------------------------------------


def test_the_csv_export_has_the_filtered_rows_and_is_itself_recorded(
    client: Client, world_a: World, admin_a: Any
) -> None:
    audit_record(
        school=world_a.school,
        actor_label="cli",
        action="register.exported",
        detail={"members": 3},
    )
    audit_record(school=world_a.school, actor_label="=cmd|' /C calc'!A0", action="x.formula")
    client.force_login(admin_a)
    response = client.get(csv_url(world_a) + "?action=register.exported")
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="audit-100001-')
    rows = read_csv(response)
    assert rows[0] == ["When", "Who", "Action", "Action code", "Record", "Record id", "Details"]
    assert len(rows) == 2
    when, who, words, code, _record, _record_id, details = rows[1]
    assert (who, words, code) == (
        "the command line",
        "Exported the register (homelink export)",
        "register.exported",
    )
    assert json.loads(details) == {"members": 3}
    assert dt.datetime.fromisoformat(when).tzinfo is not None

    export = AuditEvent.objects.get(action="audit.exported")
    assert export.actor_id == admin_a.pk
    assert export.detail["rows"] == 1
    assert export.detail["filter"]["action"] == "register.exported"

    # The whole trail: every event of the school but the export being made, and formulas
    # kept as text.
    everything = read_csv(client.get(csv_url(world_a)))
    expected = AuditEvent.objects.filter(school=world_a.school).count() - 1
    assert len(everything) - 1 == expected
    assert [r[1] for r in everything if r[3] == "x.formula"] == ["'=cmd|' /C calc'!A0"]
    # Newest first.
    times = [dt.datetime.fromisoformat(r[0]) for r in everything[1:]]
    assert times == sorted(times, reverse=True)


def test_a_removed_links_event_is_still_about_its_student_and_adult(
    client: Client, world_a: World, admin_a: Any
) -> None:
    # The removal's event names a link that no longer exists: its detail keeps who it joined.
    link_remove(link=world_a.link, actor=admin_a)
    assert not Link.objects.filter(pk=world_a.link.pk).exists()
    client.force_login(admin_a)
    for filtered in ({"member": world_a.student.pk}, {"adult": world_a.adult.pk}):
        body = rows_of(client, audit_url(world_a, **filtered)).split("<tbody>")[1]
        assert "Removed a link" in body, filtered
