"""The messaging benchmark (issue 5): queuing, email and SMS dispatch, and a snow day.

1. **Queue** a message to 10,000 recipients on SQLite: resolve the audience and commit the
   message with its 10,000 delivery rows, timed around ``message_send`` (target ≤ 1 s).
2. **Email**: our dispatcher (one worker, batches over one SMTP connection, results recorded)
   against raw ``smtplib`` sending the same rendered messages over one connection, to the same
   aiosmtpd sink in its own process (target ≥ 0.7 of raw).
3. **SMS**: our dispatcher through the generic HTTP gateway against a raw keep-alive
   ``http.client`` posting the same JSON bodies, to the same fake provider in its own process
   (target ≥ 0.7 of raw).
4. **Snow day** on PostgreSQL: 100,000 SMS (``--quick``: 20,000) drained by four ``homelink
   worker`` processes into the fake provider; messages per second from queued to all recorded.

Parts 1 to 3 run in a child process on a throwaway SQLite file; part 4 in a throwaway PostgreSQL
database (skipped when the server is not there).
"""

from __future__ import annotations

import http.client
import json
import os
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

QUEUE_SIZE = 10_000
SNOW_DAY = 100_000
SNOW_DAY_QUICK = 20_000
SNOW_WORKERS = 4
PG_URL = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres")
SMS_CONNECTIONS = 4
TEXT = "Snow: the school is closed today, {name}. Please keep {children} at home."


def run(*, quick: bool = False) -> dict[str, float]:
    print("Messaging benchmark")
    with (
        tempfile.TemporaryDirectory(prefix="homelink-bench-messages-") as tmp,
        _sinks() as (smtp_port, fake),
    ):
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "homelink.settings",
            "DATABASE_URL": f"sqlite:///{Path(tmp) / 'messages.sqlite3'}",
            "HOMELINK_VAR_DIR": tmp,
            "TASKS_BACKEND": "django_tasks.backends.dummy.DummyBackend",
            "EMAIL_HOST": "127.0.0.1",
            "EMAIL_PORT": str(smtp_port),
            **fake["environ"],
        }
        proc = subprocess.run(
            [sys.executable, "-m", "homelink.bench.messages", "child"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
    if proc.returncode:
        raise SystemExit(f"messaging benchmark failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    print(
        f"  queue {QUEUE_SIZE:,} SMS         {result['queue_sms_s']:7.2f} s   (target ≤ 1 s; resolve "
        f"{result['resolve_s']:.2f} s)"
    )
    print(f"  queue {QUEUE_SIZE:,} emails      {result['queue_email_s']:7.2f} s")
    print(
        f"  email  raw smtplib {result['email_raw']:8.0f}/s   ours {result['email_ours']:8.0f}/s"
        f"   ratio {result['email_ours'] / result['email_raw']:.2f}  (target ≥ 0.7)"
    )
    print(
        f"  SMS    raw HTTP    {result['sms_raw']:8.0f}/s   ours {result['sms_ours']:8.0f}/s"
        f"   ratio {result['sms_ours'] / result['sms_raw']:.2f}  (target ≥ 0.7; one connection each)"
    )
    print(
        f"  SMS    ours with {SMS_CONNECTIONS} connections per worker {result['sms_ours_many']:8.0f}/s"
    )
    snow = _snow_day(SNOW_DAY_QUICK if quick else SNOW_DAY)
    if snow:
        result.update(snow)
    return result


# --- the sinks, each in its own process --------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _sinks() -> Any:
    """An aiosmtpd sink and the fake SMS provider, as separate processes."""
    smtp_port = _free_port()
    smtp = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aiosmtpd",
            "-n",
            "-c",
            "aiosmtpd.handlers.Sink",
            "-l",
            f"127.0.0.1:{smtp_port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    fake = _start_fake()
    try:
        _wait_for_port(smtp_port)
        yield smtp_port, fake
    finally:
        smtp.terminate()
        fake["proc"].terminate()
        smtp.wait()
        fake["proc"].wait()


def _start_fake() -> dict[str, Any]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "homelink.bench.messages", "fake"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    environ: dict[str, str] = json.loads(proc.stdout.readline())
    return {"proc": proc, "environ": environ}


def _wait_for_port(port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listening on 127.0.0.1:{port}")


def _fake_main() -> None:
    """Run the fake provider until stdin closes or the process is terminated."""
    from homelink.messaging.fakes import FakeSmsGateway

    fake = FakeSmsGateway().start()
    print(json.dumps(fake.environ("http")), flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        fake.stop()


# --- the child: parts 1-3 ----------------------------------------------------------------------


def _child() -> dict[str, float]:
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from homelink.bench.world import parents_school
    from homelink.messaging.audience import Audience, resolve
    from homelink.messaging.dispatch import drain
    from homelink.messaging.services import Draft, message_send

    school = parents_school("900001", QUEUE_SIZE)
    started = time.perf_counter()
    resolve(school, Audience(), "sms")
    resolve_s = time.perf_counter() - started

    def queue(mode: str, audience: Audience) -> float:
        draft = Draft(mode=mode, audience=audience, sms_text=TEXT, subject="Snow", email_body=TEXT)
        started = time.perf_counter()
        message_send(school=school, draft=draft, actor="bench", confirmed_large=True)
        return time.perf_counter() - started

    queue_sms_s = queue("sms", Audience())
    queue_email_s = queue("email", Audience())
    # The dispatch comparisons use a smaller message (the queued 10,000 stay unsent: cancelled).
    from homelink.messaging.models import Delivery

    Delivery.objects.update(status=Delivery.Status.CANCELLED)
    half = Audience(students="years", years=("7", "8", "9", "10", "11"), parents="prime")
    queue("email", half)
    queue("sms", half)

    from django.conf import settings

    email_ours = _timed_drain(drain, "email")
    email_raw = _raw_smtp(school)
    # One connection against the raw client's one; then as deployed (several per worker).
    settings.HOMELINK_SMS_CONNECTIONS = 1
    sms_ours = _timed_drain(drain, "sms")
    sms_raw = _raw_http(school)
    queue("sms", half)
    settings.HOMELINK_SMS_CONNECTIONS = SMS_CONNECTIONS
    sms_ours_many = _timed_drain(drain, "sms")
    return {
        "resolve_s": resolve_s,
        "queue_sms_s": queue_sms_s,
        "queue_email_s": queue_email_s,
        "email_ours": email_ours,
        "email_raw": email_raw,
        "sms_ours": sms_ours,
        "sms_raw": sms_raw,
        "sms_ours_many": sms_ours_many,
    }


def _timed_drain(drain: Any, channel: str) -> float:
    from homelink.messaging.models import Delivery

    sent = Delivery.objects.filter(channel=channel, status=Delivery.Status.SENT)
    before = sent.count()
    started = time.perf_counter()
    drain(channel, seconds=3600)
    elapsed = time.perf_counter() - started
    return (sent.count() - before) / elapsed


def _deliveries(channel: str) -> list[Any]:
    from homelink.messaging.models import Delivery

    return list(
        Delivery.objects.filter(channel=channel, status=Delivery.Status.SENT)
        .select_related("message", "message__school")
        .order_by("id")
    )


def _raw_smtp(school: Any) -> float:
    """The same rendered messages, built and sent with the standard library only."""
    from email.message import EmailMessage

    from django.conf import settings

    from homelink.messaging.dispatch import render_for

    deliveries = _deliveries("email")
    started = time.perf_counter()
    with smtplib.SMTP(settings.EMAIL_HOST, settings.EMAIL_PORT) as smtp:
        for delivery in deliveries:
            email = EmailMessage()
            email["Subject"] = delivery.message.subject
            email["From"] = "noreply@example.org"
            email["To"] = delivery.to
            email.set_content(render_for(delivery.message.email_body, delivery))
            smtp.send_message(email)
    return len(deliveries) / (time.perf_counter() - started)


def _raw_http(school: Any) -> float:
    """The same requests our gateway makes (body, callback address, headers) over one
    kept-alive connection, with nothing looked up or recorded."""
    from django.conf import settings

    from homelink.messaging.dispatch import render_for
    from homelink.messaging.gateways.base import hook_base

    config = settings.HOMELINK_HTTP_SMS
    url = urlsplit(config["URL"])
    callback = hook_base("sms_status")
    secret = config["RECEIPT_SECRET"]
    deliveries = _deliveries("sms")[:5_000]
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=15)
    started = time.perf_counter()
    for delivery in deliveries:
        body = json.dumps(
            {
                "to": delivery.to,
                "text": render_for(delivery.message.sms_text, delivery),
                "callback": f"{callback}?delivery={delivery.pk}&secret={secret}",
            }
        ).encode()
        conn.request(
            "POST",
            url.path,
            body,
            {
                "Content-Type": "application/json",
                "Accept": "application/json",
                config["AUTH_HEADER"]: config["AUTH_VALUE"],
                "Idempotency-Key": delivery.idempotency_key + "-raw",
            },
        )
        response = conn.getresponse()
        response.read()
    elapsed = time.perf_counter() - started
    conn.close()
    return len(deliveries) / elapsed


# --- part 4: the snow day on PostgreSQL --------------------------------------------------------


def _snow_day(size: int) -> dict[str, float] | None:
    import psycopg

    name = f"homelink_bench_{os.getpid()}"
    try:
        admin = psycopg.connect(PG_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError:
        print("  snow day: skipped (no PostgreSQL at BENCH_PG_URL)")
        return None
    base = PG_URL.rsplit("/", 1)[0]
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        with _sinks() as (_smtp_port, fake):
            env = {
                **os.environ,
                "DJANGO_SETTINGS_MODULE": "homelink.settings",
                "DATABASE_URL": f"{base}/{name}",
                "TASKS_BACKEND": "django_tasks_db.DatabaseBackend",
                "HOMELINK_DELIVERY_CONCURRENCY": str(SNOW_WORKERS),
                **fake["environ"],
            }
            subprocess.run(
                [sys.executable, "-m", "homelink.cli", "migrate", "-v", "0"], env=env, check=True
            )
            proc = subprocess.run(
                [sys.executable, "-m", "homelink.bench.messages", "snow", str(size)],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode:
                raise SystemExit(f"snow day failed:\n{proc.stderr[-3000:]}")
            result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
    print(
        f"  snow day: {size:,} SMS, {SNOW_WORKERS} workers, PostgreSQL: "
        f"{result['snow_s']:.1f} s, {result['snow_rate']:,.0f} messages/s "
        f"(queued in {result['snow_queue_s']:.2f} s)"
    )
    return result


def _snow_child(size: int) -> dict[str, float]:
    """Make the school, queue the send, start the workers, wait until every copy is recorded."""
    import django

    django.setup()
    from homelink.bench.world import parents_school, start_worker
    from homelink.messaging.audience import Audience
    from homelink.messaging.models import Delivery
    from homelink.messaging.services import Draft, message_send

    school = parents_school("900002", size)
    workers = [start_worker(interval=0.1) for _ in range(SNOW_WORKERS)]
    try:
        time.sleep(2)  # the workers are up and idle before the clock starts
        started = time.perf_counter()
        message = message_send(
            school=school,
            draft=Draft(mode="sms", audience=Audience(), sms_text=TEXT, urgent=True),
            actor="bench",
            confirmed_large=True,
        )
        queued = time.perf_counter() - started
        pending = Delivery.objects.filter(
            message=message, status__in=[Delivery.Status.QUEUED, Delivery.Status.SENDING]
        )
        while pending.exists():
            time.sleep(0.2)
        elapsed = time.perf_counter() - started
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait()
    sent = Delivery.objects.filter(message=message, status=Delivery.Status.SENT).count()
    return {"snow_s": elapsed, "snow_rate": sent / elapsed, "snow_queue_s": queued}


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "child":
        print(json.dumps(_child()))
    elif command == "fake":
        _fake_main()
    elif command == "snow":
        print(json.dumps(_snow_child(int(sys.argv[2]))))
    else:
        raise SystemExit("python -m homelink.bench.messages child|fake|snow N")
