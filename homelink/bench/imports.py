"""Import benchmark: generated SIMS-shaped CTFs imported by the real ``homelink`` process.

For each size it prints the first import into an empty SQLite database, the nightly re-import
(the same export with a handful of changes), the floor (lxml iterparse plus sqlite3 executemany
of the same rows, see floor.py), the ratios, and each process's peak RSS. Whole processes are
timed, start-up included, because that is what a nightly cron job costs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from homelink.bench.stats import judged
from homelink.mis.generate import generate_ctf

URN = "100001"
TARGETS = {2_000: 4.0, 100_000: 3.0}  # import time <= N x the floor
NIGHTLY_TARGET = 0.8  # re-import time <= this x the first import
RSS_TARGET_MB = 300  # at 100,000 pupils


@dataclass
class Run:
    seconds: float
    rss_mb: float
    stdout: str


def _run_measured(args: list[str], env: dict[str, str]) -> Run:
    """Run a whole process, timing it and reading its own peak RSS (see rss.py)."""
    with tempfile.TemporaryDirectory() as tmp:
        rss_file = Path(tmp) / "rss"
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "homelink.bench.rss", str(rss_file), *args],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        seconds = time.perf_counter() - started
        if proc.returncode:
            raise SystemExit(
                f"{' '.join(args[1:4])} failed ({proc.returncode}):\n{proc.stderr[-2000:]}"
            )
        return Run(seconds, int(rss_file.read_text()) / 1024, proc.stdout)


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


def bench_size(pupils: int, workdir: Path) -> dict[str, float]:
    homelink = str(Path(sys.executable).parent / "homelink")
    db = workdir / f"import-{pupils}.sqlite3"
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{db}", "HOMELINK_VAR_DIR": str(workdir)}
    ctf = workdir / f"ctf-{pupils}.xml"
    started = time.perf_counter()
    stats = generate_ctf(ctf, pupils=pupils, seed=1, urn=URN)
    print(
        f"\n{pupils:,} pupils: generated {stats.contacts:,} contacts ({ctf.stat().st_size / 1e6:,.0f} MB) "
        f"in {time.perf_counter() - started:.1f}s"
    )
    nightly = workdir / f"ctf-{pupils}-nightly.xml"
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
    empty = workdir / f"floor-{pupils}.sqlite3"
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
        f"  first import    {first.seconds:7.2f}s  {rows:,} rows  peak RSS {first.rss_mb:6.0f} MB"
    )
    print(
        f"  floor           {floor.seconds:7.2f}s  (lxml + sqlite3)    peak RSS {floor.rss_mb:6.0f} MB"
    )
    target = TARGETS.get(pupils)
    shown = (
        f"{ratio:.2f}x"
        if target is None
        else judged(ratio, target, higher_is_better=False, digits=2, unit="x")
    )
    print(f"  import / floor  {shown}")
    # Start-up (about half a second of Django and imports) is the same for both processes and
    # dominates a small school, so the ratio is also given for the import itself.
    # Each ratio printed is judged on its own.
    inner = again_summary["seconds"] / first_summary["seconds"]
    as_processes = judged(nightly_ratio, NIGHTLY_TARGET, higher_is_better=False, digits=2, unit="x")
    as_imports = judged(inner, NIGHTLY_TARGET, higher_is_better=False, digits=2, unit="x")
    print(
        f"  nightly import  {again.seconds:7.2f}s  / the first: as processes {as_processes}; "
        f"as imports {as_imports} ({again_summary['seconds']:.2f}s / {first_summary['seconds']:.2f}s)"
    )
    print(f"  nightly writes  {writes}  peak RSS {again.rss_mb:6.0f} MB")
    if pupils >= 100_000:
        # The peak of both imports, judged as printed.
        peak = max(first.rss_mb, again.rss_mb)
        print(
            f"  peak RSS        {judged(peak, RSS_TARGET_MB, higher_is_better=False, digits=0, unit=' MB')}"
        )
    return {
        "pupils": pupils,
        "first_s": first.seconds,
        "nightly_s": again.seconds,
        "floor_s": floor.seconds,
        "ratio": ratio,
        "nightly_ratio": nightly_ratio,
        "nightly_import_ratio": inner,
        "rss_mb": max(first.rss_mb, again.rss_mb),
    }


def run(sizes: list[int]) -> list[dict[str, float]]:
    print("Import benchmark (SQLite, whole processes)")
    with tempfile.TemporaryDirectory(prefix="homelink-bench-") as tmp:
        return [bench_size(size, Path(tmp)) for size in sizes]
