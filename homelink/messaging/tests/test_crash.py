"""Workers killed with SIGKILL, again and again, during a 10,000-recipient SMS send on
PostgreSQL: every delivery is sent at least once; a duplicate happens only inside the documented
window (the gateway took the message, the worker died before recording it); and with a gateway
that honours the idempotency key, there is no duplicate at all.

Real processes (``homelink worker``, as deployed), real HTTP to a fake provider on 127.0.0.1,
real PostgreSQL. About half a minute per case.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection

from homelink.bench.world import parents_school, start_worker
from homelink.messaging.audience import Audience
from homelink.messaging.dispatch import crash_window
from homelink.messaging.fakes import FakeSmsGateway
from homelink.messaging.models import Delivery, Message
from homelink.messaging.services import Draft, message_send

RECIPIENTS = 10_000
WORKERS = 4
KILLS = 8
LEASE_SECONDS = 2

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="the crash test runs on PostgreSQL"
    ),
]


@pytest.fixture
def fake() -> Iterator[FakeSmsGateway]:
    with FakeSmsGateway() as gateway:
        yield gateway


def _environ(fake: FakeSmsGateway, http_overrides: dict[str, Any]) -> dict[str, str]:
    db = connection.settings_dict
    url = f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "homelink.settings",
        "DATABASE_URL": url,
        "HOMELINK_SMS_GATEWAY": "homelink.messaging.gateways.http.HttpGateway",
        "HOMELINK_HTTP_SMS": json.dumps(fake.http_settings(**http_overrides)),
        "HOMELINK_DELIVERY_LEASE_SECONDS": str(LEASE_SECONDS),
        "HOMELINK_DELIVERY_BATCH": "50",
        # Paced, so that the send lasts long enough (about 10 s) for most kills to land while
        # it is under way: unpaced, four workers finish it in about three.
        "HOMELINK_SMS_RATE": "1000",
        "TASKS_BACKEND": "django_tasks_db.DatabaseBackend",
    }


class Workers:
    """``homelink worker`` processes, killed and replaced at random."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.procs: list[subprocess.Popen[bytes]] = []
        self.kills = 0

    def start(self) -> None:
        self.procs.append(start_worker(self.env))

    def kill_one(self) -> None:
        victim = self.procs.pop(random.randrange(len(self.procs)))
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        self.kills += 1
        self.start()

    def stop(self) -> None:
        for proc in self.procs:
            proc.send_signal(signal.SIGKILL)
            proc.wait()


def _unfinished(message: Message) -> int:
    return (
        Delivery.objects.filter(message=message)
        .exclude(status__in=[Delivery.Status.SENT, Delivery.Status.DELIVERED])
        .count()
    )


def _send_with_kills(fake: FakeSmsGateway, **http_overrides: Any) -> tuple[Message, int]:
    """Send, kill workers at random while deliveries remain, wait for the rest; returns the
    message and how many kills landed while the send was under way."""
    school = parents_school("990001", RECIPIENTS)
    env = _environ(fake, http_overrides)
    message = message_send(
        school=school,
        draft=Draft(mode="sms", audience=Audience(), sms_text="Snow: school is closed today."),
        actor="test",
        confirmed_large=True,
    )
    workers = Workers(env)
    during = 0
    try:
        for _ in range(WORKERS):
            workers.start()
        # Kill while the send is under way: after some went, before all did.
        while workers.kills < KILLS:
            time.sleep(random.uniform(0.4, 1.2))
            during += bool(_unfinished(message))
            workers.kill_one()
        deadline = time.monotonic() + 240
        while _unfinished(message) and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        workers.stop()
    assert _unfinished(message) == 0, "deliveries were left unsent"
    assert during >= KILLS // 2, "most kills must land while the send is under way"
    return message, during


def test_every_delivery_is_sent_and_duplicates_stay_in_the_window(fake: FakeSmsGateway) -> None:
    # Without the key the fake cannot tell a repeat: every message it takes counts.
    message, kills = _send_with_kills(fake, IDEMPOTENCY_HEADER="")
    numbers = Counter(item.to for item in fake.accepted)
    rows = dict(Delivery.objects.filter(message=message).values_list("to", "attempts"))
    assert set(numbers) == set(rows), "every recipient got the message"
    duplicates = {to: n - 1 for to, n in numbers.items() if n > 1}
    # The window: what a killed worker had sent but not yet recorded.
    window = kills * crash_window("sms")
    assert sum(duplicates.values()) <= window
    # And each duplicate was sent again because its claim was lost with a killed worker.
    assert all(rows[to] >= 2 for to in duplicates)
    print(f"\n{kills} kills, {sum(duplicates.values())} duplicates (window {window})")


def test_with_an_idempotency_key_there_is_no_duplicate_at_all(fake: FakeSmsGateway) -> None:
    message, kills = _send_with_kills(fake)
    keys = Counter(item.key for item in fake.accepted)
    assert len(keys) == RECIPIENTS
    assert max(keys.values()) == 1
    numbers = Counter(item.to for item in fake.accepted)
    assert len(numbers) == RECIPIENTS and max(numbers.values()) == 1
    # Each delivery records the id the provider gave the first time.
    recorded = dict(Delivery.objects.filter(message=message).values_list("gateway_id", "to"))
    assert {item.id: item.to for item in fake.accepted} == recorded
    print(f"\n{kills} kills, {fake.repeated_keys} repeats absorbed by the idempotency key")
