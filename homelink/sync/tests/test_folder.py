"""The drop-folder source, on real files in a real folder, and a scheduled sync through it.

The settle time is 0.2 s here (production waits 5 s), so a file is complete a quarter of a
second after its last write.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from homelink.mis.generate import generate_ctf
from homelink.mis.models import ImportRun
from homelink.register.models import Adult, Link, Member
from homelink.schools.models import School
from homelink.sync.models import SyncSource
from homelink.sync.services import sync_run, sync_set_folder
from homelink.sync.sources import Fetched, SourceError, source_for
from homelink.sync.sources.folder import FolderSource

SETTLE = 0.2
NOW = dt.datetime(2025, 5, 14, 1, 0, tzinfo=dt.UTC)  # 02:00 in London (BST)
CTF = b'<?xml version="1.0" encoding="UTF-8"?>\n<CTfile></CTfile>\n'


@pytest.fixture(autouse=True)
def _quick(settings: Any, tmp_path: Path) -> None:
    settings.HOMELINK_SYNC_SETTLE_SECONDS = SETTLE
    settings.TIME_ZONE = "Europe/London"
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def drop(tmp_path: Path) -> Path:
    folder = tmp_path / "drop"
    folder.mkdir()
    return folder


def put(folder: Path, name: str, data: bytes = CTF, *, hours_ago: float | None = None) -> Path:
    """A file as the MIS export leaves it; ``hours_ago`` sets its modification time."""
    path = folder / name
    path.write_bytes(data)
    if hours_ago is not None:
        stamp = time.time() - hours_ago * 3600
        os.utime(path, (stamp, stamp))
    return path


def settle() -> None:
    time.sleep(SETTLE + 0.1)


def source(folder: Path, *, last_success_at: dt.datetime | None = None) -> FolderSource:
    config = SyncSource(
        kind=SyncSource.Kind.FOLDER, folder=str(folder), last_success_at=last_success_at
    )
    made = source_for(config, now=NOW)
    assert isinstance(made, FolderSource)
    return made


def listing(folder: Path) -> dict[str, tuple[int, int, int]]:
    """Everything under ``folder`` with its size, modification time and inode."""
    return {
        str(p.relative_to(folder)): (st.st_size, st.st_mtime_ns, st.st_ino)
        for p in sorted(folder.rglob("*"))
        for st in [p.lstat()]
    }


def fresh(tmp_path: Path) -> Path:
    """A new private work folder, as the runner gives each run."""
    n = 0
    while (tmp_path / f"work{n}").exists():
        n += 1
    (tmp_path / f"work{n}").mkdir()
    return tmp_path / f"work{n}"


def refusal(
    folder: Path,
    workdir: Path,
    *,
    dry_run: bool = False,
    last_success_at: dt.datetime | None = None,
) -> SourceError:
    with pytest.raises(SourceError) as caught:
        source(folder, last_success_at=last_success_at).fetch(workdir, dry_run=dry_run)
    return caught.value


# --- what is taken -----------------------------------------------------------------------------


def test_the_newest_complete_file_is_taken_as_a_snapshot(drop: Path, tmp_path: Path) -> None:
    put(drop, "LLL_CTF_monday.xml", b"<CTfile>monday</CTfile>", hours_ago=48)
    put(drop, "LLL_CTF_tuesday.xml", b"<CTfile>tuesday</CTfile>", hours_ago=1)
    put(drop, "LLL_CTF_sunday.xml", b"<CTfile>sunday</CTfile>", hours_ago=72)
    settle()
    before = listing(drop)

    fetched = source(drop).fetch(tmp_path, dry_run=False)

    assert fetched.file_name == "LLL_CTF_tuesday.xml"
    # A private copy that keeps the name (the format is detected from it), not the file itself.
    assert fetched.path == tmp_path / "LLL_CTF_tuesday.xml"
    assert fetched.path.read_bytes() == b"<CTfile>tuesday</CTfile>"
    assert stat.S_IMODE(fetched.path.stat().st_mode) == 0o600
    assert fetched.format is None and fetched.full and not fetched.unchanged
    assert fetched.detail["bytes"] == len(b"<CTfile>tuesday</CTfile>")
    modified = dt.datetime.fromisoformat(fetched.detail["modified"])
    assert abs(modified.timestamp() - (time.time() - 3600)) < 5
    assert fetched.detail["superseded"] == ["LLL_CTF_monday.xml", "LLL_CTF_sunday.xml"]
    assert listing(drop) == before, "fetch moves nothing"


@contextlib.contextmanager
def writing(path: Path) -> Iterator[None]:
    """A writer still at work on ``path``: the MIS or an upload adding a block at a time."""
    stop = threading.Event()

    def write() -> None:
        with path.open("wb") as out:
            while not stop.is_set():
                out.write(b"<Pupil/>" * 100)
                out.flush()
                time.sleep(0.03)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        time.sleep(0.05)
        yield
    finally:
        stop.set()
        writer.join()


def test_a_file_still_being_written_is_not_taken(drop: Path, tmp_path: Path) -> None:
    put(drop, "yesterday.xml", hours_ago=20)
    settle()
    growing = drop / "tonight.xml"
    with writing(growing):
        for _ in range(3):
            error = refusal(drop, tmp_path)
            assert error.retry
            assert str(error).startswith("a file is still arriving in the drop folder (tonight.xml")
            assert "0.2 seconds" in str(error)
            time.sleep(0.1)
    assert not list(tmp_path.glob("*.xml")), "nothing is left in the work folder"

    settle()
    fetched = source(drop).fetch(fresh(tmp_path), dry_run=True)
    assert fetched.file_name == "tonight.xml"
    assert fetched.path is not None
    assert fetched.path.read_bytes() == growing.read_bytes()


def test_a_fresh_file_waits_even_when_its_time_is_kept_from_elsewhere(
    drop: Path, tmp_path: Path, settings: Any
) -> None:
    # `scp -p` and WinSCP keep the export's own time: the file looks a day old the moment it
    # lands. The change time, which nobody can set, says it has only just arrived.
    settings.HOMELINK_SYNC_SETTLE_SECONDS = 1  # room for a slow machine between the two lines
    put(drop, "export.xml", hours_ago=24)
    error = refusal(drop, tmp_path)
    assert error.retry and "still arriving" in str(error) and "export.xml" in str(error)
    time.sleep(1.1)
    assert source(drop).fetch(fresh(tmp_path), dry_run=True).file_name == "export.xml"


def test_an_upload_in_progress_under_a_temporary_name_holds_the_sync(
    drop: Path, tmp_path: Path
) -> None:
    # A complete older file is there, but tonight's is on its way: wait for it rather than
    # import the older one and leave tonight's until tomorrow.
    put(drop, "older.xml", hours_ago=30)
    settle()
    with writing(drop / "tonight.xml.filepart"):  # WinSCP, mid-upload
        error = refusal(drop, tmp_path)
    assert error.retry
    assert str(error).startswith(
        "a file is still arriving in the drop folder (tonight.xml.filepart"
    )


def test_hidden_unfinished_and_linked_files_are_never_taken(drop: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = put(outside, "settings.env", b"SECRET_KEY=not-for-the-register")
    put(drop, "real.xml", b"<CTfile>real</CTfile>", hours_ago=10)
    for name in (
        ".hidden.xml",
        "~$export.xml",
        "export.xml~",
        "export.xml.part",
        "export.tmp",
        "export.partial",
        "export.xml.filepart",
        "Thumbs.db",
    ):
        put(drop, name, b"<CTfile>not this</CTfile>", hours_ago=1)
    (drop / "newest.xml").symlink_to(secret)
    os.utime(drop / "newest.xml", (time.time(), time.time()), follow_symlinks=False)
    (drop / "oneroster").mkdir()
    # A name in Latin-1 from an old Windows share: it could be neither shown nor recorded.
    latin1 = os.path.join(os.fsencode(drop), b"caf\xe9.xml")
    with open(latin1, "wb") as out:
        out.write(b"<CTfile>not this either</CTfile>")
    settle()

    fetched = source(drop).fetch(fresh(tmp_path), dry_run=True)
    assert fetched.path is not None
    assert fetched.file_name == "real.xml"
    assert fetched.path.read_bytes() == b"<CTfile>real</CTfile>"
    assert "superseded" not in fetched.detail

    # Without the real file: nothing to take, and the message says what is there instead.
    (drop / "real.xml").unlink()
    error = refusal(drop, tmp_path)
    message = str(error)
    assert message.startswith("no file arrived in the drop folder since the sync was set up")
    assert message.endswith(
        "; it holds only what is never imported: links, which homelink never follows: "
        "newest.xml; names that are not UTF-8 text (rename them): caf?.xml; folders (send a "
        "OneRoster export as a .zip): oneroster; uploads or edits that did not finish: "
        "export.partial, export.tmp, export.xml.filepart and 3 more"
    )
    assert "settings.env" not in message and "SECRET_KEY" not in message
    message.encode("utf-8")  # the message itself can be stored
    assert error.retry
    assert not [p for p in tmp_path.iterdir() if p.is_file()], "nothing read through the link"


def test_nothing_arrived_since_the_last_file_taken(drop: Path, tmp_path: Path) -> None:
    error = refusal(drop, tmp_path)
    assert str(error) == "no file arrived in the drop folder since the sync was set up"
    assert error.retry

    last_success = dt.datetime(2025, 5, 12, 1, 5, tzinfo=dt.UTC)
    error = refusal(drop, tmp_path, last_success_at=last_success)
    assert str(error) == "no file arrived in the drop folder since Monday 12 May 2025 at 02:05"

    # The last file taken (it keeps its time in done/) says when the MIS last sent one.
    (drop / "done").mkdir()
    taken = put(drop / "done", "LLL_CTF.xml")
    stamp = dt.datetime(2025, 5, 13, 0, 52, tzinfo=dt.UTC).timestamp()
    os.utime(taken, (stamp, stamp))
    error = refusal(drop, tmp_path, last_success_at=last_success)
    assert str(error) == "no file arrived in the drop folder since Tuesday 13 May 2025 at 01:52"
    winter = dt.datetime(2025, 1, 7, 1, 30, tzinfo=dt.UTC).timestamp()
    os.utime(taken, (winter, winter))
    error = refusal(drop, tmp_path)
    assert str(error) == "no file arrived in the drop folder since Tuesday 7 January 2025 at 01:30"
    # A file that kept its export's old time from elsewhere: the last run that took it is later.
    error = refusal(drop, tmp_path, last_success_at=last_success)
    assert str(error) == "no file arrived in the drop folder since Monday 12 May 2025 at 02:05"


def test_a_missing_or_wrong_folder_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "not-there"
    error = refusal(missing, tmp_path)
    assert not error.retry
    assert f"the drop folder {missing} does not exist" in str(error)

    a_file = put(tmp_path, "a-file")
    error = refusal(a_file, tmp_path)
    assert not error.retry
    assert f"the drop folder {a_file} is not a folder" in str(error)

    config = SyncSource(kind=SyncSource.Kind.FOLDER, folder="")
    with pytest.raises(SourceError) as caught:
        FolderSource(config, now=NOW).fetch(tmp_path, dry_run=True)
    assert "no drop folder is set" in str(caught.value) and not caught.value.retry


def test_a_link_in_place_of_done_is_refused_before_anything_is_read(
    drop: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (drop / "done").symlink_to(elsewhere)
    put(drop, "export.xml", hours_ago=1)
    settle()
    error = refusal(drop, fresh(tmp_path))
    assert not error.retry
    assert f"{drop / 'done'} is not a folder" in str(error)
    assert (drop / "export.xml").exists() and not list(elsewhere.iterdir())


def test_a_file_larger_than_the_limit_is_refused_unread(
    drop: Path, tmp_path: Path, settings: Any
) -> None:
    settings.HOMELINK_IMPORT_MAX_BYTES = 1000
    put(drop, "older.xml", hours_ago=30)
    put(drop, "huge.xml", b"x" * 1001, hours_ago=1)
    settle()
    before = listing(drop)

    error = refusal(drop, tmp_path, dry_run=True)
    assert not error.retry
    assert "huge.xml (1001 bytes), is larger than the largest import accepted" in str(error)
    assert "it stays in the folder on a dry run" in str(error)
    assert listing(drop) == before

    error = refusal(drop, tmp_path)
    assert "it was moved to failed/" in str(error) and not error.retry
    assert sorted(os.listdir(drop)) == ["done", "failed"]
    assert os.listdir(drop / "failed") == ["huge.xml"]
    assert os.listdir(drop / "done") == ["older.xml"], "the older file is superseded"
    assert not [p for p in tmp_path.iterdir() if p.is_file()], "never copied"


# --- after the run -----------------------------------------------------------------------------


def test_finish_moves_the_file_and_the_superseded_ones_without_overwriting(
    drop: Path, tmp_path: Path
) -> None:
    put(drop, "export.xml", b"<CTfile>tonight</CTfile>", hours_ago=1)
    put(drop, "last-week.xml", hours_ago=24 * 7)
    (drop / "done").mkdir(mode=0o755)
    put(drop / "done", "export.xml", b"<CTfile>last night</CTfile>")
    settle()

    taker = source(drop)
    fetched = taker.fetch(tmp_path, dry_run=False)
    taker.finish(fetched, imported=True)

    assert sorted(os.listdir(drop)) == ["done"]
    done = drop / "done"
    assert sorted(os.listdir(done)) == ["20250514-020000-export.xml", "export.xml", "last-week.xml"]
    assert (done / "export.xml").read_bytes() == b"<CTfile>last night</CTfile>"
    assert (done / "20250514-020000-export.xml").read_bytes() == b"<CTfile>tonight</CTfile>"

    # Refused: to failed/, made private; a third of the same name gets a counter as well.
    for n in range(2):
        put(drop, "export.xml", b"<CTfile>broken %d</CTfile>" % n, hours_ago=0.5)
        settle()
        taker = source(drop)
        taker.finish(taker.fetch(fresh(tmp_path), dry_run=False), imported=False)
    failed = drop / "failed"
    assert stat.S_IMODE(failed.stat().st_mode) == 0o700
    assert sorted(os.listdir(failed)) == ["20250514-020000-export.xml", "export.xml"]
    assert (failed / "20250514-020000-export.xml").read_bytes() == b"<CTfile>broken 1</CTfile>"
    assert sorted(os.listdir(drop)) == ["done", "failed"]


def test_a_file_replaced_after_it_was_taken_is_left_for_the_next_run(
    drop: Path, tmp_path: Path
) -> None:
    path = put(drop, "export.xml", b"<CTfile>first</CTfile>", hours_ago=2)
    settle()
    taker = source(drop)
    fetched = taker.fetch(tmp_path, dry_run=False)
    # A new export over the old name while the import ran: it has not been imported.
    path.write_bytes(b"<CTfile>second, and longer</CTfile>")
    taker.finish(fetched, imported=True)
    assert path.read_bytes() == b"<CTfile>second, and longer</CTfile>"
    assert not (drop / "done").exists() or not os.listdir(drop / "done")


def test_a_dry_run_leaves_the_folder_as_it_was(drop: Path, tmp_path: Path) -> None:
    put(drop, "export.xml", hours_ago=1)
    put(drop, "older.xml", hours_ago=30)
    settle()
    before = listing(drop)
    fetched = source(drop).fetch(tmp_path, dry_run=True)
    assert fetched.file_name == "export.xml"
    assert listing(drop) == before
    assert not (drop / "done").exists() and not (drop / "failed").exists()


# --- end to end: a scheduled sync through the runner --------------------------------------------


def _ctf(folder: Path, name: str, *, pupils: int, seed: int, hours_ago: float) -> Path:
    path = folder / name
    generate_ctf(path, pupils=pupils, seed=seed)
    stamp = time.time() - hours_ago * 3600
    os.utime(path, (stamp, stamp))
    return path


def _register(school: School) -> tuple[list[tuple[str, str, dt.datetime]], int, int]:
    """The school's register, down to when each member was last saved."""
    members = sorted(
        Member.objects.filter(school=school).values_list("mis_id", "status", "updated_at")
    )
    return (
        members,
        Adult.objects.filter(school=school).count(),
        Link.objects.filter(school=school).count(),
    )


def _scheduled(school: School) -> ImportRun:
    outcome = sync_run(school=school, trigger=ImportRun.Trigger.SCHEDULED)
    assert outcome.run.source == ImportRun.Source.FOLDER
    assert outcome.run.trigger == ImportRun.Trigger.SCHEDULED
    return outcome.run


@pytest.mark.django_db
def test_a_scheduled_sync_imports_the_drop_folder_once(
    school: School, drop: Path, tmp_path: Path
) -> None:
    sync_set_folder(school=school, folder=drop, actor_label="test")
    _ctf(drop, "8384512_CTF_100001_001.xml", pupils=30, seed=3, hours_ago=1)
    settle()

    run = _scheduled(school)
    assert run.status == ImportRun.Status.APPLIED, run.error
    assert run.file_name == "8384512_CTF_100001_001.xml"
    assert run.options["sync"]["bytes"] > 0
    assert Member.objects.filter(school=school, status=Member.Status.CURRENT).count() == 30
    assert os.listdir(drop / "done") == ["8384512_CTF_100001_001.xml"]
    assert sorted(os.listdir(drop)) == ["done"]
    config = SyncSource.objects.get(school=school)
    assert config.last_success_at is not None and config.last_error == ""
    register = _register(school)

    # The MIS sends the same export again the next night: recorded, nothing written.
    put(drop, "8384512_CTF_100001_002.xml", (drop / "done" / run.file_name).read_bytes())
    settle()
    again = _scheduled(school)
    assert again.status == ImportRun.Status.UNCHANGED
    assert _register(school) == register
    assert sorted(os.listdir(drop / "done")) == [
        "8384512_CTF_100001_001.xml",
        "8384512_CTF_100001_002.xml",
    ]

    # Nothing the next night: the failure says since when, and nothing is written.
    empty = sync_run(school=school, trigger=ImportRun.Trigger.SCHEDULED)
    assert empty.status == ImportRun.Status.FAILED
    assert empty.error.startswith("no file arrived in the drop folder since ")
    assert _register(school) == register


@pytest.mark.django_db
def test_a_broken_file_is_recorded_and_moved_to_failed(
    school: School, drop: Path, tmp_path: Path
) -> None:
    sync_set_folder(school=school, folder=drop, actor_label="test")
    _ctf(drop, "good.xml", pupils=12, seed=5, hours_ago=2)
    settle()
    assert _scheduled(school).status == ImportRun.Status.APPLIED
    register = _register(school)

    put(drop, "broken.xml", b'<?xml version="1.0"?>\n<CTfile><Header><DocumentName>', hours_ago=1)
    settle()
    run = _scheduled(school)
    assert run.status == ImportRun.Status.FAILED
    assert run.error
    assert run.file_name == "broken.xml"
    assert _register(school) == register
    assert os.listdir(drop / "failed") == ["broken.xml"]
    assert sorted(os.listdir(drop)) == ["done", "failed"]
    config = SyncSource.objects.get(school=school)
    assert config.attempts == 1 and config.last_error


@pytest.mark.django_db
def test_a_sync_that_would_mark_many_leavers_waits_for_a_decision(
    school: School, drop: Path, tmp_path: Path
) -> None:
    sync_set_folder(school=school, folder=drop, actor_label="test")
    _ctf(drop, "monday.xml", pupils=20, seed=7, hours_ago=30)
    settle()
    assert _scheduled(school).status == ImportRun.Status.APPLIED
    register = _register(school)

    # Another school's roll of pupils under this school's name: every current student would
    # leave, far past the 10 % guard.
    _ctf(drop, "tuesday.xml", pupils=20, seed=8, hours_ago=1)
    settle()
    outcome = sync_run(school=school, trigger=ImportRun.Trigger.SCHEDULED)
    run = outcome.run
    assert run.status == ImportRun.Status.STOPPED
    assert outcome.error.startswith("waiting for a decision on the imports page")
    assert not outcome.wrote
    assert _register(school) == register
    # The console's decision works on the stored copy: the run keeps it.
    assert run.upload
    assert (Path(tmp_path / "media") / run.upload).is_file()
    assert os.listdir(drop / "failed") == ["tuesday.xml"]


@pytest.mark.django_db
def test_a_dry_sync_previews_and_leaves_the_folder(
    school: School, drop: Path, tmp_path: Path
) -> None:
    sync_set_folder(school=school, folder=drop, actor_label="test")
    _ctf(drop, "export.xml", pupils=10, seed=9, hours_ago=1)
    settle()
    before = listing(drop)
    outcome = sync_run(school=school, dry_run=True)
    assert outcome.status == ImportRun.Status.PREVIEW
    assert not Member.objects.filter(school=school).exists()
    assert listing(drop) == before


def test_finish_ignores_a_fetch_it_did_not_make(drop: Path) -> None:
    put(drop, "export.xml")
    source(drop).finish(Fetched(path=None, file_name="export.xml"), imported=True)
    assert os.listdir(drop) == ["export.xml"]


def test_settled_times_use_the_servers_clock_not_the_runs(
    drop: Path, tmp_path: Path, settings: Any
) -> None:
    # The runner may pass a "now" of its own (a test's, a late worker's); whether a file has
    # settled is the file system's business, by its own clock.
    settings.HOMELINK_SYNC_SETTLE_SECONDS = 5
    put(drop, "export.xml")
    config = SyncSource(kind=SyncSource.Kind.FOLDER, folder=str(drop))
    later = timezone.now() + dt.timedelta(days=1)
    with pytest.raises(SourceError) as caught:
        FolderSource(config, now=later).fetch(tmp_path, dry_run=True)
    assert "still arriving" in str(caught.value)
