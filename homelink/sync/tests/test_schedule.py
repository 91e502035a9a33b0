"""The schedule: when a sync is due, that one claim among racing workers wins, and how failures
are retried; and the staleness alert, emailed once over real SMTP."""

from __future__ import annotations

import datetime as dt
import shutil
import threading
import zoneinfo
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.db.models import F
from django.utils import timezone

from homelink.mail_testing import Mailbox
from homelink.mis.models import ImportRun
from homelink.schools.models import School
from homelink.staff.models import Role, StaffMembership
from homelink.staff.testing import confirm_email_directly
from homelink.sync.alerts import sync_alert_stale
from homelink.sync.models import SyncSource
from homelink.sync.selectors import sync_status
from homelink.sync.services import (
    RETRIES,
    next_scheduled,
    sync_claim_due,
    sync_run,
    sync_set_folder,
)

LONDON = zoneinfo.ZoneInfo("Europe/London")
CTF = (
    Path(__file__).resolve().parents[2]
    / "mis"
    / "tests"
    / "data"
    / "ctf_spaced_and_local_numbers.xml"
)


def local(year: int, month: int, day: int, hour: int, minute: int) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=LONDON)


@pytest.fixture
def quick(settings: Any, tmp_path: Path) -> Any:
    settings.HOMELINK_SYNC_SETTLE_SECONDS = 0
    settings.HOMELINK_SYNC_ROOT = tmp_path / "sync"
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings


# --- when ------------------------------------------------------------------------------------


def test_the_next_run_is_the_next_time_the_local_clock_shows_it() -> None:
    two = dt.time(2, 0)
    assert next_scheduled(two, local(2026, 12, 3, 1, 59)) == local(2026, 12, 3, 2, 0)
    assert next_scheduled(two, local(2026, 12, 3, 2, 0)) == local(2026, 12, 4, 2, 0)
    assert next_scheduled(two, local(2026, 12, 3, 15, 0)) == local(2026, 12, 4, 2, 0)


def test_the_schedule_keeps_to_the_local_clock_across_summer_time() -> None:
    # The clocks go forward at 01:00 GMT on 29 March 2026: 02:00 that night is 01:00 UTC,
    # and the night before it was 02:00 UTC.
    before = next_scheduled(dt.time(2, 0), local(2026, 3, 27, 12, 0))
    after = next_scheduled(dt.time(2, 0), before)
    assert before.astimezone(dt.UTC).hour == 2
    assert after.astimezone(dt.UTC).hour == 1
    assert after.astimezone(LONDON).hour == 2


def test_a_new_sync_is_first_due_at_its_time(school: School, quick: Any) -> None:
    config = sync_set_folder(school=school, at=dt.time(3, 30), actor_label="test")
    assert config.next_due_at is not None
    due = timezone.localtime(config.next_due_at)
    assert (due.hour, due.minute) == (3, 30)
    assert timezone.now() < config.next_due_at <= timezone.now() + dt.timedelta(days=1)
    assert Path(config.folder) == quick.HOMELINK_SYNC_ROOT.resolve() / school.urn
    assert Path(config.folder).is_dir()


# --- claims ----------------------------------------------------------------------------------


def _due(school: School) -> SyncSource:
    config = sync_set_folder(school=school, actor_label="test")
    SyncSource.objects.filter(pk=config.pk).update(
        next_due_at=timezone.now() - dt.timedelta(minutes=1)
    )
    return config


def test_a_sync_not_yet_due_is_not_claimed(school: School, quick: Any) -> None:
    sync_set_folder(school=school, actor_label="test")
    assert sync_claim_due() == []


@pytest.mark.django_db(transaction=True)
def test_of_four_workers_claiming_at_once_exactly_one_gets_a_due_sync(quick: Any) -> None:
    # Enough schools that the four sweeps overlap, whatever the scheduler does.
    schools = [
        School.objects.create(
            urn=f"1002{i:02}", name=f"School {i}", la_code="838", estab=f"40{i:02}"
        )
        for i in range(60)
    ]
    for school in schools:
        _due(school)
    barrier = threading.Barrier(4)
    claims: list[list[int]] = []

    def worker() -> None:
        try:
            barrier.wait()
            claims.append(sync_claim_due())
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    claimed = sorted(s for c in claims for s in c)
    assert claimed == sorted(s.pk for s in schools)
    # Claimed means moved past now: the next sweep claims none of them again.
    assert sync_claim_due() == []


# --- failures and retries ----------------------------------------------------------------------


def test_an_empty_drop_folder_is_retried_hourly_then_waits_for_the_next_night(
    school: School, quick: Any
) -> None:
    config = _due(school)
    now = timezone.now()
    for attempt in range(1, RETRIES + 2):
        outcome = sync_run(school=school, trigger=ImportRun.Trigger.SCHEDULED, now=now)
        assert outcome.status == ImportRun.Status.FAILED
        assert "no file arrived in the drop folder" in outcome.error
        config.refresh_from_db()
        assert config.attempts == attempt
        if attempt <= RETRIES:
            assert config.next_due_at == now + dt.timedelta(hours=1)
        else:
            assert config.next_due_at == next_scheduled(config.at, now)
        now += dt.timedelta(hours=1)
    assert config.last_error.startswith("no file arrived in the drop folder")
    assert config.last_success_at is None
    # Every attempt is in the one import history, as a scheduled drop-folder run.
    runs = ImportRun.objects.filter(school=school)
    assert runs.count() == RETRIES + 1
    assert set(runs.values_list("source", "trigger")) == {("folder", "scheduled")}


def test_a_manual_run_does_not_move_the_schedule(school: School, quick: Any) -> None:
    config = sync_set_folder(school=school, actor_label="test")
    due = config.next_due_at
    sync_run(school=school, trigger=ImportRun.Trigger.MANUAL)
    config.refresh_from_db()
    assert config.next_due_at == due
    assert config.attempts == 1


def test_a_success_clears_the_failures_and_the_alert(school: School, quick: Any) -> None:
    config = _due(school)
    sync_run(school=school, trigger=ImportRun.Trigger.SCHEDULED)
    SyncSource.objects.filter(pk=config.pk).update(alerted_at=timezone.now())
    shutil.copy(CTF, Path(config.folder) / "nightly.xml")
    outcome = sync_run(school=school, trigger=ImportRun.Trigger.SCHEDULED)
    assert outcome.status == ImportRun.Status.APPLIED, outcome.error
    config.refresh_from_db()
    assert (config.attempts, config.last_error, config.alerted_at) == (0, "", None)
    assert config.last_success_at is not None
    assert config.next_due_at == next_scheduled(config.at, config.last_success_at)


# --- staleness ---------------------------------------------------------------------------------


def _admin(school: School, email: str, role: str = Role.ADMINISTRATOR) -> None:
    from django.contrib.auth.models import User

    user = User.objects.create_user(username=email, email=email, password="x" * 16)
    confirm_email_directly(user)
    StaffMembership.objects.create(user=user, school=school, role=role)


@pytest.mark.django_db(transaction=True)
def test_a_stale_sync_emails_the_administrators_once_saying_why(
    school: School, quick: Any, smtp: Mailbox
) -> None:
    other = School.objects.create(urn="100999", name="Other School", la_code="838", estab="4999")
    _admin(school, "head@example.org")
    _admin(school, "office@example.org", Role.SENDER)
    _admin(other, "principal@other.example.org")
    config = _due(school)
    sync_set_folder(school=other, folder=quick.HOMELINK_SYNC_ROOT / "other", actor_label="test")
    sync_run(school=school, trigger=ImportRun.Trigger.SCHEDULED)

    # Not yet 36 hours: nothing said, and the dashboard is not red.
    assert sync_alert_stale() == []
    assert not sync_status(school).stale
    later = timezone.now() + dt.timedelta(hours=37)
    assert sync_status(school, now=later).stale
    assert sorted(sync_alert_stale(now=later)) == sorted([school.pk, other.pk])
    # Every sweep after that, whatever the attempts: no second email.
    for hours in (38, 39, 60):
        sync_run(school=school, trigger=ImportRun.Trigger.SCHEDULED)
        assert sync_alert_stale(now=timezone.now() + dt.timedelta(hours=hours)) == []

    mails = smtp.to("head@example.org")
    assert len(mails) == 1
    body = Mailbox.body(mails[0])
    assert "Example Academy" in str(mails[0]["Subject"])
    assert "no file arrived in the drop folder" in body
    assert f"/console/{school.urn}/imports/" in body
    # The sender is not an administrator; the other school's administrator hears only of theirs.
    assert smtp.to("office@example.org") == []
    assert len(smtp.to("principal@other.example.org")) == 1
    assert "Other School" in str(smtp.to("principal@other.example.org")[0]["Subject"])

    # A success re-arms it.
    shutil.copy(CTF, Path(config.folder) / "nightly.xml")
    assert sync_run(school=school, trigger=ImportRun.Trigger.SCHEDULED).wrote
    assert sync_alert_stale(now=timezone.now() + dt.timedelta(hours=12)) == []
    assert sync_alert_stale(now=timezone.now() + dt.timedelta(hours=40)) == [school.pk]
    assert len(smtp.to("head@example.org")) == 2


@pytest.mark.django_db(transaction=True)
def test_an_administrators_decision_on_a_stopped_sync_counts_as_its_success(
    school: School, quick: Any, smtp: Mailbox
) -> None:
    from django.contrib.auth.models import User

    from homelink.mis.generate import generate_ctf
    from homelink.mis.runs import import_apply
    from homelink.mis.tasks import carry_out

    _admin(school, "head@example.org")
    config = _due(school)
    generate_ctf(Path(config.folder) / "monday.xml", pupils=20, seed=7)
    assert sync_run(school=school, trigger=ImportRun.Trigger.SCHEDULED).wrote
    # Another roll under the school's name: every student would leave, so the sync stops.
    generate_ctf(Path(config.folder) / "tuesday.xml", pupils=20, seed=8)
    stopped = sync_run(school=school, trigger=ImportRun.Trigger.SCHEDULED).run
    assert stopped.status == ImportRun.Status.STOPPED

    # Nobody decides for two days (the history moved back 40 hours): red, and one email.
    back = dt.timedelta(hours=40)
    ImportRun.objects.filter(school=school).update(
        started_at=F("started_at") - back, finished_at=F("finished_at") - back
    )
    SyncSource.objects.filter(pk=config.pk).update(
        created_at=F("created_at") - back, last_success_at=F("last_success_at") - back
    )
    assert sync_status(school).stale
    assert sync_alert_stale() == [school.pk]
    assert len(smtp.to("head@example.org")) == 1

    # The administrator confirms the leavers and applies the file (what the console does).
    admin = User.objects.get(email="head@example.org")
    request = import_apply(run=stopped, user=admin, leavers_confirmed=True)
    carry_out(school_id=school.pk, run_id=request.pk, upload=request.upload)
    request.refresh_from_db()
    assert request.followed_by is not None
    assert request.followed_by.status == ImportRun.Status.APPLIED
    assert request.followed_by.source == ImportRun.Source.FOLDER

    # The register is up to date from the sync's own source: not stale, and the alert is
    # re-armed for the next time the sync stops succeeding.
    assert not sync_status(school).stale
    assert sync_alert_stale() == []
    config.refresh_from_db()
    assert config.alerted_at is None
    assert len(smtp.to("head@example.org")) == 1
    # Until the next 36 hours without a success.
    assert sync_status(school, now=timezone.now() + dt.timedelta(hours=37)).stale
