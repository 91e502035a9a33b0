"""``homelink sync`` as an operator or a data manager uses it: add, list and remove a school's
sync of either kind, and run one now from a real drop folder holding the in-tree CTF fixtures.

The drop folder's settle time is 0.05 s here (production waits 5 s): a file is taken a tenth of a
second after it was written, whatever its modification time says.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command
from django.utils import timezone

from homelink.audit.models import AuditEvent
from homelink.cli import ALIASES
from homelink.mis.models import ImportRun
from homelink.register.models import Member
from homelink.schools.models import School
from homelink.sync.models import SyncSource
from homelink.sync.secrets import unseal

pytestmark = pytest.mark.django_db

DATA = Path(__file__).resolve().parents[2] / "mis" / "tests" / "data"
# Two pupils transferring in to the `school` fixture (LA 838 / Estab 4512).
TRANSFER = DATA / "ctf_transfer_contacts_out_of_order.xml"
# One pupil.
ONE_PUPIL = DATA / "ctf_missing_relationship_and_short_mobile.xml"
SETTLE = 0.05
URL = "http://127.0.0.1:9/ims/oneroster/v1p1"
SECRET = "s3cret-Shh-0123456789"


@pytest.fixture(autouse=True)
def _quick(settings: object, tmp_path: Path) -> None:
    settings.HOMELINK_SYNC_SETTLE_SECONDS = SETTLE  # type: ignore[attr-defined]
    settings.MEDIA_ROOT = tmp_path / "media"  # type: ignore[attr-defined]
    settings.HOMELINK_SYNC_ROOT = tmp_path / "sync-root"  # type: ignore[attr-defined]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path / "drop"


def homelink(name: str, *args: str, stdin: str | None = None) -> str:
    """``homelink NAME ARGS`` in-process; ``stdin`` is what is piped in."""
    out = io.StringIO()
    extra = {} if stdin is None else {"stdin": io.StringIO(stdin)}
    call_command(ALIASES.get(name, name), *args, stdout=out, stderr=io.StringIO(), **extra)
    return out.getvalue()


def sync(*args: str, stdin: str | None = None) -> str:
    return homelink("sync", *args, stdin=stdin)


def drop(folder: Path, source: Path, name: str | None = None) -> Path:
    """Put a file in the drop folder as last night's export, and wait until it counts as whole."""
    target = folder / (name or source.name)
    shutil.copyfile(source, target)
    night = time.time() - 6 * 3600
    os.utime(target, (night, night))
    # The settle time counts from the file's ctime too, which copying and utime just moved.
    time.sleep(SETTLE * 2)
    return target


def add_folder(school: School, folder: Path) -> None:
    sync("add", "--school", school.urn, "--folder", str(folder))


# --- add, list, remove ------------------------------------------------------------------------


def test_a_drop_folder_is_added_listed_and_removed(school: School, folder: Path) -> None:
    out = sync("add", "--school", school.urn, "--folder", str(folder), "--at", "06:30")
    config = SyncSource.objects.get(school=school)
    assert (config.kind, config.folder, f"{config.at:%H:%M}") == ("folder", str(folder), "06:30")
    assert folder.is_dir(), "the folder is made for the export to fill"
    assert str(folder) in out and "06:30" in out
    next_run = timezone.localtime(config.next_due_at)
    assert f"{next_run:%H:%M}" == "06:30"

    listed = sync("list")
    assert f"{school.urn}  {school.name}" in listed
    assert f"Drop folder: {folder}" in listed
    assert "every day at 06:30" in listed
    assert "last success  never" in listed
    assert "stale         no" in listed
    [row] = json.loads(sync("list", "--json"))
    assert row["urn"] == school.urn and row["school"] == school.name
    assert (row["kind"], row["where"], row["at"], row["stale"]) == (
        "folder",
        str(folder),
        "06:30",
        False,
    )
    assert row["last_success_at"] is None and row["last_error"] is None
    assert row["next_run_at"] == next_run.isoformat(timespec="seconds")

    # Adding again changes the school's one sync; a time left out is kept.
    other = folder.parent / "elsewhere"
    sync("add", "--school", school.urn, "--folder", str(other))
    config = SyncSource.objects.get(school=school)
    assert (config.folder, f"{config.at:%H:%M}") == (str(other), "06:30")

    out = sync("remove", "--school", school.urn)
    assert "no longer syncs" in out and "import history stays" in out
    assert not SyncSource.objects.exists()
    assert other.is_dir(), "the folder and whatever is in it stay"
    assert "No school has a scheduled sync" in sync("list")
    assert json.loads(sync("list", "--json")) == []
    assert "nothing to remove" in sync("remove", "--school", school.urn)


def test_a_oneroster_api_is_added_with_its_secret_sealed_and_never_shown(school: School) -> None:
    out = sync(
        "add",
        "--school",
        school.urn,
        "--oneroster-url",
        URL + "/",
        "--client-id",
        "homelink-100001",
        "--token-url",
        "http://127.0.0.1:9/oauth/token",
        stdin=SECRET + "\n",
    )
    config = SyncSource.objects.get(school=school)
    assert (config.kind, config.url, config.token_url, config.client_id) == (
        "oneroster-api",
        URL,
        "http://127.0.0.1:9/oauth/token",
        "homelink-100001",
    )
    assert f"{config.at:%H:%M}" == "02:00", "nightly at 02:00 unless --at says otherwise"
    assert SECRET not in config.secret, "stored sealed, not as typed"
    assert unseal(config.secret) == SECRET
    assert "never shown again" in out

    listed = sync("list") + sync("list", "--json")
    assert f"OneRoster API: {URL} (client id homelink-100001)" in listed
    assert json.loads(sync("list", "--json"))[0]["client_id"] == "homelink-100001"
    audit = json.dumps(list(AuditEvent.objects.values()), default=str)
    for shown in (out, listed, audit):
        assert SECRET not in shown
        assert config.secret not in shown

    sync("remove", "--school", school.urn)
    assert not SyncSource.objects.exists()


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["--oneroster-url", "ftp://mis.example.org/ims"], SECRET, "starting with https://"),
        (["--oneroster-url", "mis.example.org"], SECRET, "starting with https://"),
        (["--oneroster-url", URL + "?key=1"], SECRET, "without ? or #"),
        (["--oneroster-url", "http://me:pw@127.0.0.1/ims"], SECRET, "Leave the user name"),
        (["--oneroster-url", URL, "--token-url", "token"], SECRET, "starting with https://"),
        (["--oneroster-url", URL], "", "no client secret was given"),
        (["--oneroster-url", URL], "   \nsecond line\n", "no client secret was given"),
        (["--oneroster-url", URL, "--at", "25:00"], SECRET, "not a time of day"),
        (["--folder", "{folder}", "--at", "2am"], None, "not a time of day"),
        (["--folder", "{folder}", "--at", "02:60"], None, "not a time of day"),
        (["--folder", "{folder}", "--client-id", "x"], None, "not a drop folder"),
    ],
)
def test_bad_input_is_refused_plainly_and_nothing_is_stored(
    school: School, folder: Path, args: list[str], stdin: str | None, message: str
) -> None:
    args = [a.replace("{folder}", str(folder)) for a in args]
    if "--oneroster-url" in args:
        args += ["--client-id", "homelink-100001"]
    with pytest.raises(CommandError, match=re.escape(message)) as refused:
        sync("add", "--school", school.urn, *args, stdin=stdin)
    assert "Nothing was changed" in str(refused.value)
    assert SECRET not in str(refused.value)
    assert not SyncSource.objects.exists()
    assert not folder.exists()
    assert not AuditEvent.objects.exists()


def test_a_oneroster_api_needs_a_client_id(school: School) -> None:
    with pytest.raises(CommandError, match="needs --client-id"):
        sync("add", "--school", school.urn, "--oneroster-url", URL, stdin=SECRET)
    assert not SyncSource.objects.exists()


def test_without_a_sync_key_in_production_no_secret_is_stored(
    school: School, settings: object
) -> None:
    settings.HOMELINK_DEV = False  # type: ignore[attr-defined]
    settings.HOMELINK_SYNC_KEYS = []  # type: ignore[attr-defined]
    with pytest.raises(CommandError, match="HOMELINK_SYNC_KEY is not set"):
        sync(
            "add",
            "--school",
            school.urn,
            "--oneroster-url",
            URL,
            "--client-id",
            "homelink-100001",
            stdin=SECRET,
        )
    assert not SyncSource.objects.exists()


def test_a_drop_folder_that_is_another_schools_is_refused(school: School, folder: Path) -> None:
    other = School.objects.create(urn="222222", name="Elsewhere", la_code="111", estab="2222")
    add_folder(other, folder)
    with pytest.raises(CommandError, match="another school's drop folder"):
        add_folder(school, folder / "inside")
    assert list(SyncSource.objects.values_list("school__urn", flat=True)) == ["222222"]


def test_an_unknown_school_is_named(db: None, folder: Path) -> None:
    with pytest.raises(CommandError, match="no school with URN 999999"):
        sync("add", "--school", "999999", "--folder", str(folder))


# --- run ---------------------------------------------------------------------------------------


def test_run_imports_the_drop_folder_then_finds_no_changes(school: School, folder: Path) -> None:
    add_folder(school, folder)
    drop(folder, TRANSFER)
    out = sync("run", "--school", school.urn)
    assert f"{TRANSFER.name}, from the drop folder" in out
    assert "Imported in" in out
    assert "students  2 created" in out
    assert Member.objects.filter(school=school, kind="student").count() == 2
    assert (folder / "done" / TRANSFER.name).is_file()
    assert not (folder / TRANSFER.name).exists()
    run = ImportRun.objects.get(status="applied")
    assert (run.source, run.trigger) == ("folder", "manual")
    assert SyncSource.objects.get(school=school).last_success_at is not None

    # Tomorrow's export carries the same data: recorded, nothing written, exit status 0.
    drop(folder, TRANSFER, name="tomorrow.xml")
    out = sync("run", "--school", school.urn)
    assert "No changes" in out and "same file as the last sync" in out
    assert ImportRun.objects.filter(status="unchanged").count() == 1
    assert ImportRun.objects.filter(status="applied").count() == 1
    assert (folder / "done" / "tomorrow.xml").is_file()

    # Nothing new at all: the source says why and the command fails.
    with pytest.raises(CommandError, match="no file arrived in the drop folder since"):
        sync("run", "--school", school.urn)
    assert "last error    no file arrived" in sync("list")


def test_run_json_has_the_import_summary_shape(school: School, folder: Path) -> None:
    add_folder(school, folder)
    # The same file through `homelink import --dry-run --json`, for the shape to compare with.
    imported = json.loads(
        homelink("import", "--school", school.urn, str(ONE_PUPIL), "--dry-run", "--json")
    )
    drop(folder, ONE_PUPIL)
    preview = json.loads(sync("run", "--school", school.urn, "--dry-run", "--json"))
    assert preview["status"] == "preview"
    assert set(preview) == set(imported) | {"file_name"}
    assert preview["students"] == imported["students"]

    payload = json.loads(sync("run", "--school", school.urn, "--json"))
    assert payload["status"] == "applied"
    assert payload["run"] == ImportRun.objects.get(status="applied").pk
    assert payload["file_name"] == ONE_PUPIL.name
    assert payload["students"]["created"] == 1
    assert set(payload) >= set(preview)
    assert isinstance(payload["seconds"], float)

    drop(folder, ONE_PUPIL, name="again.xml")
    unchanged = json.loads(sync("run", "--school", school.urn, "--json"))
    assert (unchanged["status"], unchanged["file_name"]) == ("unchanged", "again.xml")
    assert "same file" in unchanged["reason"]


def test_a_broken_file_exits_non_zero_and_changes_nothing(school: School, folder: Path) -> None:
    add_folder(school, folder)
    text = TRANSFER.read_text()
    broken = folder.parent / "broken.xml"
    broken.write_text(text[: text.index("Fairweather") + 40])
    drop(folder, broken)
    out = io.StringIO()
    with pytest.raises(CommandError, match=r"broken\.xml: .*line \d+") as err:
        call_command("sync", "run", "--school", school.urn, "--json", stdout=out)
    assert "Nothing was changed" in str(err.value)
    assert json.loads(out.getvalue())["status"] == "failed"
    assert not Member.objects.exists()
    assert (folder / "failed" / "broken.xml").is_file()
    config = SyncSource.objects.get(school=school)
    assert config.last_success_at is None and "line" in config.last_error


def test_a_dry_run_writes_nothing_and_leaves_the_file(school: School, folder: Path) -> None:
    add_folder(school, folder)
    dropped = drop(folder, TRANSFER)
    before = dropped.stat()
    out = sync("run", "--school", school.urn, "--dry-run")
    assert "Preview (nothing written)" in out
    assert not Member.objects.exists()
    assert dropped.stat().st_mtime_ns == before.st_mtime_ns
    assert sorted(p.name for p in folder.iterdir()) == [TRANSFER.name]
    config = SyncSource.objects.get(school=school)
    assert (config.last_success_at, config.last_digest, config.last_error) == (None, "", "")
    assert ImportRun.objects.get(status="preview").upload == "", "a preview keeps no copy"

    # The summary is `homelink import`'s, line for line (the timing aside).
    imported = homelink("import", "--school", school.urn, str(TRANSFER), "--dry-run")
    assert out.splitlines()[2:] == imported.splitlines()[1:]
    assert json.loads(sync("run", "--school", school.urn, "--dry-run", "--json"))["status"] == (
        "preview"
    )

    # And the file is still there for the real run.
    sync("run", "--school", school.urn)
    assert Member.objects.filter(kind="student").count() == 2


def test_the_leavers_guard_stops_the_run_and_leaves_the_decision(
    school: School, folder: Path, tmp_path: Path
) -> None:
    full = tmp_path / "full.xml"
    homelink(
        "generate-ctf",
        "--pupils",
        "20",
        "--urn",
        school.urn,
        "--la",
        "838",
        "--estab",
        "4512",
        str(full),
    )
    homelink("import", "--school", school.urn, str(full))
    head, _, rest = full.read_text().partition("<Pupil>")
    pupils = rest.split("<Pupil>")
    part = tmp_path / "part.xml"
    part.write_text(
        head
        + "<Pupil>"
        + "<Pupil>".join(pupils[:5]).rsplit("</Pupil>", 1)[0]
        + "</Pupil></CTFpupilData></CTfile>"
    )
    add_folder(school, folder)
    drop(folder, part)
    out = io.StringIO()
    with pytest.raises(CommandError, match="would mark 15 of 20 current students") as err:
        call_command("sync", "run", "--school", school.urn, "--json", stdout=out)
    assert "imports page" in str(err.value) and "apply it anyway or discard it" in str(err.value)
    payload = json.loads(out.getvalue())
    assert (payload["status"], payload["would_leave"], payload["current_students"]) == (
        "stopped",
        15,
        20,
    )
    assert payload["waiting_for_decision"] is True
    assert Member.objects.filter(status="left").count() == 0
    stopped = ImportRun.objects.get(status="stopped")
    assert stopped.upload, "the file waits for an administrator's decision"


def test_run_without_a_sync_says_so(school: School) -> None:
    with pytest.raises(CommandError, match="No sync is set up for Example Academy"):
        sync("run", "--school", school.urn)
    assert not ImportRun.objects.exists()


# --- the real console script -------------------------------------------------------------------


@pytest.mark.skipif(
    shutil.which("homelink", path=str(Path(sys.executable).parent)) is None,
    reason="console script not installed",
)
def test_the_console_script_reads_the_secret_from_a_pipe(tmp_path: Path) -> None:
    """The secret piped into the real process, sealed with the HOMELINK_SYNC_KEY of its
    environment, and printed by nothing."""
    key = Fernet.generate_key().decode()
    database = tmp_path / "db.sqlite3"
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{database}",
        "HOMELINK_VAR_DIR": str(tmp_path),
        "HOMELINK_SYNC_KEY": key,
    }
    exe = str(Path(sys.executable).parent / "homelink")

    def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [exe, *args],
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert SECRET not in done.stdout + done.stderr
        return done

    # Only the tables these commands touch: a whole migrate would take seconds more.
    for app in ("sync", "audit"):
        assert run("migrate", app, "-v0").returncode == 0
    assert run("school", "add", "--urn", "100001", "--name", "Example Academy").returncode == 0
    add = ["sync", "add", "--school", "100001", "--oneroster-url", URL, "--client-id", "cid"]
    empty = run(*add, stdin="\n")
    assert empty.returncode != 0
    assert "no client secret was given" in empty.stderr
    added = run(*add, stdin=SECRET + "\n")
    assert added.returncode == 0, added.stderr
    with sqlite3.connect(database) as db:
        [(url, sealed)] = db.execute("SELECT url, secret FROM sync_syncsource").fetchall()
    assert url == URL
    assert SECRET not in sealed
    assert Fernet(key.encode()).decrypt(sealed.encode()).decode() == SECRET
