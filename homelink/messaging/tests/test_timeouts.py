"""A provider slower than our timeout: it takes the message, then answers too late.

We cannot know whether it was sent, so a copy with no answer is tried once more and never a
third time: each parent gets a text at most twice, and staff see that a copy that failed this
way may have been sent. A provider that honours our idempotency key sees the retry as a repeat,
so each parent gets it exactly once. In one process, on either database (the worker's own
code: :func:`homelink.messaging.dispatch.drain`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.utils import timezone

from homelink.bench.world import parents_school
from homelink.messaging.audience import Audience
from homelink.messaging.dispatch import drain
from homelink.messaging.fakes import FakeSmsGateway
from homelink.messaging.models import Delivery, GatewayPace, Message
from homelink.messaging.services import Draft, message_send

pytestmark = pytest.mark.django_db

Status = Delivery.Status
COPIES = 5
#: Our timeout, and how late the provider answers.
TIMEOUT, LATE = 0.3, 0.6


@pytest.fixture
def fake(settings: Any) -> Iterator[FakeSmsGateway]:
    with FakeSmsGateway() as gateway:
        settings.HOMELINK_SMS_GATEWAY = "homelink.messaging.gateways.http.HttpGateway"
        yield gateway


def send(
    fake: FakeSmsGateway, settings: Any, *, keys: bool = True, copies: int = COPIES
) -> Message:
    settings.HOMELINK_HTTP_SMS = fake.http_settings(
        TIMEOUT=TIMEOUT, **({} if keys else {"IDEMPOTENCY_HEADER": ""})
    )
    return message_send(
        school=parents_school("900301", copies),
        draft=Draft(mode="sms", audience=Audience(), sms_text="Snow: school is closed today."),
        actor="test",
    )


def settle(message: Message, between: Callable[[], None] = lambda: None) -> None:
    """Drain until no copy is left to retry. A retry's back-off (30 s) and the provider's
    outage back-off are skipped, not waited for; ``between`` runs after the first round."""
    for _ in range(5):
        drain("sms", seconds=20)
        between()
        waiting = Delivery.objects.filter(message=message, status=Status.QUEUED)
        if not waiting.exists():
            return
        waiting.update(next_attempt_at=timezone.now())
        GatewayPace.objects.update(hold_until=0.0)
    raise AssertionError("copies were still queued after five rounds")


@pytest.mark.parametrize("keys", [False, True], ids=["without-keys", "with-keys"])
def test_a_provider_that_always_answers_too_late_gets_each_copy_at_most_twice(
    fake: FakeSmsGateway, settings: Any, keys: bool
) -> None:
    fake.latency = LATE
    message = send(fake, settings, keys=keys)
    settle(message)
    rows = Delivery.objects.filter(message=message)
    taken = Counter(item.to for item in fake.accepted)
    assert set(taken) == set(rows.values_list("to", flat=True))
    assert len(taken) == COPIES
    if keys:
        # The retry carried the same key: the provider took each copy once.
        assert set(taken.values()) == {1}
        assert fake.repeated_keys == COPIES
    else:
        # Tried once more after no answer, and never a third time. (A request can also time
        # out before a busy provider has even read it, so "at most", and at least once twice.)
        assert max(taken.values()) == 2
    for status, reason, unanswered in rows.values_list("status", "reason", "unanswered"):
        assert status == Status.FAILED
        assert "may have been sent" in reason
        assert unanswered == 2


@pytest.mark.parametrize("keys", [False, True], ids=["without-keys", "with-keys"])
def test_a_provider_late_for_a_moment_gets_the_retry_and_it_counts_as_sent(
    fake: FakeSmsGateway, settings: Any, keys: bool
) -> None:
    fake.latency = LATE
    message = send(fake, settings, keys=keys)

    def prompt_again() -> None:
        fake.latency = 0.0

    settle(message, between=prompt_again)
    rows = Delivery.objects.filter(message=message)
    assert Counter(rows.values_list("status", flat=True)) == {Status.SENT: COPIES}
    unanswered = dict(rows.values_list("to", "unanswered"))
    assert 1 in unanswered.values(), "no copy went unanswered: this measured nothing"
    taken = Counter(item.to for item in fake.accepted)
    if keys:
        assert taken == dict.fromkeys(unanswered, 1)
        # Each copy keeps the id the provider gave it the first time, which its receipts name.
        recorded = dict(rows.values_list("to", "gateway_id"))
        assert {item.to: item.id for item in fake.accepted} == recorded
    else:
        # Those that went unanswered, twice; the others once.
        assert taken == {to: 1 + n for to, n in unanswered.items()}


def test_one_late_moment_on_every_connection_holds_the_gateway_once_not_once_per_connection(
    fake: FakeSmsGateway, settings: Any
) -> None:
    """An outage holds the gateway for 1, 2, 4… seconds "as failures follow each other"
    (pacing). The requests in flight on a worker's connections when the provider stumbles (sent
    before any answer came back) are one moment of failure: the rest of the send waits out one
    back-off (1 s) and goes. (When each counted as a strike of its own, four connections held
    the gateway 2 ** 3 = 8 s, and the drain gave up on the send.)"""
    connections = settings.HOMELINK_SMS_CONNECTIONS
    assert connections >= 2
    fake.slow_next(connections, LATE)
    message = send(fake, settings, copies=2 * connections)
    drain("sms", seconds=5)
    statuses = Counter(Delivery.objects.filter(message=message).values_list("status", flat=True))
    strikes = GatewayPace.objects.get(gateway="http").strikes
    # The ones in flight went unanswered and wait for their retry; the others went a second on.
    assert statuses == {Status.QUEUED: connections, Status.SENT: connections}, (
        f"{statuses}, {strikes} strikes"
    )
