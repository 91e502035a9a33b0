"""The messaging benchmark (issues 5 and 11): queuing, email and SMS dispatch as users run it,
a paced send, and a snow day.

1. **Queue** a message to 10,000 recipients on SQLite: resolve the audience and commit the
   message with its 10,000 delivery rows, timed around ``message_send`` (target ≤ 1 s).
2. **Dispatch throughput**, email and SMS, in alternating rounds (ours, floor, ours, floor…;
   5 rounds of 3,000 emails and 5,000 SMS; ``--quick`` 3 rounds of 2,000 and 3,000), each
   round a fresh message, the floor sending to the same recipients as ours:

   - *ours*: one ``homelink worker`` process (the database task backend, every queue, started
     and idle before the clock starts; ``--interval 0.1``, smaller than a deployment's, so
     that its polling adds little to the figure) sends what ``message_send`` queued, with the
     project's default delivery settings. Timed from the commit of ``message_send`` (which
     part 1 measures, and which the floor has no counterpart of) until no copy of the message
     is left queued or sending; rate = copies sent ÷ that time. The time queueing took is
     printed beside it, with the rate counting it too.
   - *the floor*: a plain script doing the same sends over one connection: ``smtplib``'s
     ``sendmail`` of bytes built by string formatting (the same headers, and the same body
     rendered with ``render_for`` and ``email_footer``), or a kept-alive ``http.client``
     connection (TCP_NODELAY) POSTing the same JSON bodies and headers as our HTTP gateway.
     It reads the recipients from the database before its clock starts and renders each
     message inside it.

   Email goes to an aiosmtpd sink, SMS through the generic HTTP gateway to the fake provider,
   each in its own process. Printed per channel: the median and spread of both rates, and the
   ratio of the medians (with the spread of the per-round ratios) against the target ≥ 0.7.
3. **Paced send**: 2,000 SMS through one worker configured with ``HOMELINK_SMS_RATE=100`` to
   a fake provider that takes 100 a second and answers 429 above that: the time against the
   ideal 20 s, copies failed (target 0), and 429s the provider gave (the fake runs under
   ``python -m homelink.bench.messages fake``, which prints its counts when it stops).
4. **Snow day** (PostgreSQL only): 100,000 SMS (``--quick``: 20,000) sent by four ``homelink
   worker`` processes; messages per second from queued to all recorded.

Part 1 runs on a throw-away SQLite file. Parts 2 to 4 run on PostgreSQL, as production does,
when the server at ``BENCH_PG_URL`` answers, in a throw-away database created for the run and
dropped after it; otherwise parts 2 and 3 run on a throw-away SQLite file and part 4 is
skipped. The output says which.

Environment:

``BENCH_PG_URL``
    A PostgreSQL server and a database on it to connect to for creating and dropping the
    throw-away one (default ``postgres://postgres@127.0.0.1:5432/postgres``).
``BENCH_DB_NAME``
    The throw-away PostgreSQL database's name (default ``homelink_bench_<pid>``). It must
    not exist: the benchmark creates it, drops it at the end, and never uses one it did not
    create.

Settings that tune delivery (``HOMELINK_DELIVERY_*``, ``HOMELINK_SMS_CONNECTIONS``, the
rates) and mail settings in the caller's environment are not passed on: the figures are the
defaults'.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.header import Header
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit, urlunsplit

from homelink.bench.stats import judged, median, spread

if TYPE_CHECKING:
    from homelink.messaging.models import Delivery
    from homelink.schools.models import School

QUEUE_SIZE = 10_000
QUEUE_TARGET_S = 1.0
RATIO_TARGET = 0.7
DEFAULT_PG_URL = "postgres://postgres@127.0.0.1:5432/postgres"
#: The worker's polling interval when idle (``--interval``): smaller than a deployment's.
WORKER_INTERVAL = 0.1
#: How often the benchmark looks whether every copy has been recorded.
POLL = 0.01
PACED_COPIES = 2_000
PACED_RATE = 100
SNOW_WORKERS = 4


@dataclass(frozen=True)
class Sizes:
    emails: int
    sms: int
    rounds: int
    snow: int


FULL = Sizes(emails=3_000, sms=5_000, rounds=5, snow=100_000)
QUICK = Sizes(emails=2_000, sms=3_000, rounds=3, snow=20_000)

SUBJECT = "Snow: {school} is closed today"
EMAIL_BODY = (
    "Dear {name},\n\n"
    "Because of the snow, the school is closed today. Please keep {children} at home.\n\n"
    "We will write again this afternoon about tomorrow. Work for today is on the learning "
    "platform, and teachers will answer questions there until 3 pm.\n\n"
    "Thank you for your patience."
)
TEXT = "Snow: the school is closed today, {name}. Please keep {children} at home."

#: Settings from the caller's environment that are not passed on: the benchmark measures the
#: defaults, and sends nowhere but to its own sinks.
NOT_PASSED_ON = (
    "HOMELINK_DELIVERY_BATCH",
    "HOMELINK_DELIVERY_CONCURRENCY",
    "HOMELINK_DELIVERY_LEASE_SECONDS",
    "HOMELINK_SMS_CONNECTIONS",
    "HOMELINK_SMS_RATE",
    "HOMELINK_EMAIL_RATE",
    "HOMELINK_SMS_GATEWAY",
    "HOMELINK_HTTP_SMS",
    "DATABASE_URL",
    "TASKS_BACKEND",
)


def _worker_environ(**extra: str) -> dict[str, str]:
    """A worker's environment in the dispatch child (whose own was made by :func:`_environ`)."""
    return {**os.environ, **extra}


def _environ(**extra: str) -> dict[str, str]:
    """A child's environment: the caller's, without what would change the figures."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in NOT_PASSED_ON and not k.startswith(("EMAIL_", "HOMELINK_TWILIO_"))
    }
    env["DJANGO_SETTINGS_MODULE"] = "homelink.settings"
    # A school's messages once its parents have been told: the first-contact privacy notice is
    # once per adult, and would otherwise double the first send and hold its copies behind it.
    env["HOMELINK_FIRST_CONTACT_NOTICE"] = "0"
    env.update(extra)
    return env


# --- the parent ---------------------------------------------------------------------------------


def run(*, quick: bool = False) -> dict[str, Any]:
    sizes = QUICK if quick else FULL
    print("Messaging benchmark", flush=True)
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="homelink-bench-messages-") as tmp:
        workdir = Path(tmp)
        result["queue"] = _queue_part(workdir)
        with _database(workdir) as database:
            print(f"  dispatch on {database.label}", flush=True)
            env = _environ(
                DATABASE_URL=database.url,
                HOMELINK_VAR_DIR=tmp,
                TASKS_BACKEND="django_tasks_db.DatabaseBackend",
            )
            subprocess.run(
                [sys.executable, "-m", "homelink.cli", "migrate", "-v", "0"], env=env, check=True
            )
            out = workdir / "dispatch.json"
            result.update(
                _run_child(
                    ["dispatch", json.dumps(sizes.__dict__), str(out)], env, workdir, out=out
                )
            )
    return result


def _run_child(args: list[str], env: dict[str, str], workdir: Path, *, out: Path) -> Any:
    """Run ``python -m homelink.bench.messages <args>``: what it prints goes straight through,
    its errors to a file shown if it fails; its results come back in ``out``."""
    errors = workdir / f"{args[0]}.stderr"
    with errors.open("wb") as stderr:
        proc = subprocess.run(
            [sys.executable, "-m", "homelink.bench.messages", *args],
            env=env,
            stderr=stderr,
            check=False,
        )
    if proc.returncode:
        tail = errors.read_text(errors="replace")[-4000:]
        raise SystemExit(f"messaging benchmark ({args[0]}) failed ({proc.returncode}):\n{tail}")
    return json.loads(out.read_text())


def _queue_part(workdir: Path) -> dict[str, float]:
    env = _environ(
        DATABASE_URL=f"sqlite:///{workdir / 'queue.sqlite3'}",
        HOMELINK_VAR_DIR=str(workdir),
        # Queuing only: nothing picks the wake-ups up.
        TASKS_BACKEND="django_tasks.backends.dummy.DummyBackend",
    )
    out = workdir / "queue.json"
    queued: dict[str, float] = _run_child(["queue", str(out)], env, workdir, out=out)
    sms = judged(queued["queue_sms_s"], QUEUE_TARGET_S, higher_is_better=False, unit=" s")
    email = judged(queued["queue_email_s"], QUEUE_TARGET_S, higher_is_better=False, unit=" s")
    print(
        f"  queue {QUEUE_SIZE:,} SMS      {sms}  (SQLite; resolving the audience alone "
        f"{queued['resolve_s']:.2f} s)"
    )
    print(f"  queue {QUEUE_SIZE:,} emails   {email}", flush=True)
    return queued


@dataclass(frozen=True)
class Database:
    url: str
    #: Which database it is, for the output.
    label: str


@contextlib.contextmanager
def _database(workdir: Path) -> Iterator[Database]:
    """A throw-away PostgreSQL database at ``BENCH_PG_URL`` when its server answers, else a
    throw-away SQLite file."""
    admin_url = os.environ.get("BENCH_PG_URL") or DEFAULT_PG_URL
    name = os.environ.get("BENCH_DB_NAME") or f"homelink_bench_{os.getpid()}"
    admin, why = _pg_admin(admin_url)
    if admin is None:
        yield Database(
            url=f"sqlite:///{workdir / 'dispatch.sqlite3'}",
            label=f"SQLite, a throw-away file (no PostgreSQL at BENCH_PG_URL: {why})",
        )
        return
    from psycopg import errors, sql

    parts = urlsplit(admin_url)
    try:
        try:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except errors.DuplicateDatabase:
            raise SystemExit(
                f"BENCH_DB_NAME: a database {name!r} exists already on {parts.hostname}; the "
                "benchmark only uses a database it creates (drop it, or choose another name)"
            ) from None
        try:
            yield Database(
                url=urlunsplit(parts._replace(path="/" + quote(name))),
                label=(
                    f"PostgreSQL at {parts.hostname}:{parts.port or 5432} (BENCH_PG_URL), "
                    f"throw-away database {name} (BENCH_DB_NAME)"
                ),
            )
        finally:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
    finally:
        admin.close()


def _pg_admin(url: str) -> tuple[Any, str]:
    try:
        import psycopg
    except ImportError:
        return None, "psycopg is not installed"
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=3), ""
    except psycopg.OperationalError as error:
        return None, str(error).strip().splitlines()[0][:120]


# --- the sinks and the fake provider, each in its own process -----------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listening on 127.0.0.1:{port}")


@contextlib.contextmanager
def _smtp_sink() -> Iterator[int]:
    """An aiosmtpd sink (it takes every message and drops it) in its own process: its port."""
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aiosmtpd",
            "-n",
            "-c",
            "aiosmtpd.handlers.Sink",
            "-l",
            f"127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(port)
        yield port
    finally:
        proc.terminate()
        proc.wait()


@dataclass
class Fake:
    """The fake SMS provider running in its own process (see :func:`_fake_main`)."""

    #: The environment that points a worker at it.
    environ: dict[str, str]
    #: Its ``HOMELINK_HTTP_SMS``, for the floor.
    http: dict[str, Any]
    #: What it counted, once it has stopped: requests, taken, repeated_keys, refused (429s).
    counts: dict[str, int] = field(default_factory=dict)


@contextlib.contextmanager
def _fake(*, rate: float | None = None) -> Iterator[Fake]:
    """The fake provider (``FakeSmsGateway``, limited to ``rate`` a second if given) in its own
    process; its counts are filled in when the block ends."""
    args = [sys.executable, "-m", "homelink.bench.messages", "fake"]
    if rate is not None:
        args += ["--rate", str(rate)]
    proc = subprocess.Popen(
        args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert proc.stdin is not None and proc.stdout is not None
    started = json.loads(proc.stdout.readline() or "null")
    if not started:
        proc.wait()
        raise SystemExit(f"the fake SMS provider did not start (exit {proc.returncode})")
    fake = Fake(environ=started["environ"], http=started["http"])
    try:
        yield fake
    finally:
        proc.stdin.close()  # the fake stops, prints its counts and exits
        line = proc.stdout.readline()
        fake.counts.update(json.loads(line) if line.strip() else {})
        proc.wait()


def _fake_main(rate: float | None) -> None:
    """Run a fake provider until stdin closes (or SIGTERM); print where it listens first and
    what it counted last, one JSON line each."""
    from homelink.messaging.fakes import FakeSmsGateway

    def terminated(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, terminated)
    fake = FakeSmsGateway(rate=rate).start()
    print(json.dumps({"environ": fake.environ("http"), "http": fake.http_settings()}), flush=True)
    try:
        while os.read(sys.stdin.fileno(), 65536):
            pass
    finally:
        fake.stop()
        counts = {
            "requests": fake.requests,
            "taken": fake.count,
            "repeated_keys": fake.repeated_keys,
            "refused": fake.refused,
        }
        print(json.dumps(counts), flush=True)


# --- workers ------------------------------------------------------------------------------------


@contextlib.contextmanager
def _workers(env: dict[str, str], count: int, log: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``count`` ``homelink worker`` processes, each seen to run a task (so started and polling)
    before the block begins; stopped at its end."""
    from homelink.bench.world import start_worker

    with log.open("ab") as stderr:
        procs = [start_worker(env, interval=WORKER_INTERVAL, stderr=stderr) for _ in range(count)]
    try:
        _wait_ready(procs, log)
        yield procs
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _check_alive(procs: list[subprocess.Popen[bytes]], log: Path) -> None:
    for proc in procs:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:]
            raise SystemExit(f"a homelink worker exited ({proc.returncode}):\n{tail}")


def _wait_ready(procs: list[subprocess.Popen[bytes]], log: Path, timeout: float = 60) -> None:
    """Until every worker has run a task: an outbox wake-up with nothing to send."""
    from homelink.messaging.models import Channel
    from homelink.messaging.tasks import deliver

    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    while len(seen) < len(procs):
        if time.monotonic() > deadline:
            raise SystemExit(f"only {len(seen)} of {len(procs)} workers started in {timeout:g} s")
        results = [deliver.enqueue(Channel.EMAIL) for _ in range(len(procs) - len(seen))]
        for result in results:
            while not result.is_finished:
                _check_alive(procs, log)
                if time.monotonic() > deadline:
                    break
                time.sleep(0.05)
                result.refresh()
            seen.update(result.worker_ids)
    _wait_idle()


def _wait_idle(timeout: float = 60) -> None:
    """Until the workers have no task due or running (the wake-ups a send leaves behind)."""
    from django_tasks.base import TaskResultStatus
    from django_tasks_db.models import DBTaskResult

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        due = DBTaskResult.objects.ready().exists()
        if not due and not DBTaskResult.objects.filter(status=TaskResultStatus.RUNNING).exists():
            return
        time.sleep(0.02)


# --- ours ---------------------------------------------------------------------------------------


@dataclass
class Ours:
    message_id: int
    copies: int
    sent: int
    failed: int
    #: Copies still queued or sending when the benchmark stopped waiting (then cancelled).
    unfinished: int
    seconds: float
    #: Before those: ``message_send`` (resolving, charging, writing the outbox, waking the
    #: workers), which part 1 measures and the floor has no counterpart of.
    queued_s: float

    @property
    def rate(self) -> float:
        return self.sent / self.seconds


def _ours(
    school: School,
    mode: str,
    workers: list[subprocess.Popen[bytes]],
    log: Path,
    *,
    timeout: float,
    urgent: bool = False,
) -> Ours:
    """Queue a message with ``message_send`` and wait until every copy is recorded."""
    from django.db.models import Count

    from homelink.messaging.audience import Audience
    from homelink.messaging.models import Delivery
    from homelink.messaging.services import Draft, message_cancel, message_send

    draft = Draft(
        mode=mode,
        audience=Audience(),
        subject=SUBJECT if mode == "email" else "",
        email_body=EMAIL_BODY if mode == "email" else "",
        sms_text=TEXT if mode == "sms" else "",
        urgent=urgent,
    )
    _wait_idle()
    started = time.perf_counter()
    message = message_send(school=school, draft=draft, actor="bench", confirmed_large=True)
    committed = time.perf_counter()
    queued_s = committed - started
    pending = Delivery.objects.filter(
        message=message, status__in=[Delivery.Status.QUEUED, Delivery.Status.SENDING]
    )
    deadline = started + timeout
    while pending.exists():
        if time.perf_counter() > deadline:
            with contextlib.suppress(Exception):
                message_cancel(message=message, actor="bench")
            break
        _check_alive(workers, log)
        time.sleep(POLL)
    seconds = time.perf_counter() - committed
    counts = dict(
        Delivery.objects.filter(message=message)
        .values_list("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    return Ours(
        message_id=message.pk,
        copies=sum(counts.values()),
        sent=counts.get(Delivery.Status.SENT, 0) + counts.get(Delivery.Status.DELIVERED, 0),
        failed=counts.get(Delivery.Status.FAILED, 0),
        unfinished=sum(counts.get(s, 0) for s in (Delivery.Status.QUEUED, Delivery.Status.SENDING))
        + counts.get(Delivery.Status.CANCELLED, 0),
        seconds=seconds,
        queued_s=queued_s,
    )


# --- the floors ---------------------------------------------------------------------------------


def _recipients(message_id: int) -> list[Delivery]:
    """A message's copies, as a plain script would read its recipients: once, before it sends."""
    from homelink.messaging.models import Delivery

    return list(
        Delivery.objects.filter(message_id=message_id)
        .select_related("message__school")
        .order_by("id")
    )


def floor_email(
    *, from_header: str, to: str, subject: str, body: str, message_id: str, date: str
) -> bytes:
    """A plain-text email as bytes, by string formatting: the headers ours carries (Django's
    ``EmailMessage``), a body with CRLF line ends. Lines stay under SMTP's 998 octets here, so
    no transfer encoding is needed."""
    if not subject.isascii():
        subject = Header(subject, "utf-8").encode()
    encoding = "7bit" if body.isascii() else "8bit"
    return (
        'Content-Type: text/plain; charset="utf-8"\r\n'
        "MIME-Version: 1.0\r\n"
        f"Content-Transfer-Encoding: {encoding}\r\n"
        f"Subject: {subject}\r\n"
        f"From: {from_header}\r\n"
        f"To: {to}\r\n"
        f"Date: {date}\r\n"
        f"Message-ID: {message_id}\r\n"
        "\r\n" + "\r\n".join(body.split("\n"))
    ).encode()


def _email_floor(recipients: list[Delivery], port: int) -> float:
    """Send ``recipients`` their email over one ``smtplib`` connection; messages a second."""
    from email.utils import formataddr, formatdate, make_msgid, parseaddr

    from django.conf import settings

    from homelink.messaging.dispatch import email_footer, render_for

    message = recipients[0].message
    school = message.school
    envelope_from = parseaddr(settings.DEFAULT_FROM_EMAIL)[1]
    from_header = formataddr((school.name, envelope_from))
    domain = settings.HOMELINK_EMAIL_DOMAIN
    started = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        for delivery in recipients:
            data = floor_email(
                from_header=from_header,
                to=delivery.to,
                subject=render_for(message.subject, delivery),
                body=render_for(message.email_body, delivery) + email_footer(school),
                message_id=make_msgid(idstring=str(delivery.pk), domain=domain),
                date=formatdate(),
            )
            smtp.sendmail(envelope_from, [delivery.to], data)
    return len(recipients) / (time.perf_counter() - started)


def floor_sms_request(
    config: dict[str, Any],
    callback: str,
    *,
    to: str,
    text: str,
    delivery_id: int,
    key: str,
) -> tuple[bytes, dict[str, str]]:
    """The body and headers our HTTP gateway sends for one SMS to the fake provider (its JSON
    protocol: ``to``, ``text``, ``callback`` with the delivery's id and signature)."""
    from homelink.messaging.gateways.base import delivery_signature

    address = f"{callback}?delivery={delivery_id}"
    secret = str(config["RECEIPT_SECRET"])
    if secret:
        address += f"&sig={delivery_signature(secret, delivery_id)}"
    body = json.dumps({"to": to, "text": text, "callback": address}).encode()
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json",
        config["AUTH_HEADER"]: config["AUTH_VALUE"],
        config["IDEMPOTENCY_HEADER"]: key,
    }
    return body, headers


def _sms_floor(recipients: list[Delivery], config: dict[str, Any]) -> float:
    """POST ``recipients`` their SMS over one kept-alive connection; messages a second."""
    from homelink.messaging.dispatch import render_for
    from homelink.messaging.gateways.base import hook_base

    message = recipients[0].message
    url = urlsplit(config["URL"])
    callback = hook_base("sms_status")
    started = time.perf_counter()
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=15)
    conn.connect()
    assert conn.sock is not None
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    refused = 0
    for delivery in recipients:
        body, headers = floor_sms_request(
            config,
            callback,
            to=delivery.to,
            text=render_for(message.sms_text, delivery),
            delivery_id=delivery.pk,
            # Not ours (homelink-…): the fake must take these as new messages, not repeats.
            key=f"floor-{message.key}-{delivery.pk}",
        )
        conn.request("POST", url.path, body, headers)
        response = conn.getresponse()
        response.read()
        refused += response.status != 200
    conn.close()
    elapsed = time.perf_counter() - started
    if refused:
        raise SystemExit(f"the SMS floor had {refused} sends refused by the fake provider")
    return len(recipients) / elapsed


# --- the dispatch child: parts 2 to 4 ----------------------------------------------------------


def _dispatch_main(sizes: Sizes, out: Path) -> None:
    import django

    django.setup()
    from django.conf import settings
    from django.db import connection

    from homelink.bench.world import parents_school

    log = Path(settings.VAR_DIR) / "workers.log"
    postgresql = connection.vendor == "postgresql"
    email_school = parents_school("900010", sizes.emails)
    sms_school = parents_school("900011", sizes.sms)
    print(
        "  ours:  one `homelink worker` process (database task backend), timed from the commit\n"
        "         of message_send until every copy is recorded; default delivery settings (batch\n"
        f"         {settings.HOMELINK_DELIVERY_BATCH}, {settings.HOMELINK_SMS_CONNECTIONS} SMS "
        f"connections, {settings.HOMELINK_DELIVERY_CONCURRENCY} wake-ups a send) except the "
        f"worker's\n         --interval {WORKER_INTERVAL:g} s (a deployment's polls every 1 s)\n"
        "  floor: smtplib.sendmail / one kept-alive http.client connection; recipients read\n"
        "         before its clock, each message rendered inside it",
        flush=True,
    )
    result: dict[str, Any] = {"database": connection.vendor}
    with _smtp_sink() as smtp_port, _fake() as fake:
        env = _worker_environ(
            EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
            EMAIL_HOST="127.0.0.1",
            EMAIL_PORT=str(smtp_port),
            **fake.environ,
        )
        with _workers(env, 1, log) as workers:
            result["rounds"] = _rounds(
                sizes, email_school, sms_school, workers, log, smtp_port, fake
            )
    result["fake"] = fake.counts
    _print_rounds(result["rounds"], sizes, fake.counts)
    result["paced"] = _paced(log)
    if postgresql:
        result["snow"] = _snow_day(sizes.snow, log)
    else:
        print("  snow day: skipped (PostgreSQL only)")
    out.write_text(json.dumps(result))


def _rounds(
    sizes: Sizes,
    email_school: School,
    sms_school: School,
    workers: list[subprocess.Popen[bytes]],
    log: Path,
    smtp_port: int,
    fake: Fake,
) -> dict[str, list[dict[str, float]]]:
    from homelink.messaging.gateways.http import http_sms_config

    config = http_sms_config(fake.http)
    rounds: dict[str, list[dict[str, float]]] = {"email": [], "sms": []}
    for number in range(1, sizes.rounds + 1):
        line = []
        for channel, school, copies in (
            ("email", email_school, sizes.emails),
            ("sms", sms_school, sizes.sms),
        ):
            ours = _ours(school, channel, workers, log, timeout=max(120.0, copies / 20))
            if ours.copies != copies or ours.sent != copies:
                print(
                    f"    round {number} {channel}: {ours.sent:,} of {ours.copies:,} copies sent "
                    f"({ours.failed:,} failed, {ours.unfinished:,} unfinished)"
                )
            recipients = _recipients(ours.message_id)
            _wait_idle()
            if channel == "email":
                floor = _email_floor(recipients, smtp_port)
            else:
                floor = _sms_floor(recipients, config)
            rounds[channel].append(
                {
                    "ours": ours.rate,
                    "floor": floor,
                    "queued_s": ours.queued_s,
                    "seconds": ours.seconds,
                    "sent": ours.sent,
                    "failed": ours.failed,
                    "unfinished": ours.unfinished,
                }
            )
            line.append(f"{channel} ours {ours.rate:,.0f}/s floor {floor:,.0f}/s")
        print(f"    round {number}: {'; '.join(line)}", flush=True)
    return rounds


def _print_rounds(
    rounds: dict[str, list[dict[str, float]]], sizes: Sizes, fake: dict[str, int]
) -> None:
    names = {"email": ("email", sizes.emails), "sms": ("SMS", sizes.sms)}
    for channel, measured in rounds.items():
        name, copies = names[channel]
        ours = [r["ours"] for r in measured]
        floor = [r["floor"] for r in measured]
        ratios = [r["ours"] / r["floor"] for r in measured]
        ratio = median(ours) / median(floor)
        low, high = spread(ratios)
        queued = median([r["queued_s"] for r in measured])
        print(f"  {name}: {copies:,} copies a send, {len(measured)} rounds")
        with_queueing = median([copies / (copies / r["ours"] + r["queued_s"]) for r in measured])
        print(
            f"    ours   {_rate_line(ours)}  (queueing took {queued:.2f} s more, median; "
            f"{with_queueing:,.0f}/s counting it)"
        )
        print(f"    floor  {_rate_line(floor)}")
        print(
            f"    ours / floor, medians {judged(ratio, RATIO_TARGET, higher_is_better=True)}"
            f"  (per round {low:.2f}-{high:.2f})"
        )
        not_sent = copies * len(measured) - sum(int(r["sent"]) for r in measured)
        if not_sent:
            print(f"    copies ours did not send: {not_sent:,}")
        if channel == "sms":
            # Every SMS of both arrived as a new message: the floor's were no repeats.
            expected = sum(int(r["sent"]) for r in measured) + copies * len(measured)
            print(
                f"    the fake provider took {fake.get('taken', 0):,} SMS of {expected:,} sent "
                f"by ours and the floor ({fake.get('repeated_keys', 0):,} repeated keys)"
            )


def _rate_line(rates: list[float]) -> str:
    low, high = spread(rates)
    return f"median {median(rates):7,.0f}/s  ({low:,.0f}-{high:,.0f})"


def _paced(log: Path) -> dict[str, Any]:
    """2,000 SMS through one worker with ``HOMELINK_SMS_RATE`` to a provider that takes that
    many a second (429 above it)."""
    from django.conf import settings

    from homelink.bench.world import parents_school

    school = parents_school("900012", PACED_COPIES)
    ideal = PACED_COPIES / PACED_RATE
    timeout = ideal * 2 + 20
    with _fake(rate=PACED_RATE) as fake:
        env = _worker_environ(HOMELINK_SMS_RATE=str(PACED_RATE), **fake.environ)
        with _workers(env, 1, log) as workers:
            ours = _ours(school, "sms", workers, log, timeout=timeout)
    not_sent = ""
    if ours.unfinished:
        not_sent = f", {ours.unfinished:,} not sent when it stopped waiting after {timeout:.0f} s"
    unset = "" if hasattr(settings, "HOMELINK_SMS_RATE") else " (no such setting yet: unpaced)"
    failed = judged(ours.failed, 0, higher_is_better=False, digits=0)
    print(
        f"  paced send: {PACED_COPIES:,} SMS, one worker with HOMELINK_SMS_RATE={PACED_RATE}{unset}, "
        f"provider taking {PACED_RATE}/s: {ours.seconds:.1f} s (ideal {ideal:.0f} s, "
        f"{ours.seconds / ideal:.2f}x); failed {failed}{not_sent}; the provider answered 429 "
        f"{fake.counts.get('refused', '?')} times",
        flush=True,
    )
    return {
        "seconds": ours.seconds,
        "ideal_s": ideal,
        "sent": ours.sent,
        "failed": ours.failed,
        "unfinished": ours.unfinished,
        "fake": fake.counts,
    }


def _snow_day(size: int, log: Path) -> dict[str, float]:
    """Queue ``size`` urgent SMS and have four workers send them; messages a second."""
    from homelink.bench.world import parents_school

    school = parents_school("900013", size)
    with _fake() as fake, _workers(_worker_environ(**fake.environ), SNOW_WORKERS, log) as workers:
        ours = _ours(school, "sms", workers, log, timeout=max(300.0, size / 50), urgent=True)
    print(
        f"  snow day: {ours.sent:,} of {size:,} SMS, {SNOW_WORKERS} workers, PostgreSQL: "
        f"{ours.seconds:.1f} s, {ours.rate:,.0f} messages/s (queued in {ours.queued_s:.2f} s)",
        flush=True,
    )
    return {"snow_s": ours.seconds, "snow_rate": ours.rate, "snow_queue_s": ours.queued_s}


# --- the queue child: part 1 -------------------------------------------------------------------


def _queue_main(out: Path) -> None:
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from homelink.bench.world import parents_school
    from homelink.messaging.audience import Audience, resolve
    from homelink.messaging.services import Draft, message_send

    school = parents_school("900001", QUEUE_SIZE)
    started = time.perf_counter()
    resolve(school, Audience(), "sms")
    resolve_s = time.perf_counter() - started

    def queue(draft: Draft) -> float:
        started = time.perf_counter()
        message = message_send(school=school, draft=draft, actor="bench", confirmed_large=True)
        elapsed = time.perf_counter() - started
        if message.sms_count + message.email_count != QUEUE_SIZE:
            raise SystemExit(f"queued {message.sms_count + message.email_count}, not {QUEUE_SIZE}")
        return elapsed

    result = {
        "resolve_s": resolve_s,
        "queue_sms_s": queue(Draft(mode="sms", audience=Audience(), sms_text=TEXT)),
        "queue_email_s": queue(
            Draft(mode="email", audience=Audience(), subject=SUBJECT, email_body=EMAIL_BODY)
        ),
    }
    out.write_text(json.dumps(result))


def _main(argv: list[str]) -> None:
    command = argv[0] if argv else ""
    if command == "queue" and len(argv) == 2:
        _queue_main(Path(argv[1]))
    elif command == "dispatch" and len(argv) == 3:
        _dispatch_main(Sizes(**json.loads(argv[1])), Path(argv[2]))
    elif command == "fake":
        rate = float(argv[2]) if argv[1:2] == ["--rate"] else None
        _fake_main(rate)
    else:
        raise SystemExit(
            "python -m homelink.bench.messages queue OUT | dispatch SIZES OUT | fake [--rate R]"
        )


if __name__ == "__main__":
    _main(sys.argv[1:])
