"""The runner, as a review of issue 14 attacked it: one run of a school's sync at a time, and
its state written only onto the source that ran; retries counted per scheduled night; the
schedule in the hour the clocks go back; an error nobody foresaw recorded, not raised; a
database that fails under the import keeps the file for a retry; an administrator's decision
shown in the sync's own state; and nothing of a killed run or of a folder used before kept past
retention or an erasure.

Real parts: the fake OneRoster server on 127.0.0.1 (its slow answer keeps a run going), threads
with their own database connections, real ``homelink worker`` processes killed with SIGKILL, real
folders, the real retention purge and erasure.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import threading
import time
import zoneinfo
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from io import StringIO
from pathlib import Path
from typing import Any, TypeVar

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import connection, transaction
from django.utils import timezone

from homelink.bench.world import start_worker
from homelink.messaging.tests.test_delivery_under_load import wait_until
from homelink.mis.generate import generate_ctf
from homelink.mis.models import ImportRun
from homelink.mis.runs import import_apply
from homelink.mis.tasks import ABANDONED, carry_out
from homelink.mis.uploads import school_folder
from homelink.privacy.erasure import adult_erase
from homelink.privacy.retention import retention_purge
from homelink.register.models import Adult, Member
from homelink.schools.models import School
from homelink.staff.models import Role, StaffMembership
from homelink.sync.models import SyncSource
from homelink.sync.services import (
    RETRIES,
    RETRY_AFTER,
    SyncOutcome,
    next_scheduled,
    sync_release_abandoned,
    sync_remove,
    sync_run,
    sync_set_folder,
    sync_set_oneroster,
)
from homelink.sync.testing import FakeOneRoster
from homelink.sync.tests.conftest import MakeOneRosterSync
from homelink.sync.tests.test_workers import _environ

LONDON = zoneinfo.ZoneInfo("Europe/London")
CTF = (
    Path(__file__).resolve().parents[2]
    / "mis"
    / "tests"
    / "data"
    / "ctf_spaced_and_local_numbers.xml"
)
SCHEDULED = ImportRun.Trigger.SCHEDULED
MANUAL = ImportRun.Trigger.MANUAL
T = TypeVar("T")


@pytest.fixture
def quick(settings: Any, tmp_path: Path) -> Any:
    settings.HOMELINK_SYNC_SETTLE_SECONDS = 0
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings


@pytest.fixture
def in_thread() -> Iterator[Callable[[Callable[[], T]], Future[T]]]:
    """Run a call in another thread, on its own database connection."""
    pool = ThreadPoolExecutor(max_workers=1)

    def submit(call: Callable[[], T]) -> Future[T]:
        def run() -> T:
            try:
                return call()
            finally:
                connection.close()

        return pool.submit(run)

    yield submit
    pool.shutdown(wait=True)


def _drop(school: School, tmp_path: Path, name: str = "nightly.xml") -> Path:
    folder = tmp_path / "drop"
    sync_set_folder(school=school, folder=folder, actor_label="test")
    shutil.copy(CTF, folder / name)
    return folder


# --- one run of a school's sync at a time ---------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_run_while_another_is_going_does_not_start(
    school: School,
    quick: Any,
    fake_oneroster: FakeOneRoster,
    oneroster_sync: MakeOneRosterSync,
    in_thread: Callable[[Callable[[], SyncOutcome]], Future[SyncOutcome]],
) -> None:
    """Else the slower of two runs applies what it fetched after the faster applied newer
    data: the register goes back in time (a student who joined in between marked left)."""
    fake_oneroster.add_school(students=10)
    oneroster_sync(school, fake_oneroster)
    fake_oneroster.fault("enrollments", "slow", delay=1.0)
    by_hand = in_thread(lambda: sync_run(school=school, trigger=MANUAL))
    assert wait_until(lambda: bool(fake_oneroster.requests), timeout=10)

    # The nightly run comes due meanwhile, and somebody runs it from the command line too.
    now = timezone.now()
    nightly = sync_run(school=school, trigger=SCHEDULED, now=now)
    again = sync_run(school=school, trigger=MANUAL)

    for outcome in (nightly, again):
        assert (outcome.status, outcome.wrote) == (ImportRun.Status.FAILED, False)
        assert outcome.error.startswith("a sync of this school is already running (since ")
        assert outcome.run.source == "oneroster-api"  # in the one import history
    assert by_hand.result(timeout=30).status == ImportRun.Status.APPLIED
    config = SyncSource.objects.get(school=school)
    # Not a failure of the source, but tonight's run is tried again within the hour.
    assert (config.attempts, config.last_error) == (0, "")
    assert (config.next_due_at, config.retries) == (now + RETRY_AFTER, 1)
    assert (config.lease_token, config.running_since) == ("", None)
    assert sync_run(school=school, trigger=SCHEDULED).status == ImportRun.Status.UNCHANGED


@pytest.mark.django_db(transaction=True)
def test_a_run_of_the_old_source_leaves_no_state_on_the_new_one(
    school: School,
    quick: Any,
    fake_oneroster: FakeOneRoster,
    oneroster_sync: MakeOneRosterSync,
    in_thread: Callable[[Callable[[], SyncOutcome]], Future[SyncOutcome]],
) -> None:
    """Else the new MIS's first run is a delta from the old server's cursor (no full read, so
    nobody marked left for a week), and the dashboard says the new source succeeded."""
    fake_oneroster.add_school(students=10)
    oneroster_sync(school, fake_oneroster)
    fake_oneroster.fault("enrollments", "slow", delay=1.0)
    nightly = in_thread(lambda: sync_run(school=school, trigger=SCHEDULED))
    assert wait_until(lambda: bool(fake_oneroster.requests), timeout=10)
    with FakeOneRoster() as new:
        sync_set_oneroster(
            school=school,
            url=new.url,
            client_id=new.client_id,
            secret=new.client_secret,
            token_url=new.token_url,
            actor_label="test",
        )
        new_url = new.url
        assert nightly.result(timeout=30).status == ImportRun.Status.APPLIED
    config = SyncSource.objects.get(school=school)
    assert config.url == new_url
    assert (config.cursor, config.last_full_at, config.last_success_at) == ("", None, None)
    assert (config.lease_token, config.running_since) == ("", None)


def test_a_lease_held_past_the_import_lock_is_a_dead_runs_and_is_taken_over(
    school: School, quick: Any, tmp_path: Path
) -> None:
    _drop(school, tmp_path)
    held = timezone.now() - dt.timedelta(seconds=quick.HOMELINK_IMPORT_LOCK_SECONDS)
    SyncSource.objects.filter(school=school).update(
        lease_token="a-worker-that-died", running_since=held - dt.timedelta(minutes=1)
    )
    outcome = sync_run(school=school, trigger=SCHEDULED)
    assert outcome.status == ImportRun.Status.APPLIED, outcome.error
    config = SyncSource.objects.get(school=school)
    assert (config.lease_token, config.running_since) == ("", None)
    # A lease younger than that is a live run's.
    SyncSource.objects.filter(school=school).update(
        lease_token="alive", running_since=timezone.now()
    )
    assert "already running" in sync_run(school=school).error


# --- retries: per scheduled night -------------------------------------------------------------


def test_a_failure_that_may_pass_is_retried_on_later_nights_too(
    school: School, quick: Any, tmp_path: Path
) -> None:
    sync_set_folder(school=school, folder=tmp_path / "drop", actor_label="test")
    # Night one: nothing arrives; 02:00 and its three hourly retries fail.
    night_one = dt.datetime(2027, 1, 5, 2, 0, tzinfo=LONDON)
    for hour in range(RETRIES + 1):
        sync_run(school=school, trigger=SCHEDULED, now=night_one + dt.timedelta(hours=hour))
    config = SyncSource.objects.get(school=school)
    assert config.next_due_at == next_scheduled(config.at, night_one)
    # Night two: the export is late again; it is tried again an hour later.
    night_two = dt.datetime(2027, 1, 6, 2, 0, tzinfo=LONDON)
    assert sync_run(school=school, trigger=SCHEDULED, now=night_two).status == "failed"
    config.refresh_from_db()
    assert config.next_due_at == night_two + RETRY_AFTER
    assert config.attempts == RETRIES + 2  # failed attempts since the last success


def test_failed_runs_by_hand_do_not_use_up_the_nights_retries(
    school: School, quick: Any, tmp_path: Path
) -> None:
    sync_set_folder(school=school, folder=tmp_path / "drop", actor_label="test")
    for _ in range(RETRIES + 1):
        sync_run(school=school, trigger=MANUAL)
    night = dt.datetime(2027, 1, 6, 2, 0, tzinfo=LONDON)
    sync_run(school=school, trigger=SCHEDULED, now=night)
    config = SyncSource.objects.get(school=school)
    assert config.next_due_at == night + RETRY_AFTER


# --- the night the clocks go back -------------------------------------------------------------

# 25 October 2026: at 02:00 BST (01:00 UTC) the clocks go back to 01:00 GMT. 01:10 UTC is the
# second 01:10 of that night; its first 01:30 (BST) was 00:30 UTC.
SECOND_0110 = dt.datetime(2026, 10, 25, 1, 10, tzinfo=dt.UTC)


def test_in_the_repeated_hour_the_next_run_is_later_and_once_a_night() -> None:
    due = next_scheduled(dt.time(1, 30), SECOND_0110)
    assert due > SECOND_0110
    # Not the second 01:30 of the night (01:30 GMT): a nightly sync runs once a night.
    assert due == dt.datetime(2026, 10, 26, 1, 30, tzinfo=LONDON)
    first_0130 = dt.datetime(2026, 10, 25, 0, 30, tzinfo=dt.UTC)
    assert next_scheduled(dt.time(1, 30), first_0130) == due
    assert next_scheduled(dt.time(1, 30), first_0130 - dt.timedelta(minutes=1)) == first_0130


def test_a_failure_in_the_repeated_hour_is_retried_an_hour_later_not_at_once(
    school: School, quick: Any, tmp_path: Path
) -> None:
    sync_set_folder(school=school, folder=tmp_path / "drop", at=dt.time(1, 30), actor_label="t")
    outcome = sync_run(school=school, trigger=SCHEDULED, now=SECOND_0110)
    assert outcome.status == ImportRun.Status.FAILED
    config = SyncSource.objects.get(school=school)
    assert config.next_due_at == SECOND_0110 + RETRY_AFTER


# --- an error nobody foresaw ------------------------------------------------------------------


def test_an_unexpected_error_is_a_failed_run_in_the_history_not_a_crash(
    school: School, quick: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = _drop(school, tmp_path)
    # A setting that holds no number: the drop folder's fetch raises a ValueError quoting it.
    quick.HOMELINK_SYNC_SETTLE_SECONDS = "a while"
    now = timezone.now()
    outcome = sync_run(school=school, trigger=SCHEDULED, now=now)

    error = "the sync stopped unexpectedly: ValueError"
    assert (outcome.status, outcome.error, outcome.wrote) == ("failed", error, False)
    assert ImportRun.objects.get(school=school).error == error
    config = SyncSource.objects.get(school=school)
    assert (config.last_error, config.attempts, config.retries) == (error, 1, 1)
    assert config.next_due_at == now + RETRY_AFTER
    assert (config.lease_token, config.running_since) == ("", None)
    # Logged by its kind and place, never its text (which may quote what a source sent).
    logged = [r.getMessage() for r in caplog.records if "unexpectedly" in r.getMessage()]
    assert len(logged) == 1 and "ValueError" in logged[0]
    assert "a while" not in caplog.text
    # The file was left where it was; once the setting is right, the next run imports it.
    quick.HOMELINK_SYNC_SETTLE_SECONDS = 0
    assert (folder / "nightly.xml").is_file()
    assert sync_run(school=school, trigger=SCHEDULED).status == ImportRun.Status.APPLIED


# --- a database that fails under the import ---------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_file_the_database_failed_to_write_is_kept_and_retried(
    school: School, quick: Any, tmp_path: Path
) -> None:
    """Not a broken file: it stays in the drop folder (not failed/) and is tried again within
    the hour. The failure is real: another session holds the register's table locked, and this
    one waits for a lock no longer than 300 ms (PostgreSQL's lock_timeout)."""
    if connection.vendor != "postgresql":
        pytest.skip("a lock that times out is PostgreSQL's (SQLite has no lock_timeout)")
    folder = _drop(school, tmp_path)
    assert sync_run(school=school, trigger=SCHEDULED).status == ImportRun.Status.APPLIED
    # Tonight's export differs from last night's: one student's name is corrected.
    member = Member.objects.filter(school=school).first()
    assert member is not None
    Member.objects.filter(pk=member.pk).update(forename="Misspelt")
    (folder / "tonight.xml").write_bytes(CTF.read_bytes() + b"\n<!-- tonight -->\n")

    locked, release = threading.Event(), threading.Event()

    def hold_the_table() -> None:
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(f"LOCK TABLE {Member._meta.db_table} IN EXCLUSIVE MODE")
                locked.set()
                release.wait(30)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_the_table)
    holder.start()
    try:
        assert locked.wait(10)
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '300ms'")
        now = timezone.now()
        outcome = sync_run(school=school, trigger=SCHEDULED, now=now)
    finally:
        release.set()
        holder.join()
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")

    assert (outcome.status, outcome.wrote) == (ImportRun.Status.FAILED, False)
    assert "the database failed: the file was left to be taken again" in outcome.error
    assert (folder / "tonight.xml").is_file()
    assert not (folder / "failed").exists()
    config = SyncSource.objects.get(school=school)
    assert config.next_due_at == now + RETRY_AFTER
    assert not [p for p in school_folder(school.pk).iterdir() if p.is_file()]  # no copy kept
    # An hour later the database answers: the same file goes in.
    outcome = sync_run(school=school, trigger=SCHEDULED, now=now + RETRY_AFTER)
    assert outcome.status == ImportRun.Status.APPLIED, outcome.error
    assert Member.objects.get(pk=member.pk).forename != "Misspelt"
    assert (folder / "done" / "tonight.xml").is_file()


# --- an administrator's decision --------------------------------------------------------------


def test_once_a_stopped_file_is_applied_the_sync_no_longer_reports_the_stop(
    school: School, quick: Any, tmp_path: Path
) -> None:
    drop = tmp_path / "drop"
    sync_set_folder(school=school, folder=drop, actor_label="test")
    generate_ctf(drop / "monday.xml", pupils=20, seed=7)
    assert sync_run(school=school, trigger=SCHEDULED).wrote
    generate_ctf(drop / "tuesday.xml", pupils=20, seed=8)  # everyone would leave: stopped
    stopped = sync_run(school=school, trigger=SCHEDULED).run
    assert stopped.status == ImportRun.Status.STOPPED
    config = SyncSource.objects.get(school=school)
    assert config.attempts == 1 and config.last_error.startswith("waiting for a decision")

    admin = User.objects.create_user(username="head", email="head@example.org", password="x" * 16)
    StaffMembership.objects.create(user=admin, school=school, role=Role.ADMINISTRATOR)
    request = import_apply(run=stopped, user=admin, leavers_confirmed=True)
    carry_out(school_id=school.pk, run_id=request.pk, upload=request.upload)
    request.refresh_from_db()
    applied = request.followed_by
    assert applied is not None and applied.status == ImportRun.Status.APPLIED

    out = StringIO()
    call_command("sync", "list", "--json", stdout=out)
    (listed,) = json.loads(out.getvalue())
    assert (listed["last_error"], listed["failed_attempts"]) == (None, 0)
    config.refresh_from_db()
    assert (config.last_success_at, config.last_digest) == (applied.finished_at, stopped.digest)


# --- a worker killed mid-run ------------------------------------------------------------------


def _kill_mid_import(school: School, settings: Any, drop: Path) -> Path:
    """A real worker takes the due sync and is killed (SIGKILL) while it imports; the school's
    import store, holding what the run left."""
    generate_ctf(drop / "nightly.xml", pupils=2000, seed=3)  # a second or so to import
    past = time.time() - 60
    os.utime(drop / "nightly.xml", (past, past))
    SyncSource.objects.filter(school=school).update(
        next_due_at=timezone.now() - dt.timedelta(minutes=1)
    )
    worker = start_worker(_environ(settings.MEDIA_ROOT))
    try:
        running = ImportRun.objects.filter(school=school, status=ImportRun.Status.RUNNING)
        assert wait_until(running.exists, timeout=60), "the worker never started the import"
        worker.send_signal(signal.SIGKILL)
    finally:
        worker.kill()
        worker.wait()
    return school_folder(school.pk)


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def _sweep(school: School) -> None:
    assert sync_release_abandoned() == [school.pk]
    config = SyncSource.objects.get(school=school)
    assert (config.lease_token, config.running_since) == ("", None)


def _purge(school: School) -> None:
    retention_purge(school=school, actor="system:test")


@pytest.mark.parametrize("clear_up", [_sweep, _purge], ids=["the sweep", "the retention purge"])
@pytest.mark.django_db(transaction=True)
def test_a_run_killed_mid_import_leaves_nothing_once_the_import_lock_runs_out(
    school: School, quick: Any, tmp_path: Path, clear_up: Callable[[School], None]
) -> None:
    """Else the run's work folder and its stored copy of the whole export stay for ever (a
    request left queued is "at work" to retention and erasure), and the lease holds the
    school's sync up for as long as the import lock lives."""
    drop = tmp_path / "drop"
    sync_set_folder(school=school, folder=drop, actor_label="test")
    store = _kill_mid_import(school, quick, drop)
    left = _files(store)
    assert any(name.startswith(".sync-") for name in left) and len(left) == 2, left

    quick.HOMELINK_IMPORT_LOCK_SECONDS = 1
    time.sleep(1.1)
    clear_up(school)

    assert list(store.iterdir()) == []
    runs = ImportRun.objects.filter(school=school)
    assert not runs.filter(status__in=(ImportRun.Status.QUEUED, ImportRun.Status.RUNNING))
    assert runs.filter(status=ImportRun.Status.FAILED, error=ABANDONED).count() == 2
    assert not runs.exclude(upload="").exists()
    # The export was never moved, and the dead run's lease holds nothing up: the next run
    # takes the file.
    assert (drop / "nightly.xml").is_file()
    assert sync_run(school=school, trigger=SCHEDULED).status == ImportRun.Status.APPLIED


# --- files of a folder the school used before -------------------------------------------------


def _taken(school: School, tmp_path: Path) -> Path:
    drop = _drop(school, tmp_path)
    assert sync_run(school=school, trigger=SCHEDULED).status == ImportRun.Status.APPLIED
    assert (drop / "done" / "nightly.xml").is_file()
    return drop / "done" / "nightly.xml"


def _removed(school: School, tmp_path: Path) -> None:
    sync_remove(school=school, actor_label="test")


def _moved(school: School, tmp_path: Path) -> None:
    sync_set_folder(school=school, folder=tmp_path / "new-drop", actor_label="test")


def _to_oneroster(school: School, tmp_path: Path) -> None:
    sync_set_oneroster(
        school=school,
        url="http://127.0.0.1:9/ims/oneroster/v1p1",
        client_id="homelink",
        secret="s3cret",
        actor_label="test",
    )


@pytest.mark.parametrize(
    "change",
    [_removed, _moved, _to_oneroster],
    ids=["sync removed", "folder changed", "now a OneRoster API"],
)
def test_retention_still_purges_what_a_folder_used_before_took(
    school: School,
    quick: Any,
    tmp_path: Path,
    change: Callable[[School, Path], None],
    django_capture_on_commit_callbacks: Any,
) -> None:
    taken = _taken(school, tmp_path)
    change(school, tmp_path)
    with django_capture_on_commit_callbacks(execute=True):
        retention_purge(school=school, actor="test")
    assert taken.is_file()  # kept for the uploads period, as before
    later = timezone.now() + dt.timedelta(days=31)
    with django_capture_on_commit_callbacks(execute=True):
        counts = retention_purge(school=school, actor="test", now=later)
    assert counts["sync_files"] == 1
    assert not taken.exists()


def test_an_erasure_still_deletes_the_files_of_a_removed_sync(
    school: School, quick: Any, tmp_path: Path, django_capture_on_commit_callbacks: Any
) -> None:
    taken = _taken(school, tmp_path)
    sync_remove(school=school, actor_label="test")
    adult = Adult.objects.filter(school=school).first()
    assert adult is not None and adult.surname.encode() in taken.read_bytes()
    with django_capture_on_commit_callbacks(execute=True):
        adult_erase(adult=adult, actor="test", confirm_unreachable=True)
    assert not taken.exists()


def test_an_upload_that_never_finished_goes_after_the_retention_period(
    school: School, quick: Any, tmp_path: Path, django_capture_on_commit_callbacks: Any
) -> None:
    drop = tmp_path / "drop"
    sync_set_folder(school=school, folder=drop, actor_label="test")
    partial = drop / "nightly.xml.filepart"  # WinSCP's name for an SFTP upload cut off
    partial.write_bytes(CTF.read_bytes()[:4000])
    (drop / "notes.txt").write_text("not an upload: never touched")
    with django_capture_on_commit_callbacks(execute=True):
        retention_purge(school=school, actor="test")
    assert partial.is_file()
    with django_capture_on_commit_callbacks(execute=True):
        retention_purge(school=school, actor="test", now=timezone.now() + dt.timedelta(days=31))
    assert not partial.exists()
    assert (drop / "notes.txt").is_file()


def test_a_folder_keeping_another_schools_files_cannot_be_given_to_a_school(
    school: School, quick: Any, tmp_path: Path, django_capture_on_commit_callbacks: Any
) -> None:
    """The first school's retention and erasure still reach the files in its old folder: given
    to another school, they would delete that school's files too."""
    other = School.objects.create(urn="100002", name="Other School", la_code="838", estab="4513")
    taken = _taken(school, tmp_path)
    sync_remove(school=school, actor_label="test")
    with pytest.raises(ValidationError, match="another school's sync took"):
        sync_set_folder(school=other, folder=tmp_path / "drop", actor_label="test")
    with django_capture_on_commit_callbacks(execute=True):
        retention_purge(school=school, actor="test", now=timezone.now() + dt.timedelta(days=31))
    assert not taken.exists()
    # Nothing of the first school's is left: the folder may be the other's now, and is no
    # longer the first's to purge.
    sync_set_folder(school=other, folder=tmp_path / "drop", actor_label="test")
    (tmp_path / "drop" / "done" / "theirs.xml").write_text("<the other school's export/>")
    with django_capture_on_commit_callbacks(execute=True):
        retention_purge(school=school, actor="test", now=timezone.now() + dt.timedelta(days=62))
    assert (tmp_path / "drop" / "done" / "theirs.xml").is_file()
