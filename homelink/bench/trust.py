"""The trust snow-day benchmark (issue 15, part 5): one SMS to every family of a trust's 50
schools (2,000 each, 100,000 in all) beside one school's snow day of the same total.

How the figures are made:

- **The world**: a throw-away PostgreSQL database (``BENCH_PG_URL``, ``BENCH_DB_NAME``, as in
  :mod:`homelink.bench.messages`) holding ``schools`` generated schools of ``per_school``
  parents each (:func:`homelink.bench.world.parents_school`), all in one trust made by
  ``trust_add``, and one school of ``schools x per_school`` parents outside it. Each trust school
  has its own slice of the fictional ``+447700 9xxxxx`` mobiles (school *i* the ``per_school``
  numbers from ``i x per_school``), so the trust's 100,000 numbers are all distinct and the
  trust-wide send's one-copy-per-number rule merges nothing: both sends are 100,000 SMS.
- **The send, as users make it**: a whole ``homelink send`` process, ``--trust NAME --schools
  all`` or ``--school URN``, both ``--audience parents --channel sms --urgent --yes --json``
  (urgent, as a snow day is). Timed from starting the process: *queued* when it exits (it has
  committed every copy and printed its figures), *recorded* when no copy of its messages is
  left queued or sending. Throughput = copies sent ÷ the time to all recorded (the process's
  start-up, about a second, is in both).
- **The workers**: four ``homelink worker`` processes (database task backend, every queue,
  ``--interval 0.1``), started and idle before each send, the same four for both sends, and the
  fake SMS provider (:class:`homelink.messaging.fakes.FakeSmsGateway`) on 127.0.0.1 in its own
  process, through the generic HTTP gateway with the default delivery settings.
- **Rounds**: the trust and the school alternate (trust first in odd rounds, the school first in
  even ones); each round a fresh message to the same people. Printed: both medians with their
  spread, and the ratio of the median throughputs (with the per-round ratios' spread) against
  the issue's target, the same throughput as one school: judged as ≥ 0.9.

PostgreSQL only (the one-school snow day of :mod:`homelink.bench.messages` is too): without a
server at ``BENCH_PG_URL`` it prints one line saying so.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from homelink.bench.messages import (
    SNOW_WORKERS,
    TEXT,
    _check_alive,
    _database,
    _environ,
    _fake,
    _wait_idle,
    _worker_environ,
    _workers,
)
from homelink.bench.stats import judged, median, spread

#: The issue's "same throughput as one school of the same total size", judged honestly.
RATIO_TARGET = 0.9
TRUST_NAME = "Bench Trust"
#: The one school's URN; the trust's schools are 910000 onwards.
ONE_URN = "900020"
FIRST_TRUST_URN = 910_000
#: How often the benchmark looks whether every copy has been recorded.
POLL = 0.05


@dataclass(frozen=True)
class Sizes:
    schools: int
    per_school: int
    rounds: int

    @property
    def total(self) -> int:
        return self.schools * self.per_school


FULL = Sizes(schools=50, per_school=2_000, rounds=3)
QUICK = Sizes(schools=10, per_school=2_000, rounds=2)


# --- the parent ---------------------------------------------------------------------------------


def run(*, quick: bool = False, sizes: Sizes | None = None) -> dict[str, Any]:
    sizes = sizes or (QUICK if quick else FULL)
    print("Trust snow day benchmark", flush=True)
    with tempfile.TemporaryDirectory(prefix="homelink-bench-trust-") as tmp:
        workdir = Path(tmp)
        with _database(workdir) as database:
            if not database.url.startswith("postgres"):
                print(f"  skipped: PostgreSQL only ({database.label})", flush=True)
                return {"skipped": database.label}
            print(f"  on {database.label}", flush=True)
            env = _environ(
                DATABASE_URL=database.url,
                HOMELINK_VAR_DIR=tmp,
                TASKS_BACKEND="django_tasks_db.DatabaseBackend",
            )
            subprocess.run(
                [sys.executable, "-m", "homelink.cli", "migrate", "-v", "0"], env=env, check=True
            )
            out = workdir / "trust.json"
            errors = workdir / "trust.stderr"
            with errors.open("wb") as stderr:
                proc = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "homelink.bench.trust",
                        json.dumps(asdict(sizes)),
                        str(out),
                    ],
                    env=env,
                    stderr=stderr,
                    check=False,
                )
            if proc.returncode:
                tail = errors.read_text(errors="replace")[-4000:]
                raise SystemExit(f"trust benchmark failed ({proc.returncode}):\n{tail}")
            result: dict[str, Any] = json.loads(out.read_text())
    return result


# --- the child: the world, the rounds -----------------------------------------------------------


def _trust_world(sizes: Sizes) -> None:
    """The trust's schools, each with its own slice of the fictional mobiles, in one trust; and
    the one school of the same total, outside it."""
    from django.db import connection

    from homelink.bench.world import parents_school
    from homelink.register.models import Adult
    from homelink.trusts.services import trust_add

    schools = []
    for i in range(sizes.schools):
        school = parents_school(str(FIRST_TRUST_URN + i), sizes.per_school)
        # parents_school numbers every school's parents from +447700900000: move this school's
        # onto its own slice (and addresses to match), so no two schools share a number.
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE register_adult SET "
                "mobile = '+4477009' || lpad((substr(mobile, 9)::int + %s)::text, 5, '0'), "
                "email = 'parent' || (substr(mobile, 9)::int + %s)::text || '@example.org' "
                "WHERE school_id = %s",
                [i * sizes.per_school, i * sizes.per_school, school.pk],
            )
        schools.append(school)
    trust_add(name=TRUST_NAME, schools=schools, actor="bench")
    parents_school(ONE_URN, sizes.total)
    distinct = (
        Adult.objects.filter(school__trust_place__isnull=False).values("mobile").distinct().count()
    )
    if distinct != sizes.total:
        raise SystemExit(f"the trust's parents have {distinct:,} numbers, not {sizes.total:,}")


@dataclass
class Send:
    kind: str
    copies: int
    sent: int
    failed: int
    unfinished: int
    #: From starting ``homelink send`` to its exit (every copy committed).
    queued_s: float
    #: From starting it to every copy recorded.
    recorded_s: float

    @property
    def rate(self) -> float:
        return self.sent / self.recorded_s

    @property
    def dispatch_rate(self) -> float:
        """From queued to all recorded, as the one-school snow day of ``--only messages``."""
        return self.sent / max(self.recorded_s - self.queued_s, 1e-6)


def _send(kind: str, workers: list[subprocess.Popen[bytes]], log: Path, timeout: float) -> Send:
    """One snow day made by a ``homelink send`` process: to the whole trust or the one school."""
    from django.db.models import Count

    from homelink.messaging.models import Delivery, Message, TrustMessage
    from homelink.messaging.services import message_cancel
    from homelink.trusts.sending import trust_message_cancel

    where = (
        ["--trust", TRUST_NAME, "--schools", "all"] if kind == "trust" else ["--school", ONE_URN]
    )
    args = [sys.executable, "-m", "homelink.cli", "send", *where]
    args += ["--audience", "parents", "--channel", "sms", "--text", TEXT]
    args += ["--urgent", "--yes", "--json"]
    _wait_idle()
    started = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    queued_s = time.perf_counter() - started
    if proc.returncode:
        raise SystemExit(
            f"homelink send ({kind}) failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
        )
    figures = json.loads(proc.stdout)
    if kind == "trust":
        ids = [int(s["message"]) for s in figures["schools"] if s["message"] is not None]
    else:
        ids = [int(figures["message"])]
    pending = Delivery.objects.filter(
        message_id__in=ids, status__in=[Delivery.Status.QUEUED, Delivery.Status.SENDING]
    )
    deadline = started + timeout
    while pending.exists():
        if time.perf_counter() > deadline:
            with contextlib.suppress(Exception):
                if kind == "trust":
                    record = TrustMessage.objects.get(pk=figures["trust_message"])
                    trust_message_cancel(record=record, actor="bench")
                else:
                    message_cancel(message=Message.objects.get(pk=ids[0]), actor="bench")
            break
        _check_alive(workers, log)
        time.sleep(POLL)
    recorded_s = time.perf_counter() - started
    counts = dict(
        Delivery.objects.filter(message_id__in=ids)
        .values_list("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    return Send(
        kind=kind,
        copies=sum(counts.values()),
        sent=counts.get(Delivery.Status.SENT, 0) + counts.get(Delivery.Status.DELIVERED, 0),
        failed=counts.get(Delivery.Status.FAILED, 0),
        unfinished=sum(
            counts.get(s, 0)
            for s in (Delivery.Status.QUEUED, Delivery.Status.SENDING, Delivery.Status.CANCELLED)
        ),
        queued_s=queued_s,
        recorded_s=recorded_s,
    )


def _child(sizes: Sizes, out: Path) -> None:
    import django

    django.setup()
    from django.conf import settings

    log = Path(settings.VAR_DIR) / "workers.log"
    started = time.perf_counter()
    _trust_world(sizes)
    print(
        f"  world: a trust of {sizes.schools} schools x {sizes.per_school:,} parents (distinct "
        f"numbers), and one school of {sizes.total:,}: made in {time.perf_counter() - started:.0f} s"
        f"\n  each send: a `homelink send ... --audience parents --channel sms --urgent --yes "
        f"--json` process\n  (--trust NAME --schools all, or --school URN), "
        f"{SNOW_WORKERS} `homelink worker` processes, the fake SMS provider on 127.0.0.1;\n"
        "  timed from starting the process to its exit (queued) and to every copy recorded",
        flush=True,
    )
    timeout = max(300.0, sizes.total / 50)
    rounds: dict[str, list[dict[str, float]]] = {"trust": [], "one": []}
    with _fake() as fake, _workers(_worker_environ(**fake.environ), SNOW_WORKERS, log) as workers:
        for number in range(1, sizes.rounds + 1):
            order = ("trust", "one") if number % 2 else ("one", "trust")
            line = []
            for kind in order:
                send = _send(kind, workers, log, timeout)
                if send.copies != sizes.total or send.sent != sizes.total:
                    print(
                        f"    round {number} {kind}: {send.sent:,} of {send.copies:,} copies sent "
                        f"({send.failed:,} failed, {send.unfinished:,} unfinished)"
                    )
                rounds[kind].append(
                    {**asdict(send), "rate": send.rate, "dispatch_rate": send.dispatch_rate}
                )
                line.append(
                    f"{kind} queued {send.queued_s:.1f} s, recorded {send.recorded_s:.1f} s, "
                    f"{send.rate:,.0f}/s"
                )
                _forget_sends()
            print(f"    round {number}: {'; '.join(line)}", flush=True)
    result = {"sizes": asdict(sizes), "rounds": rounds, "fake": fake.counts}
    _report(result, sizes)
    out.write_text(json.dumps(result))


def _forget_sends() -> None:
    """Between sends, untimed: the last send's messages and copies go, so that every send starts
    from the same database (otherwise each round adds 200,000 copies and whichever send comes
    later pays for the growth)."""
    from django.db import connection

    from homelink.messaging.models import Delivery, Message, TrustMessage

    tables = ", ".join(
        connection.ops.quote_name(m._meta.db_table) for m in (Delivery, Message, TrustMessage)
    )
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {tables} CASCADE")
        cursor.execute("ANALYZE")


def _report(result: dict[str, Any], sizes: Sizes) -> None:
    rounds = result["rounds"]
    names = {
        "trust": f"trust, {sizes.schools} schools x {sizes.per_school:,}",
        "one": f"one school of {sizes.total:,}",
    }
    for kind in ("trust", "one"):
        measured = rounds[kind]
        queued = [r["queued_s"] for r in measured]
        recorded = [r["recorded_s"] for r in measured]
        rates = [r["rate"] for r in measured]
        dispatch = [r["dispatch_rate"] for r in measured]
        print(
            f"  {names[kind]:<28} queued {_line(queued, 's')}  all recorded "
            f"{_line(recorded, 's')}  {_line(rates, '/s', 0)}  (queued → recorded "
            f"{median(dispatch):,.0f}/s)"
        )
    trust_rates = [r["rate"] for r in rounds["trust"]]
    one_rates = [r["rate"] for r in rounds["one"]]
    ratio = median(trust_rates) / median(one_rates)
    low, high = spread([t / o for t, o in zip(trust_rates, one_rates, strict=True)])
    dispatch_ratio = median([r["dispatch_rate"] for r in rounds["trust"]]) / median(
        [r["dispatch_rate"] for r in rounds["one"]]
    )
    print(
        f"  trust / one school, throughput (send to all recorded), medians of {sizes.rounds} "
        f"alternating rounds: {judged(ratio, RATIO_TARGET, higher_is_better=True)}  (per round "
        f"{low:.2f}-{high:.2f}; queued → recorded alone {dispatch_ratio:.2f})"
    )
    expected = 2 * sizes.total * sizes.rounds
    sent = sum(int(r["sent"]) for kind in rounds.values() for r in kind)
    fake = result["fake"]
    print(
        f"  sent {sent:,} of {expected:,}; the fake provider took {fake.get('taken', 0):,} "
        f"({fake.get('repeated_keys', 0):,} repeated keys)",
        flush=True,
    )


def _line(values: list[float], unit: str, digits: int = 1) -> str:
    low, high = spread(values)
    return f"{median(values):,.{digits}f}{unit} ({low:,.{digits}f}-{high:,.{digits}f})"


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("python -m homelink.bench.trust SIZES OUT")
    _child(Sizes(**json.loads(sys.argv[1])), Path(sys.argv[2]))
