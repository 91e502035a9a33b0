"""Retention (issue 13 point 6): the school's periods, the purge and its dry run, the daily run by
the worker (once per school, however many workers), and nothing of a current student removed."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_tasks.base import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from homelink.audit.models import AuditEvent
from homelink.messaging.audience import Audience
from homelink.messaging.models import Delivery, InboundSms, Message
from homelink.mis.tests.test_cli import export, homelink
from homelink.privacy.models import RetentionPolicy
from homelink.privacy.retention import (
    months_before,
    retention_policy,
    retention_policy_set,
    retention_preview,
    retention_purge,
    retention_run_due,
)
from homelink.privacy.tasks import retention_schedule, retention_sweep
from homelink.register.models import Adult, Link, Member, Source
from homelink.registration.models import SecurityCode
from homelink.registration.services import codes_issue
from homelink.schools.models import School
from homelink.staff.models import Role, StaffMembership
from homelink.staff.testing import confirm_email_directly

NOW = timezone.now()
LONG_AGO = NOW - dt.timedelta(days=8 * 365)


def _student(school: School, upn: str, *, left_days: int | None = None) -> Member:
    member = Member.objects.create(
        school=school, kind="student", mis_id=upn, forename=upn, surname="Pupil"
    )
    if left_days is not None:
        Member.objects.filter(pk=member.pk).update(
            status=Member.Status.LEFT, left_at=NOW - dt.timedelta(days=left_days)
        )
        member.refresh_from_db()
    return member


def _adult(school: School, name: str) -> Adult:
    return Adult.objects.create(
        school=school, forename=name, surname="Parent", name_key=f"{name.lower()} parent"
    )


def _link(student: Member, adult: Adult) -> Link:
    return Link.objects.create(
        school=student.school, student=student, adult=adult, source=Source.IMPORT, priority=1
    )


def _message(school: School, days_ago: int, *, status: str = Delivery.Status.DELIVERED) -> Message:
    message = Message.objects.create(
        school=school,
        mode=Message.Mode.EMAIL,
        audience=Audience().to_json(),
        subject="News",
        email_body="Body",
        send_at=NOW,
        email_count=1,
    )
    Message.objects.filter(pk=message.pk).update(created_at=NOW - dt.timedelta(days=days_ago))
    Delivery.objects.create(
        message=message,
        school=school,
        channel="email",
        to="someone@example.org",
        status=status,
        next_attempt_at=NOW,
    )
    return message


def _event(school: School, days_ago: int) -> AuditEvent:
    return AuditEvent.objects.create(
        school=school,
        actor_label="test",
        action="test.event",
        at=NOW - dt.timedelta(days=days_ago),
    )


def _world(school: School) -> dict[str, Any]:
    """A current student with a parent shared with a long-gone leaver; the leaver's own
    parent; a recent leaver; a current student whose record is older than every period."""
    current = _student(school, "CURRENT1")
    veteran = _student(school, "CURRENT2")
    # A current student carrying an old left_at (they rejoined): still current, never purged.
    Member.objects.filter(pk=veteran.pk).update(left_at=LONG_AGO, created_at=LONG_AGO)
    gone = _student(school, "GONE1", left_days=400)
    recent = _student(school, "RECENT1", left_days=100)
    shared, only_gone, recent_parent, veteran_parent = (
        _adult(school, n) for n in ("Shared", "Onlygone", "Recentparent", "Veteranparent")
    )
    _link(current, shared)
    _link(gone, shared)
    _link(gone, only_gone)
    _link(recent, recent_parent)
    _link(veteran, veteran_parent)
    codes_issue(school=school, members=[gone, veteran], actor="test")
    staff_left = Member.objects.create(
        school=school, kind="adult", role="teacher", mis_id="T9", forename="Old", surname="Teacher"
    )
    Member.objects.filter(pk=staff_left.pk).update(
        status=Member.Status.LEFT, left_at=NOW - dt.timedelta(days=800)
    )
    old_message = _message(school, 800)
    new_message = _message(school, 30)
    stuck = _message(school, 800, status=Delivery.Status.QUEUED)
    InboundSms.objects.create(school=school, from_number="+447700900001", text="old")
    InboundSms.objects.filter(text="old").update(received_at=NOW - dt.timedelta(days=800))
    InboundSms.objects.create(school=school, from_number="+447700900001", text="new")
    _event(school, 7 * 365)
    _event(school, 30)
    return locals()


EXPECTED = {
    "leavers": 2,  # GONE1 and the teacher who left two years ago
    "leaver_links": 2,
    "leaver_contacts": 1,  # Onlygone; Shared is still a current student's parent
    "messages": 1,  # the old one; the one still queued is never pulled from a worker
    "message_copies": 1,
    "replies": 1,
    "audit_events": 1,
    "uploads": 0,
    "sync_files": 0,
}


@pytest.mark.django_db
def test_the_defaults_are_the_readmes() -> None:
    school = School.objects.create(urn="100003", name="Defaults")
    policy = retention_policy(school)
    assert (policy.leavers_months, policy.messages_months, policy.audit_years) == (12, 24, 6)
    assert policy.pk is None  # reading it writes nothing


def test_months_before_is_calendar_months() -> None:
    moment = dt.datetime(2026, 3, 31, 12, 0, tzinfo=dt.UTC)
    assert months_before(moment, 1) == dt.datetime(2026, 2, 28, 12, 0, tzinfo=dt.UTC)
    assert months_before(moment, 12) == dt.datetime(2025, 3, 31, 12, 0, tzinfo=dt.UTC)
    assert months_before(moment, 72) == dt.datetime(2020, 3, 31, 12, 0, tzinfo=dt.UTC)


@pytest.mark.django_db
def test_the_dry_run_removes_nothing_and_the_purge_removes_what_it_said(school: School) -> None:
    w = _world(school)
    out = homelink("privacy", "retention", "--school", school.urn, "--dry-run")
    assert "dry run, nothing removed" in out
    assert "members who left (register rows, with their letters): 2" in out
    assert retention_preview(school, now=NOW) == EXPECTED
    assert Member.objects.filter(pk=w["gone"].pk).exists()
    assert not AuditEvent.objects.filter(action="retention.purged").exists()

    out = homelink("privacy", "retention", "--school", school.urn)
    assert "Removed (recorded in the audit trail):" in out
    assert "adults linked only to those members: 1" in out

    assert not Member.objects.filter(pk=w["gone"].pk).exists()
    assert not Member.objects.filter(pk=w["staff_left"].pk).exists()
    assert not Adult.objects.filter(pk=w["only_gone"].pk).exists()
    assert not SecurityCode.objects.filter(member_id=w["gone"].pk).exists()
    assert Member.objects.filter(pk=w["recent"].pk).exists()
    assert Link.objects.filter(adult=w["recent_parent"]).exists()
    assert not Message.objects.filter(pk=w["old_message"].pk).exists()
    assert Message.objects.filter(pk__in=[w["new_message"].pk, w["stuck"].pk]).count() == 2
    assert list(InboundSms.objects.values_list("text", flat=True)) == ["new"]
    assert not AuditEvent.objects.filter(action="test.event", at__lt=NOW - dt.timedelta(days=365))

    policy = RetentionPolicy.objects.get(school=school)
    assert policy.last_purge_at is not None
    assert policy.last_purge == EXPECTED
    event = AuditEvent.objects.get(school=school, action="retention.purged")
    assert event.actor_label == "cli"
    assert event.detail["counts"] == EXPECTED
    # Counts only: nobody's name in the record of the purge.
    assert "GONE1" not in str(event.detail) and "Onlygone" not in str(event.detail)
    # A second purge finds nothing more.
    assert set(retention_preview(school).values()) == {0}


@pytest.mark.django_db
def test_nothing_of_a_current_student_is_ever_removed(school: School) -> None:
    w = _world(school)
    # The shortest periods a school can set.
    retention_policy_set(
        school=school, leavers_months=1, messages_months=1, audit_years=6, actor="test"
    )

    def current() -> list[dict[str, Any]]:
        return [m for m in export(school.urn)["members"] if m["status"] == "current"]

    before = current()
    codes = set(SecurityCode.objects.filter(member__status="current").values_list("pk", flat=True))
    assert len(before) == 2 and all(m["links"] for m in before)
    retention_purge(school=school, actor="test", now=NOW)
    assert current() == before
    assert codes == set(
        SecurityCode.objects.filter(member__status="current").values_list("pk", flat=True)
    )
    # The parent shared with a purged leaver keeps the current student.
    assert list(Link.objects.filter(adult=w["shared"]).values_list("student_id", flat=True)) == [
        w["current"].pk
    ]
    # And the recent leaver (left 100 days ago, over the 1-month period) went this time.
    assert not Member.objects.filter(pk=w["recent"].pk).exists()


@pytest.mark.django_db
def test_the_periods_are_validated_and_audited(school: School) -> None:
    with pytest.raises(ValidationError, match="leavers months must be from 1 to 120"):
        retention_policy_set(
            school=school, leavers_months=0, messages_months=24, audit_years=6, actor="test"
        )
    assert not RetentionPolicy.objects.exists()
    retention_policy_set(
        school=school, leavers_months=18, messages_months=24, audit_years=6, actor="test"
    )
    event = AuditEvent.objects.get(action="retention.changed")
    assert event.detail == {"leavers_months": 18}


@pytest.mark.django_db
def test_the_console_page_edits_the_periods_for_administrators(school: School) -> None:
    _world(school)
    url = reverse("console:retention", kwargs={"urn": school.urn})
    users = {}
    for role in (Role.ADMINISTRATOR, Role.VIEWER):
        user = get_user_model().objects.create_user(
            username=f"{role}@example.org", email=f"{role}@example.org", password="x"
        )
        confirm_email_directly(user)
        StaffMembership.objects.create(user=user, school=school, role=role)
        users[role] = Client()
        users[role].force_login(user)
    assert users[Role.VIEWER].get(url).status_code == 403
    office = users[Role.ADMINISTRATOR]
    page = office.get(url).content.decode()
    assert "Members who left (register rows, with their letters)</dt><dd>2" in page
    bad = office.post(url, {"leavers_months": "0", "messages_months": "24", "audit_years": "6"})
    assert bad.status_code == 400 and "There is a problem" in bad.content.decode()
    assert not RetentionPolicy.objects.exists()
    ok = office.post(url, {"leavers_months": "36", "messages_months": "24", "audit_years": "6"})
    assert ok.status_code == 302
    assert RetentionPolicy.objects.get(school=school).leavers_months == 36
    # GONE1 left 400 days ago and the teacher 800: under 36 months both stay.
    assert (
        "Members who left (register rows, with their letters)</dt><dd>0"
        in office.get(url).content.decode()
    )


# --- the daily run ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_daily_run_purges_each_school_once_a_day(school: School) -> None:
    other = School.objects.create(urn="100004", name="Second School")
    _world(school)
    first = retention_run_due(now=NOW)
    assert set(first) == {school.pk, other.pk}
    assert first[school.pk] == EXPECTED
    assert set(first[other.pk].values()) == {0}
    # Nothing removed at the other school: no event, but the policy says it ran.
    assert AuditEvent.objects.filter(action="retention.purged").count() == 1
    assert RetentionPolicy.objects.get(school=other).last_purge_at == NOW
    assert retention_run_due(now=NOW + dt.timedelta(hours=5)) == {}
    assert set(retention_run_due(now=NOW + dt.timedelta(hours=24))) == {school.pk, other.pk}


@pytest.mark.django_db(transaction=True)
def test_several_workers_purge_a_school_once(school: School) -> None:
    _world(school)
    barrier = threading.Barrier(4)
    results: list[dict[int, dict[str, int]]] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait()
            results.append(retention_run_due(now=NOW))
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sum(school.pk in r for r in results) == 1
    assert AuditEvent.objects.filter(action="retention.purged").count() == 1


@pytest.mark.django_db(transaction=True)
def test_the_worker_keeps_one_sweep_queued_and_the_sweep_purges(school: School) -> None:
    _world(school)
    # ``homelink worker`` queues the first sweep as it starts, a few minutes on.
    call_command("worker", "--batch", "--no-startup-delay", verbosity=0)
    waiting = DBTaskResult.objects.get(task_path=retention_sweep.module_path)
    assert waiting.status == TaskResultStatus.READY
    assert waiting.run_after > timezone.now() + dt.timedelta(minutes=5)
    assert not retention_schedule()  # one is waiting already: a second worker adds none
    # Due now: the worker runs it, and it queues the next sweep an hour on.
    DBTaskResult.objects.filter(pk=waiting.pk).update(run_after=timezone.now())
    call_command("worker", "--batch", "--no-startup-delay", verbosity=0)
    waiting.refresh_from_db()
    assert waiting.status == TaskResultStatus.SUCCESSFUL
    assert waiting.return_value == 1
    assert AuditEvent.objects.filter(action="retention.purged", actor_label="retention").exists()
    [following] = DBTaskResult.objects.filter(
        task_path=retention_sweep.module_path, status=TaskResultStatus.READY
    )
    assert following.run_after > timezone.now() + dt.timedelta(minutes=50)
