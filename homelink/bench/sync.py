"""OneRoster REST sync benchmark: a school's roll read from a OneRoster 1.1 API by the real
``homelink sync run`` process, beside ``homelink import`` of the same roll as a CSV zip.

The remote end is :class:`homelink.sync.testing.FakeOneRoster`, a real HTTP server on 127.0.0.1
running in this process (its threads' CPU time is this process's own while the sync runs, and is
printed). It serves ``add_school(students=N, contacts_per_student=2, siblings=0.0)``: N students,
2N contacts, homerooms of 30 and a teacher in each. The source asks for pages of 1,000
(its default, :data:`homelink.sync.sources.oneroster_api.DEFAULT_LIMIT`); the server's log shows
what was asked, and the report says so if it was anything else.

Each round, on fresh copies of one migrated SQLite database (the school added, every contact
imported, the sync added with ``homelink sync add``, the secret on stdin):

* **full sync**: ``homelink sync run --school URN --json``, the first, into an empty register;
* **sync again**: the same command at once, nothing changed on the server: "no changes";
* **delta**: :data:`CHANGED` contacts get a new email on the server (stamped as changed), and the
  sync runs again: a delta, asking for what changed and whatever else the source needs to give
  each student it names complete (the changes are undone afterwards, so every round's full sync
  reads the same roll);
* **CSV import**: ``homelink import --school URN roster.zip --json`` of the same roll written
  as a OneRoster 1.1 CSV export (every column, the server's order) into another empty copy.

Whole processes are timed, start-up included, as a nightly sync costs; each figure is the median
of the rounds with their spread, each ratio the median of the rounds' own. The target (the issue
asks for the time "beside" the CSV import; this is ours): a full sync costs at most
:data:`TARGET` times the CSV import, since it is the same import with the paging and JSON
decoding on top. Both registers must come out the same size, or the comparison says so.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from homelink.bench.stats import judged, median, spread
from homelink.sync.testing import FakeOneRoster

#: The fake's org carries this identifier; the school is created with it.
URN = "100001"
STUDENTS = 20_000
QUICK_STUDENTS = 2_000
#: What the issue asks for; the source's default, checked against the server's log.
PAGE_SIZE = 1_000
#: A full sync <= this x the CSV import of the same roll, as processes.
TARGET = 1.5
#: Contacts whose email changes on the server before the delta sync.
CHANGED = 12
USERS_COLUMNS = (
    "sourcedId",
    "status",
    "dateLastModified",
    "enabledUser",
    "orgSourcedIds",
    "role",
    "username",
    "userIds",
    "givenName",
    "familyName",
    "middleName",
    "identifier",
    "email",
    "sms",
    "phone",
    "agentSourcedIds",
    "grades",
    "password",
)


@dataclass
class Run:
    seconds: float
    #: CPU time (user and system) of the process.
    cpu_seconds: float
    rss_mb: float
    #: The command's ``--json`` object.
    summary: dict[str, Any]
    #: CPU time of this process (the fake server's threads) while it ran.
    server_cpu: float = 0.0
    #: Requests the fake answered, by endpoint ("users", "user", "token"...).
    requests: Counter[str] = field(default_factory=Counter)
    #: The ``limit`` of every list request.
    limits: set[int] = field(default_factory=set)


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _measured(
    args: list[str], env: dict[str, str], *, stdin: str = "", fake: FakeOneRoster | None = None
) -> Run:
    """Run a whole process, timing it and reading its own peak RSS (see rss.py); stop the
    benchmark, saying why, when it fails."""
    if fake is not None:
        fake.clear_log()
    with tempfile.TemporaryDirectory() as tmp:
        rss_file = Path(tmp) / "rss"
        children, own = _cpu(resource.RUSAGE_CHILDREN), _cpu(resource.RUSAGE_SELF)
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "homelink.bench.rss", str(rss_file), *args],
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
        )
        seconds = time.perf_counter() - started
        children, own = _cpu(resource.RUSAGE_CHILDREN) - children, _cpu(resource.RUSAGE_SELF) - own
        if proc.returncode:
            raise SystemExit(
                f"{' '.join(args[1:3])} failed ({proc.returncode}):\n"
                f"{proc.stdout[-1000:]}\n{proc.stderr[-2000:]}"
            )
        rss_mb = int(rss_file.read_text()) / 1024
    summary = json.loads(proc.stdout) if "--json" in args else {}
    run = Run(seconds, children, rss_mb, summary, server_cpu=own)
    if fake is not None:
        for logged in fake.requests:
            run.requests[logged.endpoint] += 1
            if "limit" in logged.params:
                run.limits.add(int(logged.params["limit"]))
    return run


def write_csv_zip(fake: FakeOneRoster, path: Path) -> None:
    """The fake's roll as a MIS's OneRoster 1.1 CSV export: every column, the server's order."""
    if fake.version != "1.1":
        raise ValueError("the benchmark's CSV export is OneRoster 1.1")

    def table(header: tuple[str, ...], rows: Iterable[Iterable[str]]) -> bytes:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(header)
        writer.writerows(rows)
        return out.getvalue().encode("utf-8")

    def ids(refs: list[dict[str, str]]) -> str:
        return ",".join(ref["sourcedId"] for ref in refs)

    users = [
        (
            u["sourcedId"],
            u["status"],
            u["dateLastModified"],
            u["enabledUser"],
            ids(u["orgs"]),
            u["role"],
            u["username"],
            "",
            u["givenName"],
            u["familyName"],
            u["middleName"],
            u["identifier"],
            u["email"],
            u["sms"],
            u["phone"],
            ids(u["agents"]),
            ",".join(u["grades"]),
            "",
        )
        for u in fake.users
    ]
    orgs = [
        (o["sourcedId"], o["status"], o["dateLastModified"], o["name"], o["type"], o["identifier"])
        for o in fake.orgs
    ]
    classes = [
        (
            c["sourcedId"],
            c["status"],
            c["dateLastModified"],
            c["title"],
            ",".join(c["grades"]),
            c["course"]["sourcedId"],
            c["classCode"],
            c["classType"],
            c["location"],
            c["school"]["sourcedId"],
            ids(c["terms"]),
        )
        for c in fake.classes
    ]
    enrollments = [
        (
            e["sourcedId"],
            e["status"],
            e["dateLastModified"],
            e["class"]["sourcedId"],
            e["school"]["sourcedId"],
            e["user"]["sourcedId"],
            e["role"],
            e["primary"],
            e["beginDate"],
            e["endDate"],
        )
        for e in fake.enrollments
    ]
    manifest = [
        ("manifest.version", "1.0"),
        ("oneroster.version", "1.1"),
        *((f"file.{name}", "bulk") for name in ("classes", "enrollments", "orgs", "users")),
        *(
            (f"file.{name}", "absent")
            for name in ("academicSessions", "categories", "courses", "demographics")
        ),
    ]
    files = {
        "manifest.csv": table(("propertyName", "value"), manifest),
        "orgs.csv": table(
            ("sourcedId", "status", "dateLastModified", "name", "type", "identifier"), orgs
        ),
        "users.csv": table(USERS_COLUMNS, users),
        "classes.csv": table(
            (
                "sourcedId",
                "status",
                "dateLastModified",
                "title",
                "grades",
                "courseSourcedId",
                "classCode",
                "classType",
                "location",
                "schoolSourcedId",
                "termSourcedIds",
            ),
            classes,
        ),
        "enrollments.csv": table(
            (
                "sourcedId",
                "status",
                "dateLastModified",
                "classSourcedId",
                "schoolSourcedId",
                "userSourcedId",
                "role",
                "primary",
                "beginDate",
                "endDate",
            ),
            enrollments,
        ),
    }
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)


def change_contacts(fake: FakeOneRoster, count: int) -> list[tuple[dict[str, Any], str, str]]:
    """Give ``count`` contacts, spread through the roll, a new email stamped as changed now;
    what :func:`undo` needs to put them back."""
    contacts = [u for u in fake.users if u.get("role") in ("parent", "guardian", "relative")]
    step = max(1, len(contacts) // count)
    saved = []
    for user in contacts[::step][:count]:
        saved.append((user, user["email"], user["dateLastModified"]))
        user["email"] = "changed." + user["email"]
        fake.touch(user)
    return saved


def undo(saved: list[tuple[dict[str, Any], str, str]]) -> None:
    for user, email, modified in saved:
        user["email"], user["dateLastModified"] = email, modified


def _import_seconds(db: Path) -> float | None:
    """The last applied import's own duration, from the history (None when unreadable)."""
    try:
        with sqlite3.connect(db) as conn:
            row = conn.execute(
                "SELECT started_at, finished_at FROM mis_importrun WHERE status = 'applied' "
                "ORDER BY id DESC LIMIT 1"
            ).fetchone()
    except sqlite3.Error:
        return None
    if not row or not row[0] or not row[1]:
        return None
    started, finished = (dt.datetime.fromisoformat(str(value)) for value in row)
    return (finished - started).total_seconds()


def _remove_db(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)


@dataclass
class Round:
    first: Run
    again: Run
    delta: Run
    csv: Run
    #: The full sync's import alone, from the history.
    first_import_s: float | None


def _one_round(
    homelink: str,
    env: dict[str, str],
    fake: FakeOneRoster,
    empty: Path,
    workdir: Path,
    roster: Path,
) -> Round:
    """A full sync, the same again, a delta, then the CSV import of the same roll: one after
    the other, so that each round sees the machine as the others in it do."""
    db = workdir / "sync.sqlite3"
    _remove_db(db)
    shutil.copy(empty, db)
    sync_env = {**env, "DATABASE_URL": f"sqlite:///{db}"}
    command = [homelink, "sync", "run", "--school", URN, "--json"]
    first = _measured(command, sync_env, fake=fake)
    first_import_s = _import_seconds(db)
    again = _measured(command, sync_env, fake=fake)
    saved = change_contacts(fake, CHANGED)
    try:
        delta = _measured(command, sync_env, fake=fake)
    finally:
        undo(saved)
    _remove_db(db)
    csv_db = workdir / "csv.sqlite3"
    _remove_db(csv_db)
    shutil.copy(empty, csv_db)
    imported = _measured(
        [homelink, "import", "--school", URN, str(roster), "--json"],
        {**env, "DATABASE_URL": f"sqlite:///{csv_db}"},
    )
    _remove_db(csv_db)
    return Round(first, again, delta, imported, first_import_s)


def _seconds(values: list[float]) -> str:
    low, high = spread(values)
    return f"{median(values):7.2f}s ({low:.2f}-{high:.2f})"


def _ratio(values: list[float], target: float | None) -> str:
    low, high = spread(values)
    middle = median(values)
    shown = (
        judged(middle, target, higher_is_better=False, digits=2, unit="x")
        if target is not None
        else f"{middle:.2f}x"
    )
    return f"{shown} (per round {low:.2f}-{high:.2f})"


def _created(summary: dict[str, Any]) -> tuple[int, int, int]:
    return (
        summary["students"]["created"],
        summary["adults"]["created"],
        summary["links"]["created"],
    )


def _writes(summary: dict[str, Any]) -> dict[str, dict[str, int]]:
    return {
        group: {k: v for k, v in summary[group].items() if v and k not in ("unchanged", "skipped")}
        for group in ("students", "adults", "links")
        if group in summary
    }


def _pages(run: Run) -> str:
    lists = {k: v for k, v in sorted(run.requests.items()) if k not in ("token", "user", "")}
    text = ", ".join(f"{name} {count}" for name, count in lists.items())
    if run.requests["user"]:
        text += f"; {run.requests['user']} single users"
    return text


def _setup(homelink: str, env: dict[str, str], fake: FakeOneRoster) -> None:
    """Migrate, add the school (every contact imported, as a MIS lists them all) and its
    OneRoster sync, the secret on standard input as an administrator types it."""
    _measured([homelink, "migrate", "-v0"], env)
    _measured(
        [
            homelink,
            "school",
            "add",
            "--urn",
            URN,
            "--name",
            "Bench",
            "--la",
            "838",
            "--estab",
            "4512",
        ],
        env,
    )
    _measured([homelink, "school", "set", URN, "--import-lower-priority", "on"], env)
    _measured(
        [
            homelink,
            "sync",
            "add",
            "--school",
            URN,
            "--oneroster-url",
            fake.url,
            "--client-id",
            fake.client_id,
        ],
        env,
        stdin=fake.client_secret + "\n",
    )


def rounds_for(students: int) -> int:
    """Enough rounds for a median and a spread; at 20,000 students a round takes half a minute."""
    return 3 if students >= STUDENTS else 5


def run(students: int = STUDENTS, rounds: int | None = None) -> dict[str, Any]:
    rounds = rounds or rounds_for(students)
    homelink = str(Path(sys.executable).parent / "homelink")
    print(
        "OneRoster REST sync benchmark (SQLite, whole processes): medians of alternating rounds "
        "(lowest-highest); ratios are medians of each round's own"
    )
    with (
        tempfile.TemporaryDirectory(prefix="homelink-bench-sync-") as tmp,
        FakeOneRoster(version="1.1") as fake,
    ):
        workdir = Path(tmp)
        started = time.perf_counter()
        fake.add_school(students=students, contacts_per_student=2, siblings=0.0)
        roster = workdir / "roster.zip"
        write_csv_zip(fake, roster)
        contacts = sum(1 for u in fake.users if u["role"] != "student" and u["role"] != "teacher")
        print(
            f"\n{students:,} students, {contacts:,} contacts, {len(fake.classes):,} homerooms "
            f"({len(fake.users):,} users) on a fake OneRoster 1.1 server on 127.0.0.1 in this "
            f"process; the CSV zip {roster.stat().st_size / 1e6:,.1f} MB; built in "
            f"{time.perf_counter() - started:.1f}s; {rounds} rounds of full sync, sync again, "
            f"delta ({CHANGED} contacts changed), CSV import",
            flush=True,
        )
        empty = workdir / "empty.sqlite3"
        env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{empty}",
            "HOMELINK_VAR_DIR": str(workdir),
            # The fake is on 127.0.0.1 over http://, which only development settings allow.
            "HOMELINK_SYNC_ALLOW_PRIVATE": "1",
        }
        _setup(homelink, env, fake)
        measured: list[Round] = []
        for number in range(1, rounds + 1):
            one = _one_round(homelink, env, fake, empty, workdir, roster)
            measured.append(one)
            print(
                f"    round {number}: full sync {one.first.seconds:.2f}s, again "
                f"{one.again.seconds:.2f}s, delta {one.delta.seconds:.2f}s, CSV import "
                f"{one.csv.seconds:.2f}s",
                flush=True,
            )
        return _report(measured, students)


def _report(measured: list[Round], students: int) -> dict[str, Any]:
    first, again, delta, imported = (
        [getattr(r, name) for r in measured] for name in ("first", "again", "delta", "csv")
    )
    limits = set().union(*(r.limits for r in first))
    pages = "pages of " + ", ".join(f"{limit:,}" for limit in sorted(limits))
    if limits != {PAGE_SIZE}:
        pages += f" (NOT the {PAGE_SIZE:,} asked for)"
    print(
        f"  full sync       {_seconds([r.seconds for r in first])}  "
        f"(CPU {_seconds([r.cpu_seconds for r in first])})  peak RSS "
        f"{max(r.rss_mb for r in first):6.0f} MB"
    )
    print(f"    {pages}: {_pages(first[0])}")
    fetch = [
        r.first.summary["seconds"] - r.first_import_s
        for r in measured
        if r.first_import_s is not None
    ]
    if fetch:
        print(
            f"    inside it: fetching, zipping and storing {_seconds(fetch)}, the import "
            f"{_seconds([r.first_import_s for r in measured if r.first_import_s is not None])}; "
            f"the fake server's CPU {_seconds([r.server_cpu for r in first])}"
        )
    print(
        f"  CSV import      {_seconds([r.seconds for r in imported])}  "
        f"(CPU {_seconds([r.cpu_seconds for r in imported])})  peak RSS "
        f"{max(r.rss_mb for r in imported):6.0f} MB"
    )
    ratios = [r.first.seconds / r.csv.seconds for r in measured]
    inner = [r.first.summary["seconds"] / r.csv.summary["seconds"] for r in measured]
    cpu_ratios = [r.first.cpu_seconds / r.csv.cpu_seconds for r in measured]
    print(f"  sync / CSV      {_ratio(ratios, TARGET)}")
    # CPU time is steadier than the wall on a shared machine, but leaves out the waits on the
    # server, which a nightly sync does spend: for reading, not judged.
    print(f"  sync / CSV in CPU time      {_ratio(cpu_ratios, None)}")
    print(
        f"  sync / CSV without start-up  {_ratio(inner, None)}  (the commands' own seconds: "
        f"{median([r.first.summary['seconds'] for r in measured]):.2f}s / "
        f"{median([r.csv.summary['seconds'] for r in measured]):.2f}s, medians)"
    )
    synced, csv_made = _created(first[0].summary), _created(imported[0].summary)
    same = synced == csv_made
    counts = "{:,} students, {:,} adults, {:,} links".format(*synced)
    if same:
        print(f"  the same register from both: {counts} created")
    else:
        print(
            f"  the registers DIFFER: the sync created {counts}, the CSV import "
            "{:,} students, {:,} adults, {:,} links".format(*csv_made)
        )
    statuses = sorted({r.summary.get("status", "?") for r in again})
    print(
        f"  sync again      {_seconds([r.seconds for r in again])}  "
        f"(CPU {_seconds([r.cpu_seconds for r in again])})  {' / '.join(statuses)}; pages: "
        f"{_pages(again[0])}  peak RSS {max(r.rss_mb for r in again):6.0f} MB"
    )
    print(
        f"  delta sync      {_seconds([r.seconds for r in delta])}  "
        f"(CPU {_seconds([r.cpu_seconds for r in delta])})  {CHANGED} contacts changed; pages: "
        f"{_pages(delta[0])}  peak RSS {max(r.rss_mb for r in delta):6.0f} MB"
    )
    print(f"    delta writes  {_writes(delta[0].summary)}")
    print(
        "  The sync is the CSV import with the fetching in front: paging the lists as JSON "
        "over HTTP,\n  writing them as a CSV set, zipping it and storing it as an upload; the "
        "import is the same code.\n  Sync again asks only for what changed since the last sync "
        '(filter=dateLastModified>...)\n  and records "no changes"; the delta asks for what '
        "changed and whatever else makes each\n  student it names complete (its pages above)."
    )
    return {
        "students": students,
        "rounds": len(measured),
        "sync_s": median([r.seconds for r in first]),
        "csv_s": median([r.seconds for r in imported]),
        "ratio": median(ratios),
        "cpu_ratio": median(cpu_ratios),
        "again_s": median([r.seconds for r in again]),
        "again_statuses": statuses,
        "delta_s": median([r.seconds for r in delta]),
        "delta_writes": _writes(delta[0].summary),
        "limits": sorted(limits),
        "same_register": same,
        "created": synced,
        "rss_mb": max(r.rss_mb for r in [*first, *imported]),
    }
