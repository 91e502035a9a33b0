"""Parent pages under load (issue 12): sign-in, the account page and linking with a code, each
against a hello-world view on the same server.

How the figures are made:

- **The server** is gunicorn with sync workers, as docs/deployment.md deploys it, ``2 x cores +
  1`` of them (gunicorn's own advice), on a throw-away PostgreSQL database (``BENCH_PG_URL``,
  ``BENCH_DB_NAME``, as in :mod:`homelink.bench.messages`). Its settings are production's
  (``homelink.settings``, ``DEBUG`` off, the real password hasher) with the development key
  (``HOMELINK_DEV=1``), ``HOMELINK_TRUSTED_PROXIES=127.0.0.1`` (as behind nginx: each request
  says which parent's address it comes from) and the site-wide attempt budgets raised
  (``HOMELINK_CODE_BUDGET_PER_MINUTE``, ``HOMELINK_LOGIN_BUDGET_PER_MINUTE``): what is measured
  is the work, not the slowing that protects the site during an attack. Every limit is still
  counted, and checked afterwards.
- **The data**: several schools, and parent accounts made straight into the tables, each with
  a signed-in session (a session row, as ``login`` makes). Linking: a student and a fresh code
  for every request, and a fresh parent, so each request is a real first link (the limits, the
  code's hash, the locks, a new adult and a new link, both audited). The account page: parents
  with two children each, at two schools. Sign-in: parents with the same real password hash.
- **The load**: wrk (a separate process, HTTP/1.1) with ``CONNECTIONS`` connections, requests
  made by a Lua script from files of sessions, codes and addresses. Each round runs every page
  in turn for ``seconds`` (sign-in at least ``SIGNIN_SECONDS``): hello world, hello world sent
  with a parent's session (what any request with a session costs: the session read, not
  judged), sign-in, the account page, linking. A page's figure is the median of its
  rounds, with the spread (lowest-highest); between runs the server is left to finish what
  the last one sent. Throughput and p95 are measured flat out (each connection sends its next
  request when the last is answered), and both are judged; flat out, though, latency is only
  connections / throughput (Little's law), so p95 is also measured, and judged, at the target
  load: 0.3 x the hello-world rate, paced by the script (a schedule of send times, each free
  connection taking the next), for a page whose throughput reaches it.
- **Exact**: after each round the database must show every attempt counted (the site-wide
  bucket, emptied before the round, holds exactly as many attempts as there are new links, or
  new sessions), every link audited (as many ``link.added`` and ``adult.created`` events as
  links and adults), and every per-address and per-account count settled by its success.

Sign-in also runs on a second server whose only difference is a cheap hasher (bench-only
settings, :mod:`homelink.bench.settings_md5`): what sign-in costs apart from hashing the
password. That figure is for reading, not judged.

Needs wrk (``apt-get install wrk``), gunicorn (``pip install -e '.[dev]'``) and PostgreSQL;
without them it prints one line saying which is missing and why.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from homelink.bench.messages import _database
from homelink.bench.stats import judged, median, spread

CONNECTIONS = 50
RATIO_TARGET = 0.3
P95_TARGET_MS = 50.0
#: wrk's threads: one per core, like the server's.
THREADS = max(1, min(4, os.cpu_count() or 1))
#: A request taking longer than this is a timeout (wrk's default, 2 s, is shorter than a
#: password check queued behind fifty others).
TIMEOUT_S = 60
#: Sign-in with the real hasher answers a few a second: its runs last at least this long, so
#: each has enough answers for a median and a p95.
SIGNIN_SECONDS = 10
SCHOOLS = 10
#: Parents with two children each, for the account page and sign-in.
ACCOUNT_PARENTS = 2_000
PASSWORD = "bench-passphrase-4242"  # noqa: S105 - the benchmark's fictional parents
CSRF = "BenchCsrfSecretBenchCsrfSecret42"  # 32 characters: a CSRF secret, cookie and field
#: The fastest linking is assumed to go, for how many fresh codes to make per run; a run that
#: uses them all says so (its figure is then a lower bound).
LINK_CEILING_PER_S = 800
#: Measured in turn, each round: the floor, then the pages. "signed_in" is hello world with a
#: parent's session (the session read, which every signed-in page does), for reading, not judged.
PAGES = ("hello", "signed_in", "signin", "account", "link")
JUDGED = ("signin", "account", "link")
LABELS = {
    "hello": ("hello world", "GET /healthz/"),
    "signed_in": ("signed-in hello", "GET /healthz/ +session"),
    "signin": ("sign-in", "POST /login/"),
    "account": ("account page", "GET /account/"),
    "link": ("linking", "POST /account/link/"),
    "signin_md5": ("sign-in, MD5", "POST /login/"),
}


@dataclass(frozen=True)
class Sizes:
    rounds: int
    seconds: int
    #: Rounds at the paced target rate, for the latency target.
    paced_rounds: int


FULL = Sizes(rounds=5, seconds=5, paced_rounds=3)
QUICK = Sizes(rounds=3, seconds=3, paced_rounds=2)


def workers() -> int:
    return 2 * (os.cpu_count() or 1) + 1


# --- the parent ---------------------------------------------------------------------------------


def run(*, quick: bool = False) -> dict[str, Any]:
    sizes = QUICK if quick else FULL
    print("Parent pages under load (issue 12)", flush=True)
    wrk = shutil.which("wrk")
    if wrk is None:
        print("  skipped: wrk not installed (apt-get install wrk)")
        return {"skipped": "wrk"}
    try:
        import gunicorn  # noqa: F401
    except ImportError:
        print("  skipped: gunicorn not installed (pip install -e '.[dev]')")
        return {"skipped": "gunicorn"}
    with tempfile.TemporaryDirectory(prefix="homelink-bench-load-") as tmp:
        workdir = Path(tmp)
        with _database(workdir) as database:
            if not database.url.startswith("postgres"):
                why = database.label.partition("(")[2].removesuffix(")")
                print(f"  skipped: needs PostgreSQL ({why})")
                return {"skipped": "postgresql"}
            return _run(sizes, workdir, database.url, database.label, wrk)


def _seconds(page: str, sizes: Sizes) -> int:
    return max(sizes.seconds, SIGNIN_SECONDS) if page == "signin" else sizes.seconds


def _run(sizes: Sizes, workdir: Path, url: str, label: str, wrk: str) -> dict[str, Any]:
    env = _environ(url, workdir)
    subprocess.run(
        [sys.executable, "-m", "homelink.cli", "migrate", "-v", "0"], env=env, check=True
    )
    # Fresh codes for every flat-out linking run (a warm-up and the rounds) at the ceiling; the
    # paced runs' are made once the hello-world rate says how many they need.
    spec = {
        "schools": SCHOOLS,
        "account_parents": ACCOUNT_PARENTS,
        "links": [LINK_CEILING_PER_S * sizes.seconds] * (1 + sizes.rounds),
        "threads": THREADS,
    }
    started = time.perf_counter()
    made = _child(["setup", json.dumps(spec), str(workdir)], env, workdir)
    setup_s = time.perf_counter() - started
    version = subprocess.run([wrk, "--version"], capture_output=True, text=True, check=False)
    wrk_name = (version.stdout or version.stderr).split("Copyright")[0].strip()
    print(
        f"  server: gunicorn, {workers()} sync workers (2 x {os.cpu_count()} cores + 1), "
        "production settings (the real\n"
        f"          password hasher, DEBUG off); {label}\n"
        f"  data:   {SCHOOLS} schools, {made['students']:,} students, "
        f"{made['parents']:,} parent accounts with sessions (made in {setup_s:.0f} s);\n"
        "          each link a fresh code, student and parent\n"
        f"  load:   {wrk_name}, {THREADS} threads, {CONNECTIONS} connections, each parent "
        "at an address of\n          its own (X-Forwarded-For from a trusted proxy); "
        f"{sizes.rounds} rounds of {sizes.seconds} s per page in turn\n"
        f"          (sign-in {_seconds('signin', sizes)} s), median (lowest-highest); "
        "site-wide attempt budgets raised,\n          every attempt still counted",
        flush=True,
    )
    runs: dict[str, list[dict[str, Any]]] = {page: [] for page in PAGES}
    paced: dict[str, list[dict[str, Any]]] = {page: [] for page in JUDGED}
    links = iter(made["link_files"])
    with _gunicorn(env, workdir) as port:
        load = _Load(wrk, port, workdir, url)
        # Warm-up: every worker imports and compiles what each page needs.
        for page in PAGES:
            load.run(page, 2, data=next(links) if page == "link" else None)
        for number in range(1, sizes.rounds + 1):
            line = []
            for page in PAGES:
                data = next(links) if page == "link" else None
                result = load.run(page, _seconds(page, sizes), data=data)
                runs[page].append(result)
                line.append(f"{LABELS[page][0]} {result['rate']:,.0f}/s")
            print(f"    round {number}: {'; '.join(line)}", flush=True)
        target_rate = RATIO_TARGET * median([r["rate"] for r in runs["hello"]])
        for page in JUDGED:
            if median([r["rate"] for r in runs[page]]) < target_rate:
                # Flat out it answers fewer than the target rate: paced there, its queue grows.
                continue
            paced_links: Iterator[str | None] = iter([None] * sizes.paced_rounds)
            if page == "link":
                more = _child(
                    [
                        "codes",
                        json.dumps(
                            {
                                "runs": sizes.paced_rounds,
                                "per_run": int(target_rate * sizes.seconds * 1.2) + 100,
                                "threads": THREADS,
                                "first": made["next_code"],
                            }
                        ),
                        str(workdir),
                    ],
                    env,
                    workdir,
                )
                paced_links = iter(more["link_files"])
            for data in paced_links:
                paced[page].append(load.run(page, sizes.seconds, data=data, rate=target_rate))
    with _gunicorn(
        {**env, "DJANGO_SETTINGS_MODULE": "homelink.bench.settings_md5"}, workdir
    ) as port:
        load = _Load(wrk, port, workdir, url)
        load.run("signin_md5", 2)
        md5 = [load.run("signin_md5", sizes.seconds) for _ in range(sizes.rounds)]
    _report(runs, paced, md5, target_rate, sizes)
    return {"runs": runs, "paced": paced, "signin_md5": md5, "target_rate": target_rate}


def _ms(value: float) -> str:
    return f"{value:,.1f} ms" if value == value else "-"  # NaN: no answer in the run


def _report(
    runs: dict[str, list[dict[str, Any]]],
    paced: dict[str, list[dict[str, Any]]],
    md5: list[dict[str, Any]],
    target_rate: float,
    sizes: Sizes,
) -> None:
    hello = median([r["rate"] for r in runs["hello"]])
    print(
        f"  flat out, {CONNECTIONS} connections: throughput, its ratio to hello world (median of "
        "the rounds'\n  medians; per round in brackets) and p95 latency"
    )
    for page in (*PAGES, "signin_md5"):
        measured = md5 if page == "signin_md5" else runs[page]
        if not measured:
            continue
        rates = [r["rate"] for r in measured]
        rate = median(rates)
        low, high = spread(rates)
        p95 = median([r["p95_ms"] for r in measured])
        name, what = LABELS[page]
        line = f"    {name:<15} {what:<23} {rate:7,.0f}/s ({low:,.0f}-{high:,.0f})"
        if page == "hello":
            print(f"{line}  p95 {_ms(p95)}")
            continue
        hellos = (
            runs["hello"]
            if len(measured) == len(runs["hello"])
            else [{"rate": hello}] * len(measured)
        )
        ratios = [r["rate"] / h["rate"] for r, h in zip(measured, hellos, strict=True)]
        if page in JUDGED:
            ratio = judged(rate / hello, RATIO_TARGET, higher_is_better=True)
            latency = judged(p95, P95_TARGET_MS, higher_is_better=False, digits=1, unit=" ms")
        else:
            ratio, latency = f"{rate / hello:.2f}", _ms(p95)
        print(f"{line}  ratio {ratio} ({min(ratios):.2f}-{max(ratios):.2f})  p95 {latency}")
    print(
        "    (signed-in hello: hello world sent with a parent's session, the session read that "
        "every\n    signed-in page does before its own work; sign-in, MD5: a second server "
        "whose only difference\n    is a cheap password hasher, bench-only: sign-in without "
        "the password's cost. Neither is judged.)"
    )
    print(
        f"  paced at the target load, 0.3 x hello world = {target_rate:,.0f} requests/s over "
        f"{CONNECTIONS} connections\n  (flat out, latency is only connections / throughput):"
    )
    for page, measured in paced.items():
        name, what = LABELS[page]
        if not measured:
            flat_out = median([r["rate"] for r in runs[page]])
            print(
                f"    {name:<15} {what:<23} p95 MISSES ≤ {P95_TARGET_MS:g} ms: not measurable, "
                f"flat out it answers {flat_out:,.0f}/s"
            )
            continue
        p95s = [r["p95_ms"] for r in measured]
        low, high = spread(p95s)
        got = median([r["rate"] for r in measured])
        print(
            f"    {name:<15} {what:<23} {got:7,.0f}/s  p95 "
            f"{judged(median(p95s), P95_TARGET_MS, higher_is_better=False, digits=1, unit=' ms')}"
            f" ({low:.1f}-{high:.1f}, {len(measured)} rounds)"
        )
    problems = [
        f"{LABELS[r['page']][0]}: {problem}"
        for measured in (*runs.values(), *paced.values(), md5)
        for r in measured
        for problem in r["problems"]
    ]
    checked = sum(len(m) for m in (*runs.values(), *paced.values(), md5))
    if problems:
        print(f"  NOT EXACT in {len(problems)} of {checked} runs:")
        for problem in problems[:10]:
            print(f"    {problem}")
    else:
        print(
            f"  exact in all {checked} runs: every attempt counted in the site-wide bucket "
            "(= new links, = new\n  sessions), every link and new adult audited, every "
            "per-address and per-account count settled"
        )


def _environ(url: str, workdir: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "DEBUG", "TASKS_BACKEND", "LOG_LEVEL"}
        and not k.startswith("HOMELINK_")
    }
    env.update(
        DJANGO_SETTINGS_MODULE="homelink.settings",
        DATABASE_URL=url,
        HOMELINK_DEV="1",
        HOMELINK_VAR_DIR=str(workdir),
        HOMELINK_TRUSTED_PROXIES="127.0.0.1",
        HOMELINK_CODE_BUDGET_PER_MINUTE="100000000",
        HOMELINK_LOGIN_BUDGET_PER_MINUTE="100000000",
        ALLOWED_HOSTS="127.0.0.1",
        LOG_LEVEL="WARNING",
    )
    return env


def _child(args: list[str], env: dict[str, str], workdir: Path) -> Any:
    out = workdir / f"{args[0]}.json"
    proc = subprocess.run(
        [sys.executable, "-m", "homelink.bench.load", *args, str(out)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode:
        raise SystemExit(
            f"load benchmark ({args[0]}) failed ({proc.returncode}):\n{proc.stderr[-4000:]}"
        )
    return json.loads(out.read_text())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _gunicorn(env: dict[str, str], workdir: Path) -> Iterator[int]:
    port = _free_port()
    log = (workdir / "gunicorn.log").open("ab")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "homelink.wsgi",
            "--workers",
            str(workers()),
            "--bind",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=log,
        stderr=log,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/healthz/", timeout=2
                ) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = (workdir / "gunicorn.log").read_text(errors="replace")[-3000:]
                raise SystemExit(f"gunicorn did not start:\n{tail}")
            time.sleep(0.1)
        yield port
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


class _Load:
    """wrk runs against one server, each checked against the database afterwards."""

    def __init__(self, wrk: str, port: int, workdir: Path, url: str) -> None:
        self.wrk, self.port, self.workdir, self.url = wrk, port, workdir, url
        self.script = workdir / "load.lua"
        self.script.write_text(LUA)

    def run(
        self, page: str, seconds: int, *, data: str | None = None, rate: float = 0.0
    ) -> dict[str, Any]:
        mode = {"signin_md5": "signin"}.get(page, page)
        files = {
            "hello": "",
            "signed_in": "account",
            "signin": "signin_md5" if page == "signin_md5" else "signin",
            "account": "account",
            "link": data or "",
        }
        env = {
            **os.environ,
            "HL_MODE": mode,
            "HL_DATA": str(self.workdir / files[mode]) if files[mode] else "",
            "HL_CSRF": CSRF,
            "HL_PASSWORD": PASSWORD,
            "HL_RATE": f"{rate:.3f}",
            "HL_THREADS": str(THREADS),
        }
        with _Counts(self.url, mode) as counts:
            proc = subprocess.run(
                [
                    self.wrk,
                    f"-t{THREADS}",
                    f"-c{CONNECTIONS}",
                    f"-d{seconds}s",
                    f"--timeout={TIMEOUT_S}s",
                    "-s",
                    str(self.script),
                    f"http://127.0.0.1:{self.port}/",
                ],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            found = [
                line.removeprefix("HL_RESULT ")
                for line in proc.stdout.splitlines()
                if line.startswith("HL_RESULT ")
            ]
            if proc.returncode or not found:
                raise SystemExit(f"wrk failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
            result: dict[str, Any] = json.loads(found[-1])
            # What wrk left behind (requests sent, not yet answered) is still being served:
            # wait for it before counting, and before the next run's clock starts.
            self.drain()
            problems = counts.problems(result)
        result["page"] = page
        result["rate"] = result["requests"] / (result["duration_us"] / 1e6)
        result["p95_ms"] = result["p95_us"] / 1000 if result["requests"] else float("nan")
        errors = {k: result[k] for k in ("connect", "read", "write", "status", "timeout")}
        if any(errors.values()):
            problems.append(f"wrk errors {errors}")
        if result["exhausted"]:
            problems.append("ran out of fresh codes: the figure is a lower bound")
        result["problems"] = problems
        return result

    def drain(self) -> None:
        """Return once the server answers hello world at once, three times in a row: every
        worker is free."""
        quick = 0
        deadline = time.monotonic() + 300
        while quick < 3 and time.monotonic() < deadline:
            started = time.perf_counter()
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz/", timeout=300):
                pass
            quick = quick + 1 if time.perf_counter() - started < 0.02 else 0
            time.sleep(0.02)


#: Counts that have not changed for this long are final.
QUIET_S = 10.0


class _Counts:
    """What the database says a run did: its attempts, links, sessions and audit events."""

    def __init__(self, url: str, mode: str) -> None:
        self.url, self.mode = url, mode

    def __enter__(self) -> _Counts:
        import psycopg

        self.conn = psycopg.connect(self.url, autocommit=True)
        scope = {"link": "code:global", "signin": "login:global"}.get(self.mode)
        if scope:
            # The window starts afresh with the run's first attempt and outlasts the run.
            self.conn.execute("DELETE FROM ratelimit_bucket WHERE scope = %s", [scope])
        self.before = self._read()
        return self

    def __exit__(self, *exc: object) -> None:
        self.conn.close()

    def _read(self) -> dict[str, int]:
        queries = {
            "links": "SELECT count(*) FROM register_link WHERE source = 'web'",
            "adults": "SELECT count(*) FROM register_adult WHERE source = 'web'",
            "link_events": "SELECT count(*) FROM audit_auditevent WHERE action = 'link.added'",
            "adult_events": "SELECT count(*) FROM audit_auditevent WHERE action = 'adult.created'",
            "sessions": "SELECT count(*) FROM django_session",
            "code_global": "SELECT coalesce(sum(count), 0) FROM ratelimit_bucket WHERE scope = 'code:global'",
            "login_global": "SELECT coalesce(sum(count), 0) FROM ratelimit_bucket WHERE scope = 'login:global'",
            "code_ip": "SELECT coalesce(sum(count), 0) FROM ratelimit_bucket WHERE scope = 'code:ip' AND expires_at > now()",
            "code_account": "SELECT count(*) FROM ratelimit_bucket WHERE scope = 'code:account'",
            "login_ip": "SELECT coalesce(sum(count), 0) FROM ratelimit_bucket WHERE scope = 'login:ip' AND expires_at > now()",
            "login_new": "SELECT coalesce(sum(count), 0) FROM ratelimit_bucket WHERE scope = 'login:new_devices' AND expires_at > now()",
            "login_pair": "SELECT count(*) FROM ratelimit_bucket WHERE scope = 'login:account_ip'",
        }
        return {name: int(self.conn.execute(sql).fetchone()[0]) for name, sql in queries.items()}  # type: ignore[index]

    def problems(self, result: dict[str, Any]) -> list[str]:
        """What is not exact once every request the server took has finished: a request still
        being served (a password being hashed) has been counted but not yet settled, so this
        waits until the counts agree, or stop changing for ``QUIET_S``."""
        last: dict[str, int] = {}
        changed = time.monotonic()
        while True:
            after = self._read()
            problems = self._problems(result, after)
            if not problems:
                return []
            if after != last:
                last, changed = after, time.monotonic()
            elif time.monotonic() - changed > QUIET_S:
                return problems
            time.sleep(0.2)

    def _problems(self, result: dict[str, Any], after: dict[str, int]) -> list[str]:
        delta = {k: after[k] - self.before[k] for k in after}
        problems: list[str] = []
        if self.mode == "link":
            attempts = after["code_global"]
            if not (attempts == delta["links"] == delta["link_events"]):
                problems.append(
                    f"{attempts} attempts counted, {delta['links']} links, "
                    f"{delta['link_events']} link.added events"
                )
            if not (delta["adults"] == delta["adult_events"] == delta["links"]):
                problems.append(
                    f"{delta['adults']} new adults, {delta['adult_events']} adult.created events"
                )
            if not result["requests"] <= delta["links"] <= result["requests"] + CONNECTIONS:
                problems.append(f"{result['requests']} answers but {delta['links']} links")
            if after["code_ip"] or after["code_account"]:
                problems.append(
                    f"unsettled: code:ip {after['code_ip']}, code:account rows {after['code_account']}"
                )
        elif self.mode == "signin":
            attempts = after["login_global"]
            if attempts != delta["sessions"]:
                problems.append(f"{attempts} attempts counted, {delta['sessions']} new sessions")
            if not result["requests"] <= delta["sessions"] <= result["requests"] + CONNECTIONS:
                problems.append(f"{result['requests']} answers but {delta['sessions']} sign-ins")
            if after["login_ip"] or after["login_new"] or after["login_pair"]:
                problems.append(
                    f"unsettled: login:ip {after['login_ip']}, login:new_devices "
                    f"{after['login_new']}, login:account_ip rows {after['login_pair']}"
                )
        return problems


# wrk's script: the requests are made once, in init(), from the files the setup wrote (one per
# thread: "<session> <code>" for linking, "<session>" for the account page, "<email>" for
# sign-in); each carries its own X-Forwarded-For. HL_RATE > 0 paces the sends: a schedule of
# send times at that rate, each connection that is free taking the next.
LUA = r"""
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } hl_timespec;
int clock_gettime(int clk_id, hl_timespec *tp);
]]
local ts = ffi.new("hl_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local mode = os.getenv("HL_MODE")
local data = os.getenv("HL_DATA")
local csrf = os.getenv("HL_CSRF")
local password = os.getenv("HL_PASSWORD")
local rate = tonumber(os.getenv("HL_RATE") or "0")
local nthreads = tonumber(os.getenv("HL_THREADS") or "1")

local threads = {}
local created = 0
function setup(thread)
  thread:set("id", created)
  created = created + 1
  table.insert(threads, thread)
end

local FORM = "application/x-www-form-urlencoded"

function init(args)
  reqs = {}
  sent = 0
  exhausted = 0
  if mode == "hello" then
    reqs[1] = wrk.format("GET", "/healthz/")
    return
  end
  local i = 0
  for line in io.lines(data .. "." .. id) do
    i = i + 1
    local a, b = line:match("^(%S+)%s*(%S*)$")
    local address = string.format("10.%d.%d.%d", 1 + id, math.floor(i / 256) % 256, i % 256)
    local headers = { ["X-Forwarded-For"] = address }
    if mode == "account" or mode == "signed_in" then
      headers["Cookie"] = "sessionid=" .. a
      reqs[i] = wrk.format("GET", mode == "account" and "/account/" or "/healthz/", headers)
    elseif mode == "signin" then
      headers["Cookie"] = "csrftoken=" .. csrf
      headers["Content-Type"] = FORM
      local body = "csrfmiddlewaretoken=" .. csrf .. "&email=" .. a .. "&password=" .. password
      reqs[i] = wrk.format("POST", "/login/", headers, body)
    else
      headers["Cookie"] = "sessionid=" .. a .. "; csrftoken=" .. csrf
      headers["Content-Type"] = FORM
      local body = "csrfmiddlewaretoken=" .. csrf .. "&code=" .. b .. "&relationship=mother"
      reqs[i] = wrk.format("POST", "/account/link/", headers, body)
    end
  end
  spare = wrk.format("GET", "/healthz/")
end

function request()
  sent = sent + 1
  local n = #reqs
  if mode == "link" then
    if sent > n then
      -- Every code is used once: stop, and say so.
      exhausted = 1
      wrk.thread:stop()
      return spare
    end
    return reqs[sent]
  end
  return reqs[(sent - 1) % n + 1]
end

if rate > 0 then
  local interval = 1000.0 * nthreads / rate
  local next_slot = nil
  function delay()
    local t = now_ms()
    if next_slot == nil then next_slot = t end
    local wait = next_slot - t
    next_slot = next_slot + interval
    if wait <= 0 then return 0 end
    return math.floor(wait + 0.5)
  end
end

function done(summary, latency, requests)
  local exhausted_threads = 0
  for _, thread in ipairs(threads) do
    exhausted_threads = exhausted_threads + (thread:get("exhausted") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'HL_RESULT {"requests": %d, "duration_us": %d, "mean_us": %.1f, "p50_us": %d, ' ..
    '"p95_us": %d, "p99_us": %d, "max_us": %d, "connect": %d, "read": %d, "write": %d, ' ..
    '"status": %d, "timeout": %d, "exhausted": %d}\n',
    summary.requests, summary.duration, latency.mean, latency:percentile(50),
    latency:percentile(95), latency:percentile(99), latency.max, e.connect, e.read, e.write,
    e.status, e.timeout, exhausted_threads))
end
"""


# --- the setup child ----------------------------------------------------------------------------


def _setup_main(spec: dict[str, Any], workdir: Path, out: Path) -> None:
    import django

    django.setup()
    from django.contrib.auth.hashers import make_password
    from django.db import connection

    from homelink.schools.models import School

    schools = [
        School.objects.create(urn=f"9{n:05d}", name=f"Bench School {n}", office_phone="")
        for n in range(spec["schools"])
    ]
    threads = int(spec["threads"])
    parents = spec["account_parents"]
    real = make_password(PASSWORD)
    # The account page's parents: two children each, at two schools, linked through letters.
    users = _users("account", parents, real)
    _students(schools, "A", 2 * parents)
    _link(users)
    _write(workdir / "account", [_session(user_id, real) for user_id in users], threads)
    # Sign-in: the same parents, by email.
    _write(workdir / "signin", [f"account{i}%40example.org" for i in range(parents)], threads)
    # Sign-in on the cheap hasher's server: parents whose hash is MD5's.
    from django.contrib.auth.hashers import MD5PasswordHasher

    cheap = MD5PasswordHasher().encode(PASSWORD, MD5PasswordHasher().salt())
    _users("cheap", parents, cheap)
    _write(workdir / "signin_md5", [f"cheap{i}%40example.org" for i in range(parents)], threads)
    # Linking: a fresh code, student and parent for every request of every run.
    link_files = []
    first = 0
    for number, size in enumerate(spec["links"]):
        link_files.append(_link_run(workdir, f"link{number}", schools, first, size, real, threads))
        first += size
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    out.write_text(
        json.dumps(
            {
                "students": 2 * parents + first,
                "parents": 2 * parents + first,
                "link_files": link_files,
                "next_code": first,
            }
        )
    )


def _codes_main(spec: dict[str, Any], workdir: Path, out: Path) -> None:
    import django

    django.setup()
    from django.contrib.auth.hashers import make_password
    from django.db import connection

    from homelink.schools.models import School

    schools = list(School.objects.filter(urn__startswith="9").order_by("urn"))
    real = make_password(PASSWORD)
    files = []
    first = int(spec["first"])
    for number in range(spec["runs"]):
        files.append(
            _link_run(
                workdir, f"paced{number}", schools, first, spec["per_run"], real, spec["threads"]
            )
        )
        first += spec["per_run"]
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    out.write_text(json.dumps({"link_files": files, "next_code": first}))


def _link_run(
    workdir: Path, name: str, schools: list[Any], first: int, size: int, password: str, threads: int
) -> str:
    from homelink.register.models import Member
    from homelink.registration.services import codes_issue

    user_ids = _users("link", size, password, first=first)
    _students(schools, "L", size, first=first)
    lines = []
    by_school: dict[int, list[Member]] = {}
    members = Member.objects.filter(mis_id__startswith="L", mis_id__gte=f"L{first:09d}").filter(
        mis_id__lt=f"L{first + size:09d}"
    )
    for member in members.order_by("mis_id"):
        by_school.setdefault(member.school_id, []).append(member)
    codes: dict[str, str] = {}
    for school in schools:
        for member, code in codes_issue(
            school=school, members=by_school.get(school.pk, []), actor="bench"
        ):
            codes[member.mis_id] = code.replace("-", "")
    for n, user_id in enumerate(user_ids):
        lines.append(f"{_session(user_id, password)} {codes[f'L{first + n:09d}']}")
    _write(workdir / name, lines, threads)
    return name


BATCH = 2_000


def _users(prefix: str, count: int, password: str, *, first: int = 0) -> list[int]:
    """``count`` parent accounts, their email confirmed; their ids, in order."""
    from django.contrib.auth.models import User
    from django.utils import timezone

    from homelink.accounts.models import Parent

    names = [f"{prefix}{first + i}@example.org" for i in range(count)]
    User.objects.bulk_create(
        (
            User(
                username=name,
                email=name,
                password=password,
                first_name="Parent",
                last_name=f"Bench{first + i}",
            )
            for i, name in enumerate(names)
        ),
        batch_size=BATCH,
    )
    ids = dict(User.objects.filter(username__in=names).values_list("username", "pk"))
    now = timezone.now()
    Parent.objects.bulk_create(
        (Parent(user_id=ids[name], email_verified_at=now) for name in names), batch_size=BATCH
    )
    return [ids[name] for name in names]


def _students(schools: list[Any], prefix: str, count: int, *, first: int = 0) -> None:
    from homelink.register.models import Member

    Member.objects.bulk_create(
        (
            Member(
                school=schools[(first + i) % len(schools)],
                kind=Member.Kind.STUDENT,
                mis_id=f"{prefix}{first + i:09d}",
                forename=f"Pupil{first + i}",
                surname="Bench",
                year=str(7 + i % 5),
                reg_group=f"{7 + i % 5}{'ABCD'[i % 4]}",
            )
            for i in range(count)
        ),
        batch_size=BATCH,
    )


def _link(user_ids: list[int]) -> None:
    """Each account parent an adult at two schools, linked (through letters) to a child at each."""
    from homelink.register.models import Adult, Link, Member

    pupils = list(
        Member.objects.filter(mis_id__startswith="A")
        .order_by("mis_id")
        .values_list("pk", "school_id")
    )
    adults = []
    for n, user_id in enumerate(user_ids):
        for _, school_id in pupils[2 * n : 2 * n + 2]:
            adults.append(
                Adult(
                    school_id=school_id,
                    forename="Parent",
                    surname=f"Bench{n}",
                    name_key=f"parent bench{n}",
                    email=f"account{n}@example.org",
                    source="web",
                    registered=True,
                    account_id=user_id,
                )
            )
    Adult.objects.bulk_create(adults, batch_size=BATCH)
    made = list(
        Adult.objects.filter(email__startswith="account")
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    Link.objects.bulk_create(
        (
            Link(
                school_id=pupils[i][1],
                student_id=pupils[i][0],
                adult_id=adult_id,
                source="web",
                prime=True,
                prime_set_by="web",
                relationship="mother",
            )
            for i, adult_id in enumerate(made)
        ),
        batch_size=BATCH,
    )


#: Sessions made for the data files, saved (in bulk) before a file naming them is written.
_PENDING_SESSIONS: list[tuple[str, dict[str, str]]] = []


def _session(user_id: int, password_hash: str) -> str:
    """A signed-in session for the user, as ``login`` makes it: its key."""
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.base import VALID_KEY_CHARS
    from django.utils.crypto import get_random_string, salted_hmac

    # A new key, as SessionStore makes one (the rows are saved in bulk by _write).
    key = get_random_string(32, VALID_KEY_CHARS)
    # AbstractBaseUser.get_session_auth_hash(), for a user with this password hash.
    auth_hash = salted_hmac(
        "django.contrib.auth.models.AbstractBaseUser.get_session_auth_hash",
        password_hash,
        algorithm="sha256",
    ).hexdigest()
    data = {
        SESSION_KEY: str(user_id),
        BACKEND_SESSION_KEY: "django.contrib.auth.backends.ModelBackend",
        HASH_SESSION_KEY: auth_hash,
    }
    _PENDING_SESSIONS.append((key, data))
    return key


def _write(path: Path, lines: list[str], threads: int) -> None:
    """One file per wrk thread (``path.0``, ``path.1``…), the lines dealt in turn; the sessions
    named in them are saved first."""
    from django.contrib.sessions.backends.db import SessionStore
    from django.contrib.sessions.models import Session
    from django.utils import timezone

    store = SessionStore()
    expires = timezone.now() + dt.timedelta(seconds=store.get_session_cookie_age())
    Session.objects.bulk_create(
        (
            Session(session_key=key, session_data=store.encode(data), expire_date=expires)
            for key, data in _PENDING_SESSIONS
        ),
        batch_size=BATCH,
    )
    _PENDING_SESSIONS.clear()
    for thread in range(threads):
        Path(f"{path}.{thread}").write_text("\n".join(lines[thread::threads]) + "\n")


def _main(argv: list[str]) -> None:
    command = argv[0] if argv else ""
    if command == "setup" and len(argv) == 4:
        _setup_main(json.loads(argv[1]), Path(argv[2]), Path(argv[3]))
    elif command == "codes" and len(argv) == 4:
        _codes_main(json.loads(argv[1]), Path(argv[2]), Path(argv[3]))
    else:
        raise SystemExit("python -m homelink.bench.load setup SPEC DIR OUT | codes SPEC DIR OUT")


if __name__ == "__main__":
    _main(sys.argv[1:])
