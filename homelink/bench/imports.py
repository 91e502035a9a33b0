"""Import benchmark: generated SIMS-shaped CTFs imported by the real ``homelink`` process.

For each size it prints the first import into an empty SQLite database, the nightly re-import
(the same export with a handful of changes), the floor (lxml iterparse plus sqlite3 executemany
of the same rows, see floor.py), the ratios, and each process's peak RSS. Whole processes are
timed, start-up included, because that is what a nightly cron job costs.

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

from homelink.bench.stats import judged
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


def bench_size(pupils: int, workdir: Path, kind: Kind = KINDS[0]) -> dict[str, Any]:
    homelink = str(Path(sys.executable).parent / "homelink")
    tag = f"{pupils}-{kind.name}"
    db = workdir / f"import-{tag}.sqlite3"
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{db}", "HOMELINK_VAR_DIR": str(workdir)}
    ctf = workdir / f"ctf-{tag}.xml"
    started = time.perf_counter()
    stats = generate_ctf(ctf, pupils=pupils, seed=1, urn=URN, name_pool=kind.name_pool)
    print(
        f"\n{pupils:,} pupils, {kind.label}: generated {stats.contacts:,} contacts "
        f"({ctf.stat().st_size / 1e6:,.0f} MB) in {time.perf_counter() - started:.1f}s"
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
    empty = workdir / f"floor-{tag}.sqlite3"
    shutil.copy(db, empty)

    first = _run_measured([homelink, "import", "--school", URN, str(ctf), "--json"], env)
    first_summary = json.loads(first.stdout)
    again = _run_measured([homelink, "import", "--school", URN, str(nightly), "--json"], env)
    again_summary = json.loads(again.stdout)
    floor = _run_measured(
        [sys.executable, "-m", "homelink.bench.floor", str(ctf), str(empty), "1"], env
    )

    ratio = first.seconds / floor.seconds
    nightly_ratio = again.seconds / first.seconds
    writes = {
        group: {
            k: v for k, v in again_summary[group].items() if v and k not in ("unchanged", "skipped")
        }
        for group in ("students", "adults", "links")
    }
    rows = (
        first_summary["students"]["created"]
        + first_summary["adults"]["created"]
        + first_summary["links"]["created"]
    )
    print(
        f"  first import    {first.seconds:7.2f}s  (CPU {first.cpu_seconds:6.2f}s)  {rows:,} rows  "
        f"peak RSS {first.rss_mb:6.0f} MB"
    )
    print(
        f"  floor           {floor.seconds:7.2f}s  (CPU {floor.cpu_seconds:6.2f}s)  lxml + sqlite3  "
        f"peak RSS {floor.rss_mb:6.0f} MB"
    )
    target = TARGETS.get(pupils)
    shown = (
        f"{ratio:.2f}x"
        if target is None
        else judged(ratio, target, higher_is_better=False, digits=2, unit="x")
    )
    print(f"  import / floor  {shown}")
    # Start-up (about half a second of Django and imports) is the same for both processes and
    # dominates a small school, so the ratio is also given for the import itself, and judged only
    # for a big one. Each ratio printed is judged on its own.
    inner = again_summary["seconds"] / first_summary["seconds"]
    if pupils >= NIGHTLY_JUDGED_FROM:
        as_processes = judged(
            nightly_ratio, NIGHTLY_TARGET, higher_is_better=False, digits=2, unit="x"
        )
        as_imports = judged(inner, NIGHTLY_TARGET, higher_is_better=False, digits=2, unit="x")
        unjudged = ""
    else:
        as_processes, as_imports = f"{nightly_ratio:.2f}x", f"{inner:.2f}x"
        unjudged = f"; judged from {NIGHTLY_JUDGED_FROM:,} pupils"
    print(
        f"  nightly import  {again.seconds:7.2f}s  (CPU {again.cpu_seconds:6.2f}s)  / the first: "
        f"as processes {as_processes}; as imports {as_imports} "
        f"({again_summary['seconds']:.2f}s / {first_summary['seconds']:.2f}s{unjudged})"
    )
    print(f"  nightly writes  {writes}  peak RSS {again.rss_mb:6.0f} MB")
    if pupils >= 100_000:
        # The peak of both imports, judged as printed.
        peak = max(first.rss_mb, again.rss_mb)
        print(
            f"  peak RSS        {judged(peak, RSS_TARGET_MB, higher_is_better=False, digits=0, unit=' MB')}"
        )
    for path in (db, empty, ctf, nightly):
        for suffix in ("", "-wal", "-shm"):
            # 100,000 pupils of each kind would fill a small /tmp.
            path.with_name(path.name + suffix).unlink(missing_ok=True)
    return {
        "pupils": pupils,
        "kind": kind.name,
        "first_s": first.seconds,
        "nightly_s": again.seconds,
        "floor_s": floor.seconds,
        "ratio": ratio,
        "nightly_ratio": nightly_ratio,
        "nightly_import_ratio": inner,
        "rss_mb": max(first.rss_mb, again.rss_mb),
    }


def run(sizes: list[int], kinds: tuple[Kind, ...] = KINDS) -> list[dict[str, Any]]:
    print("Import benchmark (SQLite, whole processes)")
    with tempfile.TemporaryDirectory(prefix="homelink-bench-") as tmp:
        return [bench_size(size, Path(tmp), kind) for size in sizes for kind in kinds]
