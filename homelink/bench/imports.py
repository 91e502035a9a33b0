"""Import benchmark: generated SIMS-shaped CTFs imported by the real ``homelink`` process.

For each size it prints the first import into an empty SQLite database, the nightly re-import
(the same export with a handful of changes), the floor (lxml iterparse plus sqlite3 executemany
of the same rows, see floor.py), the ratios, and each process's peak RSS. Whole processes are
timed, start-up included, because that is what a nightly cron job costs. Each size runs several
rounds of first import, nightly import and floor in turn (so that a busy machine weighs on all
three alike); each figure is the median of the rounds with their spread (lowest-highest), and
each ratio the median of the rounds' own ratios.

Each size is imported as two kinds of file: the generator's own, with names from its full
lists, and one whose every name comes from a pool of 25 forenames x 40 surnames (a trust- or
LA-wide export, hundreds of parents of each name who are not the same person). Identifying an
adult across siblings (import rule 7) must cost the same per contact in both, so both are held
to the same targets.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from homelink.bench.stats import judged, median, spread
from homelink.mis.generate import generate_ctf

URN = "100001"
TARGETS = {2_000: 4.0, 100_000: 3.0}  # import time <= N x the floor
NIGHTLY_TARGET = 0.8  # re-import time <= this x the first import, at 100,000 pupils
NIGHTLY_JUDGED_FROM = 100_000  # below it, start-up and a sub-second import make it noise
RSS_TARGET_MB = 300  # at 100,000 pupils


@dataclass(frozen=True)
class Kind:
    """A kind of generated file: its name in the output and the generator's name pool."""

    name: str
    label: str
    name_pool: tuple[int, int] | None


KINDS = (
    Kind("lists", "names from the generator's lists", None),
    Kind("pool", "names from a pool of 25 forenames x 40 surnames", (25, 40)),
)


@dataclass
class Run:
    seconds: float
    #: CPU time (user and system) of the process: the wall time's share of a busy machine.
    cpu_seconds: float
    rss_mb: float
    stdout: str


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run_measured(args: list[str], env: dict[str, str]) -> Run:
    """Run a whole process, timing it and reading its own peak RSS (see rss.py)."""
    with tempfile.TemporaryDirectory() as tmp:
        rss_file = Path(tmp) / "rss"
        cpu = _children_cpu()
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "homelink.bench.rss", str(rss_file), *args],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        seconds = time.perf_counter() - started
        cpu = _children_cpu() - cpu
        if proc.returncode:
            raise SystemExit(
                f"{' '.join(args[1:4])} failed ({proc.returncode}):\n{proc.stderr[-2000:]}"
            )
        return Run(seconds, cpu, int(rss_file.read_text()) / 1024, proc.stdout)


def _nightly(source: Path, dest: Path, changes: int = 12) -> None:
    """The same export with a handful of changes: some contacts' emails and mobiles."""
    text = source.read_text(encoding="utf-8")
    count = 0

    def email(match: re.Match[str]) -> str:
        nonlocal count
        count += 1
        return f"<Email>changed{count}.{match.group(1)}</Email>"

    text = re.sub(r"<Email>([^<]+@example\.(?:org|com))</Email>", email, text, count=changes)
    dest.write_text(text, encoding="utf-8")


def rounds_for(pupils: int) -> int:
    """Alternating rounds at each size: enough for a median and a spread on a shared machine,
    few enough that 100,000 pupils (a minute and more a round) stays bearable."""
    return 3 if pupils >= NIGHTLY_JUDGED_FROM else 5


@dataclass
class Round:
    first: Run
    nightly: Run
    floor: Run
    #: The imports' own seconds, as each reported them (start-up left out).
    first_import_s: float
    nightly_import_s: float
    rows: int
    writes: dict[str, dict[str, int]]


def _one_round(
    homelink: str, env: dict[str, str], empty: Path, db: Path, ctf: Path, nightly: Path
) -> Round:
    """A first import into a copy of the empty register, the nightly re-import on top of it,
    then the floor into another copy: one after the other, so that each round sees the machine
    as the others in it do."""
    _remove_db(db)
    shutil.copy(empty, db)
    first = _run_measured([homelink, "import", "--school", URN, str(ctf), "--json"], env)
    first_summary = json.loads(first.stdout)
    again = _run_measured([homelink, "import", "--school", URN, str(nightly), "--json"], env)
    again_summary = json.loads(again.stdout)
    floor_db = db.with_name(db.stem + "-floor.sqlite3")
    _remove_db(floor_db)
    shutil.copy(empty, floor_db)
    floor = _run_measured(
        [sys.executable, "-m", "homelink.bench.floor", str(ctf), str(floor_db), "1"], env
    )
    _remove_db(floor_db)
    return Round(
        first=first,
        nightly=again,
        floor=floor,
        first_import_s=first_summary["seconds"],
        nightly_import_s=again_summary["seconds"],
        rows=first_summary["students"]["created"]
        + first_summary["adults"]["created"]
        + first_summary["links"]["created"],
        writes={
            group: {
                k: v
                for k, v in again_summary[group].items()
                if v and k not in ("unchanged", "skipped")
            }
            for group in ("students", "adults", "links")
        },
    )


def _remove_db(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)


def _seconds(values: list[float]) -> str:
    low, high = spread(values)
    return f"{median(values):7.2f}s ({low:.2f}-{high:.2f})"


def _ratio(
    values: list[float], target: float | None, *, judge: bool = True, unjudged: str = ""
) -> str:
    """The median of per-round ratios, judged as printed, with their spread."""
    low, high = spread(values)
    middle = median(values)
    shown = (
        judged(middle, target, higher_is_better=False, digits=2, unit="x")
        if target is not None and judge
        else f"{middle:.2f}x"
    )
    return f"{shown} (per round {low:.2f}-{high:.2f}{unjudged})"


def bench_size(
    pupils: int, workdir: Path, kind: Kind = KINDS[0], rounds: int | None = None
) -> dict[str, Any]:
    homelink = str(Path(sys.executable).parent / "homelink")
    rounds = rounds or rounds_for(pupils)
    tag = f"{pupils}-{kind.name}"
    db = workdir / f"import-{tag}.sqlite3"
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{db}", "HOMELINK_VAR_DIR": str(workdir)}
    ctf = workdir / f"ctf-{tag}.xml"
    started = time.perf_counter()
    stats = generate_ctf(ctf, pupils=pupils, seed=1, urn=URN, name_pool=kind.name_pool)
    print(
        f"\n{pupils:,} pupils, {kind.label}: generated {stats.contacts:,} contacts "
        f"({ctf.stat().st_size / 1e6:,.0f} MB) in {time.perf_counter() - started:.1f}s; "
        f"{rounds} rounds of first import, nightly import, floor",
        flush=True,
    )
    nightly = workdir / f"ctf-{tag}-nightly.xml"
    _nightly(ctf, nightly)

    _run_measured([homelink, "migrate", "-v0"], env)
    _run_measured(
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
    # Every contact is imported (priority 2+ as non-prime), so the rows match the floor's.
    _run_measured([homelink, "school", "set", URN, "--import-lower-priority", "on"], env)
    empty = workdir / f"empty-{tag}.sqlite3"
    _remove_db(empty)
    shutil.copy(db, empty)

    measured: list[Round] = []
    for number in range(1, rounds + 1):
        one = _one_round(homelink, env, empty, db, ctf, nightly)
        measured.append(one)
        print(
            f"    round {number}: first {one.first.seconds:.2f}s, nightly "
            f"{one.nightly.seconds:.2f}s, floor {one.floor.seconds:.2f}s",
            flush=True,
        )

    firsts = [r.first.seconds for r in measured]
    nightlies = [r.nightly.seconds for r in measured]
    floors = [r.floor.seconds for r in measured]
    first_rss = max(r.first.rss_mb for r in measured)
    nightly_rss = max(r.nightly.rss_mb for r in measured)
    floor_rss = max(r.floor.rss_mb for r in measured)
    ratios = [r.first.seconds / r.floor.seconds for r in measured]
    nightly_ratios = [r.nightly.seconds / r.first.seconds for r in measured]
    inner_ratios = [r.nightly_import_s / r.first_import_s for r in measured]
    print(
        f"  first import    {_seconds(firsts)}  (CPU {_seconds([r.first.cpu_seconds for r in measured])})"
        f"  {measured[0].rows:,} rows  peak RSS {first_rss:6.0f} MB"
    )
    print(
        f"  floor           {_seconds(floors)}  (CPU {_seconds([r.floor.cpu_seconds for r in measured])})"
        f"  lxml + sqlite3  peak RSS {floor_rss:6.0f} MB"
    )
    print(f"  import / floor  {_ratio(ratios, TARGETS.get(pupils))}")
    # Start-up (about half a second of Django and imports) is the same for both processes and
    # dominates a small school, so the ratio is also given for the import itself, and judged only
    # for a big one. Each ratio printed is judged on its own.
    judge = pupils >= NIGHTLY_JUDGED_FROM
    unjudged = "" if judge else f"; judged from {NIGHTLY_JUDGED_FROM:,} pupils"
    print(
        f"  nightly import  {_seconds(nightlies)}  (CPU {_seconds([r.nightly.cpu_seconds for r in measured])})"
        f"  peak RSS {nightly_rss:6.0f} MB"
    )
    print(
        f"  nightly / first as processes {_ratio(nightly_ratios, NIGHTLY_TARGET, judge=judge, unjudged=unjudged)}"
    )
    print(
        f"  nightly / first as imports   {_ratio(inner_ratios, NIGHTLY_TARGET, judge=judge, unjudged=unjudged)}"
        f"  ({median([r.nightly_import_s for r in measured]):.2f}s / "
        f"{median([r.first_import_s for r in measured]):.2f}s, medians)"
    )
    print(f"  nightly writes  {measured[0].writes}")
    peak = max(first_rss, nightly_rss)
    if pupils >= 100_000:
        # The peak of both imports over every round, judged as printed.
        print(
            f"  peak RSS        {judged(peak, RSS_TARGET_MB, higher_is_better=False, digits=0, unit=' MB')}"
        )
    for path in (db, empty, ctf, nightly):
        # 100,000 pupils of each kind would fill a small /tmp.
        _remove_db(path)
    return {
        "pupils": pupils,
        "kind": kind.name,
        "rounds": rounds,
        "first_s": median(firsts),
        "nightly_s": median(nightlies),
        "floor_s": median(floors),
        "ratio": median(ratios),
        "nightly_ratio": median(nightly_ratios),
        "nightly_import_ratio": median(inner_ratios),
        "rss_mb": peak,
    }


def run(
    sizes: list[int], kinds: tuple[Kind, ...] = KINDS, rounds: int | None = None
) -> list[dict[str, Any]]:
    print(
        "Import benchmark (SQLite, whole processes): medians of alternating rounds "
        "(lowest-highest); ratios are medians of each round's own"
    )
    with tempfile.TemporaryDirectory(prefix="homelink-bench-") as tmp:
        return [bench_size(size, Path(tmp), kind, rounds) for size in sizes for kind in kinds]
