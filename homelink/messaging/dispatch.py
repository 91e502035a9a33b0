"""The outbox's workers: claim due deliveries in batches, send them, record what happened.

**What next.** A worker serves whichever channel has the most urgent due copy (urgent before
bulk, whatever the channel; equal ones in turn), and while it sends it looks every
:data:`CHECK_EVERY` seconds whether something more urgent has come due on any channel: if so,
it puts back what it has not sent yet (no attempt spent) and turns to that. So an urgent copy
starts within about a second of being queued, however much bulk the workers are draining.

**Fair shares.** Within a channel and priority, copies are claimed in *lane* order
(:mod:`homelink.messaging.lanes`): a message's copies take consecutive lanes starting where the queue's oldest
due copy stands, so a message queued while another is being sent is interleaved with it, one
for one; one school's 10,000-copy send holds another school's 20-copy message for about 20 of
its own copies. A scheduled message gets its lanes when its time comes.

**Claim.** One short transaction takes up to a batch of due deliveries of one channel in that
order and marks them ``sending`` with this worker's token and a lease (``SELECT … FOR UPDATE
SKIP LOCKED`` on PostgreSQL, so workers never wait on each other; on SQLite the transaction takes
the write lock at BEGIN, so the conditional update cannot race). In the same transaction, copies
for people who opted out, were held, turned the channel off or texted STOP since the message was
queued are marked ``skipped``, and copies of a message cancelled since (one a worker held at the
cancel that came back to the queue) ``cancelled``; their SMS credits are refunded.

**Pace.** Each gateway sends at its configured rate, shared by every worker
(:mod:`homelink.messaging.pacing`); a 429 holds the whole gateway for its Retry-After and an
outage backs it off, while the copies waiting go back to the queue without spending attempts.

**Send.** Sender threads send while this thread claims the next copies and records what came
back (:func:`pipeline`): email over one connection of the configured Django email backend (a
plain message through Django's SMTP backend is written without the ``email`` package:
:mod:`homelink.messaging.gateways.smtp`), SMS over ``HOMELINK_SMS_CONNECTIONS`` kept-alive
connections to the provider. A claim is half a second of what the pipeline has been sending
(:func:`_claim_size`). The local outbox, which writes the database itself, sends in this thread.

**Record.** Successes are written in groups, each one statement (every :data:`RECORD_EVERY`
sends, and at the end of a batch); errors at once. A transient error puts the delivery back in
the queue with back-off; a permanent one (or the last attempt) marks it failed with the
gateway's reason. A request the provider may have taken without answering (a timeout) is
retried once and never a second time, so such a provider gets each copy at most twice.

**Crashes.** A worker that dies leaves its claimed rows ``sending`` with a lease; :func:`reap`
returns them to the queue once the lease has run out, and another worker sends them. So every
delivery is sent at least once. A worker that is alive but slow starts no send in the last
:data:`LEASE_MARGIN` of a lease, so a delivery taken over is not sent by both. *The documented
window:* a delivery the gateway accepted whose success the worker had not yet recorded when it
died (at most :func:`crash_window` per worker: 60 for email, 90 for SMS over the default four
connections) is sent again; so is a copy whose provider answered too late (once). Gateways that
take an idempotency key (the generic HTTP gateway sends one per delivery) turn that second send
into a no-op, so they see no duplicate at all.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import logging
import queue
import secrets
import smtplib
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formataddr, make_msgid, parseaddr
from typing import Any, Protocol

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.db import connection, transaction
from django.db.models import F, Min
from django.utils import timezone

from homelink.messaging import merge
from homelink.messaging.erasure import forget_if_gone
from homelink.messaging.gateways import GatewayError, SmsGateway, sms_gateway, sms_gateway_class
from homelink.messaging.gateways.base import scrub
from homelink.messaging.gateways.connection import parse_retry_after
from homelink.messaging.gateways.smtp import is_plain_smtp, send_plain
from homelink.messaging.health import gateway_health_record
from homelink.messaging.lanes import head_priority, place
from homelink.messaging.models import (
    Channel,
    Delivery,
    GatewayPace,
    Message,
    SmsBlock,
    idempotency_key,
)
from homelink.messaging.pacing import Pace, held_gateways, rate_for
from homelink.messaging.services import refund_credits
from homelink.mis.phones import for_display
from homelink.privacy import notices
from homelink.privacy.tokens import ADULT, footer_links, stop_url
from homelink.register.models import Adult, Member
from homelink.schools.models import School

logger = logging.getLogger(__name__)

Status = Delivery.Status

#: Successes recorded per write.
RECORD_EVERY = 20
#: Connections a worker keeps to the mail server: one, like any mail client; the thread behind
#: it builds and records the next messages while the server answers.
EMAIL_CONNECTIONS = 1
#: The most copies one pipeline claims at once when the provider keeps up (:func:`_claim_size`).
MAX_CLAIM = 500
#: Sender threads hand answers over this many at a time, at most this many chunks waiting.
RESULTS_CHUNK = 10
RESULT_CHUNKS_QUEUED = 2
#: How often (seconds) a worker that is sending looks for more urgent work on any channel.
CHECK_EVERY = 0.5
#: A worker sending one channel gives way after this long to work as urgent on another channel.
TURN_SECONDS = 2.0
#: A gateway held for longer than this is left alone (its copies back in the queue) while the
#: worker serves other channels; a shorter hold is waited out.
WAIT_AT_MOST = 2.0


def crash_window(channel: str) -> int:
    """The most copies of ``channel`` one worker can have sent but not recorded when it is
    killed, all of which are sent again once its lease runs out: per sender thread a chunk
    being filled with the send in flight (:data:`RESULTS_CHUNK`), the chunks queued for
    recording, the chunk the recording thread has in hand, and the successes it has not
    written yet."""
    senders = (
        EMAIL_CONNECTIONS if channel == Channel.EMAIL else max(1, settings.HOMELINK_SMS_CONNECTIONS)
    )
    return (
        RECORD_EVERY
        + RESULTS_CHUNK
        + senders * RESULTS_CHUNK
        + RESULT_CHUNKS_QUEUED * RESULTS_CHUNK
    )


MAX_ATTEMPTS = 6


def backoff(attempts: int) -> dt.timedelta:
    """30 s, 1, 2, 4, 8 minutes…: a gateway that is down for a while is not hammered."""
    return dt.timedelta(seconds=min(30 * 2 ** max(attempts - 1, 0), 3600))


def new_worker_token() -> str:
    return secrets.token_hex(8)


def _epoch(when: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(when, tz=dt.UTC)


def others_waiting(channel: str, priority: int) -> tuple[bool, bool]:
    """Whether a copy more urgent than ``priority``, and whether one as urgent, is due on
    another channel than ``channel`` (more urgent: on any channel)."""
    now = timezone.now()
    place(now)
    held = held_gateways()
    more = equal = False
    for other in Channel.values:
        if other != channel and _gateway_name(other) in held:
            continue  # nothing to turn to there until its hold ends
        head = head_priority(other, now)
        if head is None:
            continue
        more = more or head < priority
        equal = equal or (other != channel and head == priority)
    return more, equal


# --- claim --------------------------------------------------------------------------------------


#: What a worker needs of a claimed delivery, as the claim's RETURNING gives it.
CLAIMED = (
    "id",
    "message_id",
    "school_id",
    "channel",
    "to",
    "adult_id",
    "member_id",
    "adult_ids",
    "name",
    "children",
    "schools",
    "parts",
    "priority",
    "attempts",
    "unanswered",
    "refused",
)


@dataclass(slots=True)
class Claimed:
    """A delivery as a worker holds it: the claim's columns and its message. Not a model
    instance: building 100 of those per batch cost more than the claim's SQL."""

    id: int
    message_id: int
    school_id: int
    channel: str
    to: str
    adult_id: int | None
    member_id: int | None
    adult_ids: list[int]
    name: str
    children: str
    #: The schools a trust-wide send's copy stands for (``Delivery.schools``), or None.
    schools: list[dict[str, Any]] | None
    parts: int
    priority: int
    attempts: int
    unanswered: int
    refused: int
    message: Message = field(init=False)
    #: ``time.monotonic()`` after which this worker no longer sends it (see :func:`in_lease`).
    send_by: float = field(init=False, default=0.0)
    #: ``time.time()`` before which it is not sent: its slot in the gateway's pace.
    not_before: float = field(init=False, default=0.0)

    @property
    def pk(self) -> int:
        return self.id

    @property
    def idempotency_key(self) -> str:
        return idempotency_key(self.message.key, self.id)


def _claim_sql() -> str:
    quote = connection.ops.quote_name
    table = quote(Delivery._meta.db_table)
    # PostgreSQL: rows another worker is claiming are skipped, not waited for. SQLite: the
    # transaction holds the write lock from BEGIN, so nobody else is claiming.
    lock = (
        " FOR UPDATE SKIP LOCKED" if connection.features.has_select_for_update_skip_locked else ""
    )
    # Chosen once, in a materialised CTE: as ``WHERE id IN (subquery)`` PostgreSQL may plan a
    # nested loop that runs the subquery again for every row, each run locking and returning
    # more rows, so a claim of 100 took 300 (seen with statistics from a smaller table).
    materialized = "MATERIALIZED " if connection.vendor == "postgresql" else ""
    columns = ", ".join(quote(c) for c in CLAIMED)
    return (
        f"WITH picked AS {materialized}(SELECT id FROM {table} "  # noqa: S608
        "WHERE status = 'queued' AND channel = %s AND lane IS NOT NULL "
        f"AND next_attempt_at <= %s ORDER BY priority, lane, id LIMIT %s{lock}) "
        f"UPDATE {table} SET status = 'sending', claimed_by = %s, lease_until = %s, "
        "attempts = attempts + 1 "
        f"WHERE id IN (SELECT id FROM picked) RETURNING {columns}"
    )


def claim(channel: str, worker: str, *, limit: int | None = None) -> list[Claimed]:
    """Take up to ``limit`` due deliveries of ``channel`` for ``worker``, most urgent first
    and in lane order; see the module doc.

    One ``UPDATE … RETURNING`` statement: the claim is the costliest step per message after
    the gateway itself, and the ORM would need three statements and a model per row twice."""
    send_by = time.monotonic() + settings.HOMELINK_DELIVERY_LEASE_SECONDS * (1 - LEASE_MARGIN)
    now = timezone.now()
    place(now)
    lease_until = now + dt.timedelta(seconds=settings.HOMELINK_DELIVERY_LEASE_SECONDS)
    adapt = connection.ops.adapt_datetimefield_value
    params = (
        channel,
        adapt(now),
        limit or settings.HOMELINK_DELIVERY_BATCH,
        worker,
        adapt(lease_until),
    )
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(_claim_sql(), params)
            rows = cursor.fetchall()
        if not rows:
            return []
        claimed = [Claimed(*row) for row in rows]
        for delivery in claimed:
            if isinstance(delivery.adult_ids, str):  # SQLite returns JSON as text
                delivery.adult_ids = json.loads(delivery.adult_ids)
            if isinstance(delivery.schools, str):
                delivery.schools = json.loads(delivery.schools)
        claimed.sort(key=lambda d: (d.priority, d.id))
        # A batch is mostly one message: fetch each once rather than a copy per delivery.
        messages = Message.objects.select_related("school").in_bulk({d.message_id for d in claimed})
        for delivery in claimed:
            delivery.message = messages[delivery.message_id]
            delivery.send_by = send_by
        return _wait_for_notices(_drop_unwanted(claimed, now), worker, now)


#: The share of a lease kept free at its end: a worker starts no send after the rest has gone,
#: so the send and its record finish before another worker may take the delivery over.
LEASE_MARGIN = 0.2


def in_lease(delivery: Claimed) -> bool:
    """Whether this worker may still send ``delivery``. A worker slower than its lease (a
    provider that takes 15 s an answer, a mail server that hangs) is taken for dead: the reaper
    gives its deliveries to another worker, which sends them; sending them here as well would
    be a duplicate nobody's crash explains. What it skips stays claimed until its lease ends."""
    return time.monotonic() < delivery.send_by


CANCELLED_REASON = "cancelled by staff"


def _rows(sql: str, values: set[Any], *, before: list[Any] | None = None) -> list[tuple[Any, ...]]:
    """Run ``sql`` with ``values`` as the list its ``{}`` stands for (nothing when empty). A
    claim asks this of hundreds of ids; the ORM spends longer preparing them than the
    database answering."""
    if not values:
        return []
    with connection.cursor() as cursor:
        cursor.execute(sql.format(", ".join(["%s"] * len(values))), [*(before or []), *values])
        return list(cursor.fetchall())


def _drop_unwanted(claimed: list[Claimed], now: dt.datetime) -> list[Claimed]:
    """Skip copies nobody may receive any more, or whose message was cancelled (inside the
    claim's transaction)."""
    adult_ids = {a for d in claimed for a in d.adult_ids}
    member_ids = {d.member_id for d in claimed if d.member_id and not d.adult_ids}
    quote = connection.ops.quote_name
    adults = {
        pk: (bool(opted_out or held), bool(email_off), bool(sms_off))
        for pk, opted_out, held, email_off, sms_off in _rows(
            f"SELECT id, opted_out, held, email_off, sms_off FROM {quote(Adult._meta.db_table)} "  # noqa: S608 - names from the models
            "WHERE id IN ({})",
            adult_ids,
        )
    }
    members_out = {
        pk
        for (pk,) in _rows(
            f"SELECT id FROM {quote(Member._meta.db_table)} WHERE opted_out AND id IN ({{}})",  # noqa: S608
            member_ids,
        )
    }
    numbers = {d.to for d in claimed if d.channel == Channel.SMS}
    schools = {d.school_id for d in claimed}
    # By school and number: the order of the unique index that serves the lookup.
    blocked = {
        (school_id, number)
        for school_id, number in _rows(
            f"SELECT school_id, number FROM {quote(SmsBlock._meta.db_table)} "  # noqa: S608
            f"WHERE school_id IN ({', '.join(['%s'] * len(schools))}) AND number IN ({{}})",
            numbers,
            before=list(schools),
        )
    }

    def unwanted(d: Claimed) -> str:
        if d.message.status == Message.Status.CANCELLED:
            # Back in the queue after the cancel (a transient error, a dead worker's lease).
            return CANCELLED_REASON
        if d.channel == Channel.SMS and (d.school_id, d.to) in blocked:
            return "the number texted STOP"
        if d.adult_ids:
            wanted = False
            for pk in d.adult_ids:
                out, email_off, sms_off = adults.get(pk, (True, True, True))
                off = sms_off if d.channel == Channel.SMS else email_off
                wanted = wanted or not (out or off)
            return "" if wanted else "opted out or turned this channel off since it was queued"
        if d.member_id and d.member_id in members_out:
            return "opted out since it was queued"
        return ""

    keep: list[Claimed] = []
    skipped: dict[int, str] = {}
    for delivery in claimed:
        why = unwanted(delivery)
        if why:
            skipped[delivery.pk] = why
        else:
            keep.append(delivery)
    if skipped:
        for why in set(skipped.values()):
            Delivery.objects.filter(pk__in=[k for k, v in skipped.items() if v == why]).update(
                status=Status.CANCELLED if why == CANCELLED_REASON else Status.SKIPPED,
                reason=why,
                status_at=now,
                lease_until=None,
            )
        _refund([d for d in claimed if d.pk in skipped])
        forget_if_gone(skipped)
    return keep


#: Why a copy waits: its adult's privacy notice has not gone yet.
NOTICE_FIRST = "waiting: the privacy notice goes first"
#: How long it waits before it is looked at again (the notice is urgent: it goes in seconds).
NOTICE_WAIT = dt.timedelta(seconds=2)


def _wait_for_notices(claimed: list[Claimed], worker: str, now: dt.datetime) -> list[Claimed]:
    """Hold back every copy for an adult who was sent the privacy notice (``privacy.notices``)
    until one of their notices has gone (``sent`` or ``delivered``), in this claim's
    transaction: put back (no attempt spent, lanes kept) while a notice is queued or being
    sent; when every notice they were sent ended without reaching them (refused, bounced,
    given up on, cancelled), :func:`~homelink.privacy.notices.notice_retry` queues it once on
    their other channel (the copy waits for that), or, with no channel left, the copy is
    skipped (:data:`~homelink.privacy.notices.NOT_TOLD`) so it never reaches them untold. An
    adult shown the notice on the web site counts as told. Adults never sent a notice
    (registered on the web, added by staff, the notice turned off) are not held.

    Why this is enough: a notice and the copies it must precede commit together; a notice's
    copy is ``sent`` only once the gateway took it; so a copy claimed when its adult's notice
    has gone follows it, whichever worker or channel sends what. A notice claimed in this very
    statement is ``sending``: its companions wait."""
    adult_ids = {a for d in claimed if d.message.kind != Message.Kind.NOTICE for a in d.adult_ids}
    if not adult_ids:
        return claimed
    quote = connection.ops.quote_name
    deliveries, messages = quote(Delivery._meta.db_table), quote(Message._meta.db_table)
    statuses: dict[int, set[str]] = {}
    for adult_id, status in _rows(
        f"SELECT d.adult_id, d.status FROM {deliveries} d JOIN {messages} m "  # noqa: S608 - names from the models
        "ON m.id = d.message_id WHERE m.kind = %s AND d.adult_id IN ({})",
        adult_ids,
        before=[Message.Kind.NOTICE],
    ):
        statuses.setdefault(adult_id, set()).add(status)
    waiting: set[int] = set()
    ended: set[int] = set()
    for adult_id, found in statuses.items():
        if found.intersection(notices.REACHED):
            continue
        if found.intersection(notices.ON_ITS_WAY):
            waiting.add(adult_id)
        else:
            ended.add(adult_id)
    untold: set[int] = set()
    if ended:
        retried = notices.notice_retry(ended)
        waiting |= retried.waiting
        untold = retried.untold
    if not waiting and not untold:
        return claimed
    skipped: list[Claimed] = []
    held: list[Claimed] = []
    for d in claimed:
        if d.message.kind == Message.Kind.NOTICE:
            continue
        if not untold.isdisjoint(d.adult_ids):
            # One copy to an address several adults share reaches each of them.
            skipped.append(d)
        elif not waiting.isdisjoint(d.adult_ids):
            held.append(d)
    release(held, worker, until=now + NOTICE_WAIT, reason=NOTICE_FIRST)
    if skipped:
        Delivery.objects.filter(pk__in=[d.pk for d in skipped]).update(
            status=Status.SKIPPED,
            reason=notices.NOT_TOLD,
            status_at=now,
            lease_until=None,
        )
        _refund(skipped)
    out = {d.id for d in held} | {d.id for d in skipped}
    return [d for d in claimed if d.id not in out]


def _refund(deliveries: list[Claimed]) -> None:
    by_message: dict[int, int] = {}
    for d in deliveries:
        if d.channel == Channel.SMS and d.parts:
            by_message[d.message_id] = by_message.get(d.message_id, 0) + d.parts
    messages = {d.message_id: d.message for d in deliveries}
    for message_id, parts in by_message.items():
        Message.objects.filter(pk=message_id).update(credits_refunded=F("credits_refunded") + parts)
        # To the school, or to the trust whose pool paid a trust-wide send.
        refund_credits(messages[message_id], parts)


# --- reap ---------------------------------------------------------------------------------------


def reap() -> int:
    """Return deliveries whose worker's lease ran out to the queue (their worker died); one
    whose every attempt ended that way fails, so a message that kills its worker (a gateway
    bug it trips) cannot take the workers down for ever."""
    now = timezone.now()
    expired = Delivery.objects.filter(status=Status.SENDING, lease_until__lt=now)
    expired.filter(attempts__gte=MAX_ATTEMPTS).update(
        status=Status.FAILED,
        reason=f"gave up after {MAX_ATTEMPTS} attempts: the worker stopped each time",
        status_at=now,
        lease_until=None,
    )
    returned = expired.update(
        status=Status.QUEUED, claimed_by="", lease_until=None, next_attempt_at=now
    )
    if returned:
        logger.warning("returned %d deliveries whose worker stopped to the queue", returned)
    return returned


# --- record -------------------------------------------------------------------------------------


HELD_REASON = "waiting: the provider asked us to slow down"


def release(
    deliveries: list[Claimed],
    worker: str,
    *,
    until: dt.datetime | None = None,
    reason: str = "",
    refused: bool = False,
) -> int:
    """Put claimed copies back in the queue unsent, without spending an attempt (the gateway
    was held, something more urgent came, the batch's turn was up). They keep their lanes, so
    they go first when they are next claimed. ``reason`` (a hold's) is what the message's page
    shows meanwhile."""
    if not deliveries:
        return 0
    changes: dict[str, Any] = {
        "status": Status.QUEUED,
        "claimed_by": "",
        "lease_until": None,
        "attempts": F("attempts") - 1,
        "next_attempt_at": until or timezone.now(),
    }
    if reason:
        changes["reason"] = reason
    if refused:
        changes["refused"] = F("refused") + 1
    return Delivery.objects.filter(
        pk__in=[d.pk for d in deliveries], status=Status.SENDING, claimed_by=worker
    ).update(**changes)


#: 429s in a row one copy may take before they count as attempts.
MAX_REFUSALS = 5
NO_ANSWER_TWICE = "no answer from the provider twice: it may have been sent, so not tried again"


class Recorder:
    """Writes a worker's results: successes in groups, errors at once."""

    def __init__(self, worker: str, gateway: str) -> None:
        self.worker = worker
        self.gateway = gateway
        self.pending: list[tuple[int, str]] = []
        self.sent = 0
        #: Errors that may pass (the gateway down or busy), as opposed to one copy refused.
        self.transient = 0

    def sent_ok(self, delivery: Claimed, gateway_id: str) -> None:
        self.pending.append((delivery.pk, gateway_id))
        self.sent += 1
        if len(self.pending) >= RECORD_EVERY:
            self.flush()

    def flush(self) -> None:
        """Record the pending successes in one statement (a statement per copy cost a quarter
        of a worker's time). A receipt may have arrived first and moved a row on: then only
        the time it went is filled in, and the gateway's id unless the receipt brought it."""
        if not self.pending:
            return
        adapt = connection.ops.adapt_datetimefield_value
        now = adapt(timezone.now())
        t = connection.ops.quote_name(Delivery._meta.db_table)
        rows = ", ".join(["(CAST(%s AS BIGINT), CAST(%s AS TEXT))"] * len(self.pending))
        params: list[Any] = [self.gateway, now, now]
        for pk, gateway_id in self.pending:
            params += [pk, gateway_id]
        params.append(self.worker)
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {t} SET "  # noqa: S608 - names from the model, values as parameters
                f"status = CASE WHEN {t}.status = 'sending' THEN 'sent' ELSE {t}.status END, "
                "gateway = %s, "
                f"gateway_id = CASE WHEN {t}.status = 'sending' OR {t}.gateway_id = '' "
                f"THEN v.column2 ELSE {t}.gateway_id END, "
                "sent_at = %s, "
                f"status_at = CASE WHEN {t}.status = 'sending' THEN %s ELSE {t}.status_at END, "
                "lease_until = NULL "
                f"FROM (VALUES {rows}) AS v WHERE {t}.id = v.column1 AND ("
                f"({t}.status = 'sending' AND {t}.claimed_by = %s) OR "
                f"({t}.sent_at IS NULL AND {t}.status NOT IN ('queued', 'sending')))",
                params,
            )
        # A copy whose person was erased while it was being sent keeps no address.
        forget_if_gone([pk for pk, _ in self.pending])
        self.pending = []

    def error(self, delivery: Claimed, error: GatewayError) -> None:
        self.flush()
        now = timezone.now()
        if error.hold is not None and delivery.refused + 1 < MAX_REFUSALS:
            # Refused for the pace, not tried: back in the queue for when the hold ends.
            release(
                [delivery],
                self.worker,
                until=now + dt.timedelta(seconds=error.hold),
                reason=HELD_REASON,
                refused=True,
            )
            return
        # Refused every time it comes round (a provider's limit on this one number): from
        # now on it spends attempts and backs off like any error, instead of holding the
        # gateway each time it is first in line.
        self.transient += error.retry
        mine = Delivery.objects.filter(
            pk=delivery.pk, status=Status.SENDING, claimed_by=self.worker
        )
        reason = error.reason[:255]
        retry = error.retry and delivery.attempts < MAX_ATTEMPTS
        if error.unanswered and delivery.unanswered:
            retry, reason = False, NO_ANSWER_TWICE
        if retry:
            mine.update(
                status=Status.QUEUED,
                claimed_by="",
                lease_until=None,
                reason=reason,
                unanswered=F("unanswered") + int(error.unanswered),
                refused=0,
                next_attempt_at=now + backoff(delivery.attempts),
            )
        else:
            if error.retry and reason != NO_ANSWER_TWICE:
                reason = f"gave up after {delivery.attempts} attempts: {error.reason}"[:255]
            mine.update(
                status=Status.FAILED,
                gateway=self.gateway,
                reason=reason,
                unanswered=F("unanswered") + int(error.unanswered),
                status_at=now,
                lease_until=None,
            )
            forget_if_gone([delivery.pk])


# --- send ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class Served:
    """What a turn at one channel came to: copies claimed, and until when (epoch seconds) its
    gateway is held, if the turn ended because of a hold."""

    claimed: int = 0
    held_until: float = 0.0


class Turn:
    """A worker's turn at sending one channel: its gateway's pace, a hold its senders share,
    and when to look for more urgent work."""

    def __init__(self, channel: str, pace: Pace, worker: str) -> None:
        self.channel = channel
        self.pace = pace
        self.worker = worker
        self.priority = Delivery.BULK
        self.started = time.monotonic()
        self._next_check = self.started + CHECK_EVERY
        self._lock = threading.Lock()
        self._held_until = 0.0
        self._struck_until = 0.0

    # The hold, as the threads of this worker see it (the pace row tells the other workers).

    def hold_until(self, until: float) -> None:
        with self._lock:
            self._held_until = max(self._held_until, until)

    @property
    def held_until(self) -> float:
        with self._lock:
            return self._held_until

    def held_for(self) -> float:
        return self.held_until - time.time()

    def answer(self, error: GatewayError | None) -> None:
        """Act on a send's outcome for the whole gateway: a 429 holds it, an outage backs it
        off (both for every worker, through the pace), anything else concerns one copy."""
        if error is None or not error.gateway_wide:
            return
        if error.hold is not None:
            self.hold_until(self.pace.hold(error.hold))
        elif time.time() >= self._struck_until:
            # One outage is one strike, however many connections were caught in it (their
            # answers arrive during the back-off it started).
            self._struck_until = self.pace.strike()
            self.hold_until(self._struck_until)

    def should_yield(self) -> bool:
        """Whether to stop and put back what is not sent, asked every :data:`CHECK_EVERY`
        seconds: when something more urgent is due on any channel, or, once this turn has had
        :data:`TURN_SECONDS`, something as urgent on another channel (the channels take turns;
        within one, messages share by lanes)."""
        now = time.monotonic()
        if now < self._next_check:
            return False
        self._next_check = now + CHECK_EVERY
        more, equal = others_waiting(self.channel, self.priority)
        return more or (equal and now - self.started > TURN_SECONDS)


#: In a privacy notice's SMS: the adult's own page (the notice and a button to stop messages).
NOTICE_LINK = "{link}"


def render_for(text: str, delivery: Claimed | Delivery) -> str:
    rendered = merge.render(
        text,
        name=delivery.name,
        children=delivery.children,
        # A trust-wide send's copy for several schools' families names them all.
        school=merge.school_named(delivery.schools, delivery.message.school.name),
    )
    if delivery.message.kind == Message.Kind.NOTICE and delivery.adult_id is not None:
        rendered = rendered.replace(NOTICE_LINK, stop_url(ADULT, delivery.adult_id))
    return rendered


def email_footer(
    school: School,
    *,
    adult_id: int | None = None,
    member_id: int | None = None,
    adult_ids: list[int] | tuple[int, ...] = (),
    schools: list[dict[str, Any]] | None = None,
) -> str:
    """What every message email ends with: who sent it and how to reach the office, below a
    signature separator ("-- "), which mail programs show as the signature; then the school's
    privacy notice and the link that stops messages to the copy's address (no sign-in), for
    every adult it was sent to there (``schools``: a trust-wide send's copy standing for
    several schools' families, each school's)."""
    lines = ["", "", "-- ", school.name]
    if school.office_phone:
        lines.append(f"School office: {for_display(school.office_phone, school.phone_region)}")
    if schools:
        # A trust-wide send's copy for families of several schools: each school's notice,
        # and a link that stops that school's messages to the people it knows at this address.
        for entry in schools:
            members = entry.get("members") or []
            lines += footer_links(
                str(entry["urn"]),
                str(entry["name"]),
                adult_id=None,
                member_id=members[0] if members else None,
                adult_ids=entry.get("adults") or [],
            )
        return "\n".join(lines)
    lines += footer_links(
        school.urn, school.name, adult_id=adult_id, member_id=member_id, adult_ids=adult_ids
    )
    return "\n".join(lines)


@functools.lru_cache(maxsize=8)
def _site_address(from_email: str) -> str:
    return parseaddr(from_email)[1]


def email_for(delivery: Claimed) -> EmailMessage:
    message = delivery.message
    domain = settings.HOMELINK_EMAIL_DOMAIN
    # The school's name in front of the site's address: parents see who wrote.
    from_email = formataddr((message.school.name, _site_address(settings.DEFAULT_FROM_EMAIL)))
    return EmailMessage(
        subject=render_for(message.subject, delivery),
        body=render_for(message.email_body, delivery)
        + email_footer(
            message.school,
            adult_id=delivery.adult_id,
            member_id=delivery.member_id,
            adult_ids=delivery.adult_ids,
            schools=delivery.schools,
        ),
        from_email=from_email,
        to=[delivery.to],
        # Our own Message-ID: SMTP has no other id to match a bounce against later; building it
        # from a configured domain avoids make_msgid's DNS lookup of this host.
        headers={"Message-ID": make_msgid(idstring=str(delivery.pk), domain=domain)},
    )


def _connection_lost(error: Exception) -> bool:
    # SMTPException is an OSError too: only a dropped or refused connection counts here.
    if isinstance(error, smtplib.SMTPServerDisconnected | smtplib.SMTPConnectError):
        return True
    return isinstance(error, OSError) and not isinstance(error, smtplib.SMTPException)


def _email_error(error: Exception) -> GatewayError:
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in error.recipients.values()]
        retry = all(400 <= code < 500 for code in codes)
        return GatewayError(f"recipient refused ({', '.join(map(str, codes))})", retry=retry)
    if isinstance(error, smtplib.SMTPResponseException):
        # 421: the server is closing the connection on everyone (overloaded, restarting).
        return GatewayError(
            f"mail server said {error.smtp_code}",
            retry=400 <= error.smtp_code < 500,
            gateway_wide=error.smtp_code == 421,
        )
    if isinstance(error, TimeoutError) or (
        # smtplib reports a timeout while it waits for the server as a disconnection.
        isinstance(error, smtplib.SMTPServerDisconnected)
        and isinstance(error.__context__, TimeoutError)
    ):
        # The message may be in the server's hands: retried once, never twice.
        return GatewayError(
            f"mail server did not answer ({type(error).__name__}); it may have been sent",
            retry=True,
            unanswered=True,
        )
    if _connection_lost(error):
        return GatewayError(
            f"mail server unreachable ({type(error).__name__})", retry=True, gateway_wide=True
        )
    # Anymail's errors, and anything else a backend raises: most are the ESP being unwell.
    status = getattr(error, "status_code", None)
    reason = scrub(f"{type(error).__name__}: {str(error)[:120]}")
    if status is None and not isinstance(error, smtplib.SMTPException | OSError):
        if isinstance(error, ValueError):
            # Django could not make an address of it (the register let through something
            # no mail server takes): this copy can never go, the others can.
            return GatewayError(f"the address cannot be used ({type(error).__name__})", retry=False)
        # Not the network's doing: a bug, to see in the logs (where the error's own text,
        # which may hold an address, is left out), and this copy's problem only.
        log_frames("email backend raised %s", error)
        return GatewayError(reason, retry=True)
    if status == 429:
        headers = getattr(getattr(error, "response", None), "headers", None) or {}
        hold = parse_retry_after(headers.get("Retry-After"))
        return GatewayError(reason, retry=True, hold=1.0 if hold is None else hold)
    retry = status is None or status >= 500
    return GatewayError(reason, retry=retry, gateway_wide=retry)


def log_frames(message: str, error: BaseException) -> None:
    """Log where ``error`` came from without its text (which may name a parent)."""
    frames = "".join(traceback.format_tb(error.__traceback__))
    logger.error(message + "\n%s", type(error).__name__, frames)


class EmailSender:
    """Sends a batch's emails over one connection of the configured backend, opened at the
    first send and again after one is lost."""

    def __init__(self) -> None:
        self._mail: Any = None

    def send(self, delivery: Claimed) -> tuple[str, GatewayError | None]:
        if self._mail is None:
            mail = get_connection(fail_silently=False)
            try:
                mail.open()
            except Exception as error:
                # Nothing was sent: the server is unreachable, silent, or refuses our login,
                # which is the same for every copy, never this one's fault.
                reason = _email_error(error).reason
                if not reason.startswith("mail server unreachable"):
                    reason = f"mail server unreachable ({reason})"
                return "", GatewayError(reason, retry=True, gateway_wide=True)
            self._mail = mail
        email = email_for(delivery)
        try:
            if not (is_plain_smtp(self._mail) and send_plain(self._mail, email)):
                self._mail.send_messages([email])
        except Exception as error:
            if _connection_lost(error):
                self.close()
            return "", _email_error(error)
        return _email_id(email), None

    def close(self) -> None:
        mail, self._mail = self._mail, None
        if mail is not None:
            _close_quietly(mail)


def _email_id(email: EmailMessage) -> str:
    status = getattr(email, "anymail_status", None)
    esp_id = getattr(status, "message_id", None) if status is not None else None
    if isinstance(esp_id, str) and esp_id:
        return esp_id
    return str(email.extra_headers.get("Message-ID", ""))


def send_one_sms(gateway: SmsGateway, delivery: Claimed) -> tuple[str, GatewayError | None]:
    """Send one copy: the gateway's id, or the error to record (never an exception, so that a
    bug in a gateway cannot strand the rest of a batch)."""
    try:
        gateway_id = gateway.send_sms(
            to=delivery.to,
            text=render_for(delivery.message.sms_text, delivery),
            sender=delivery.message.sms_sender,
            key=delivery.idempotency_key,
        )
    except GatewayError as error:
        return "", error
    except Exception as error:
        log_frames("SMS gateway raised %s", error)
        return "", GatewayError(type(error).__name__, retry=True)
    return gateway_id, None


def _close_quietly(mail: object) -> None:
    # The batch is recorded already: a failed QUIT changes nothing.
    with contextlib.suppress(Exception):
        mail.close()  # type: ignore[attr-defined]


SendOne = Callable[[Claimed], tuple[str, GatewayError | None]]


def send_in_turn(deliveries: list[Claimed], recorder: Recorder, send: SendOne, turn: Turn) -> str:
    """Send a batch one by one in this thread, each at its slot in the gateway's pace; stop and
    put the rest back when the gateway is held for long, something more urgent is due, or the
    batch has had its turn. Returns the last error's text ("" when all went)."""
    last_error = ""
    slots = turn.pace.reserve(len(deliveries))
    try:
        for index, delivery in enumerate(deliveries):
            rest = deliveries[index:]
            if turn.should_yield():
                release(rest, recorder.worker)
                break
            if turn.held_for() > 0:
                # Sending into a hold would spend the copies' attempts for nothing.
                release(rest, recorder.worker, until=_epoch(turn.held_until))
                break
            wait = slots.at(index) - time.time()
            if wait > 0:
                recorder.flush()
                time.sleep(wait)
            if not in_lease(delivery):
                continue
            gateway_id, error = send(delivery)
            if error is None:
                recorder.sent_ok(delivery, gateway_id)
                continue
            last_error = error.reason
            turn.answer(error)
            recorder.error(delivery, error)
    finally:
        recorder.flush()
    return last_error


def send_sms(
    deliveries: list[Claimed], recorder: Recorder, gateway: SmsGateway, turn: Turn | None = None
) -> str:
    """Send in this thread (a gateway that writes the database itself: the local outbox)."""
    try:
        return send_in_turn(
            deliveries,
            recorder,
            lambda delivery: send_one_sms(gateway, delivery),
            turn or _turn(Channel.SMS, gateway.name),
        )
    finally:
        gateway.close()


def _gateway_name(channel: str) -> str:
    return "email" if channel == Channel.EMAIL else sms_gateway_class().name


def _turn(channel: str, gateway: str | None = None, worker: str = "") -> Turn:
    return Turn(channel, Pace(gateway or _gateway_name(channel), rate_for(channel)), worker)


def deliver_batch(channel: str, worker: str, *, limit: int | None = None) -> int:
    """Claim, send and record one batch (as a worker's turn does, with no further claims);
    returns how many were claimed."""
    if _pipelined(channel):
        deadline = time.monotonic() + settings.HOMELINK_DELIVERY_LEASE_SECONDS
        return pipeline(channel, worker, deadline=deadline, limit=limit, once=True).claimed
    return _deliver_batch(channel, worker, limit=limit).claimed


def _pipelined(channel: str) -> bool:
    """Whether ``channel`` is sent from sender threads: all but the local outbox, which writes
    the database itself and so sends in the recording thread."""
    return channel == Channel.EMAIL or sms_gateway_class().network_only


def _start_turn(
    channel: str, worker: str, limit: int | None
) -> tuple[Turn, list[Claimed], int] | Served:
    """A turn's first claim, or what there is to say instead: the gateway is held for long
    (left alone until then), or nothing is due."""
    turn = _turn(channel, worker=worker)
    held = turn.pace.held_until()
    if held - time.time() > WAIT_AT_MOST:
        return Served(0, held)
    turn.hold_until(held)
    size = limit or turn.pace.batch_size(settings.HOMELINK_DELIVERY_BATCH)
    first = claim(channel, worker, limit=size)
    if not first:
        return Served()
    turn.priority = first[0].priority
    return turn, first, size


def _deliver_batch(channel: str, worker: str, *, limit: int | None = None) -> Served:
    """One batch through the local outbox, in this thread."""
    started = _start_turn(channel, worker, limit)
    if isinstance(started, Served):
        return started
    turn, deliveries, _size = started
    gateway = sms_gateway()
    recorder = Recorder(worker, gateway.name)
    last_error = send_sms(deliveries, recorder, gateway, turn)
    _health(recorder, last_error, turn)
    held = turn.held_until
    return Served(len(deliveries), held if held > time.time() else 0.0)


def _health(recorder: Recorder, last_error: str, turn: Turn) -> None:
    if recorder.sent:
        gateway_health_record(recorder.gateway, ok=True)
        turn.pace.recovered()
    # A copy refused for good (a mailbox that does not exist, a landline) is that recipient's
    # problem, recorded on the copy: the gateway is failing when errors may pass, or when it
    # took nothing at all.
    if last_error and (recorder.transient or not recorder.sent):
        gateway_health_record(recorder.gateway, ok=False, error=last_error)


# --- sending overlapped with the database -----------------------------------------------------


_DONE = object()
#: A sender's answer for a delivery it did not send because its lease had run out.
LEASE_LOST = GatewayError("the lease ran out before it was sent", retry=True)
#: A sender's answer for a delivery it did not send because the gateway is held.
HELD = GatewayError("the gateway is held", retry=True)


class Sender(Protocol):
    """One connection to a gateway, used by one sender thread."""

    def send(self, delivery: Claimed) -> tuple[str, GatewayError | None]: ...

    def close(self) -> None: ...


class SmsSender:
    def __init__(self, gateway: SmsGateway) -> None:
        self.gateway = gateway

    def send(self, delivery: Claimed) -> tuple[str, GatewayError | None]:
        return send_one_sms(self.gateway, delivery)

    def close(self) -> None:
        self.gateway.close()


def _sender(
    sender: Sender,
    work: queue.SimpleQueue[Claimed | None],
    results: queue.Queue[Any],
    turn: Turn,
) -> None:
    """A sender thread: one connection, no database. Answers go back in chunks (waking the
    recording thread for every message costs a thread switch each), and before any wait, so
    nothing sent waits unrecorded for a slot."""
    chunk: list[tuple[Claimed, str, GatewayError | None]] = []

    def hand_over() -> None:
        nonlocal chunk
        if chunk:
            results.put(chunk)
            chunk = []

    try:
        while True:
            try:
                delivery = work.get_nowait()
            except queue.Empty:
                hand_over()
                delivery = work.get()
            if delivery is None:
                break
            if not in_lease(delivery):
                chunk.append((delivery, "", LEASE_LOST))
                continue
            wait = delivery.not_before - time.time()
            if wait > 0:
                hand_over()
                time.sleep(wait)
                if not in_lease(delivery):
                    chunk.append((delivery, "", LEASE_LOST))
                    continue
            if turn.held_for() > 0:
                chunk.append((delivery, "", HELD))
                continue
            gateway_id, error = sender.send(delivery)
            if error is not None and error.gateway_wide:
                # The other senders stop at once; the recording thread tells every worker.
                turn.hold_until(time.time() + (error.hold or 1.0))
            chunk.append((delivery, gateway_id, error))
            if len(chunk) >= RESULTS_CHUNK:
                hand_over()
    finally:
        hand_over()
        sender.close()
        results.put(_DONE)


def _senders(channel: str) -> tuple[str, list[Sender]]:
    if channel == Channel.EMAIL:
        return "email", [EmailSender() for _ in range(EMAIL_CONNECTIONS)]
    gateways = [sms_gateway() for _ in range(max(1, settings.HOMELINK_SMS_CONNECTIONS))]
    return gateways[0].name, [SmsSender(g) for g in gateways]


def pipeline(
    channel: str, worker: str, *, deadline: float, limit: int | None = None, once: bool = False
) -> Served:
    """Sender threads, each with its own connection, send; this thread claims the next batch
    while the current one is still going out and records results as they come back, so the
    database's share of the work happens while the senders wait for the provider. It stops
    claiming when something more urgent is due elsewhere, the gateway is held for long, or
    ``deadline`` passes (``once``: after its first claim); copies claimed but not yet sent
    then go back to the queue. The
    window of sent-but-unrecorded messages a crash can leave is :func:`crash_window`."""
    started = _start_turn(channel, worker, limit)
    if isinstance(started, Served):
        return started
    turn, first, size = started
    gateway_name, senders = _senders(channel)
    recorder = Recorder(worker, gateway_name)
    work: queue.SimpleQueue[Claimed | None] = queue.SimpleQueue()
    # Bounded, so senders cannot run far ahead of what is recorded (the crash window).
    results: queue.Queue[Any] = queue.Queue(maxsize=RESULT_CHUNKS_QUEUED)
    threads = [
        threading.Thread(target=_sender, args=(sender, work, results, turn), daemon=True)
        for sender in senders
    ]

    def hand_out(batch: list[Claimed]) -> None:
        slots = turn.pace.reserve(len(batch))
        for index, delivery in enumerate(batch):
            delivery.not_before = slots.at(index)
            work.put(delivery)

    hand_out(first)
    for thread in threads:
        thread.start()
    claimed, outstanding, claiming = len(first), len(first), True
    low_water = max(1, size // 2)
    last_error = ""
    senders_done = 0

    def stop_claiming(*, early: bool) -> None:
        """No more claims: the senders stop once the queue is empty, or, ``early``, at once
        (what they have not started goes back to the queue)."""
        nonlocal claiming, outstanding
        claiming = False
        unsent: list[Claimed] = []
        if early:
            with contextlib.suppress(queue.Empty):
                while True:
                    item = work.get_nowait()
                    if item is not None:
                        unsent.append(item)
        # The senders are told to stop before anything here can fail.
        for _ in threads:
            work.put(None)
        outstanding -= len(unsent)
        held = turn.held_until
        if held > time.time():
            release(unsent, worker, until=_epoch(held), reason=HELD_REASON)
        else:
            release(unsent, worker)

    def record(chunk: list[tuple[Claimed, str, GatewayError | None]]) -> None:
        nonlocal outstanding, last_error
        held_back: list[Claimed] = []
        for delivery, gateway_id, error in chunk:
            outstanding -= 1
            if error is LEASE_LOST:
                continue  # not sent: the reaper returns it once the lease runs out
            if error is HELD:
                held_back.append(delivery)
            elif error is None:
                recorder.sent_ok(delivery, gateway_id)
            else:
                last_error = error.reason
                turn.answer(error)
                recorder.error(delivery, error)
        if held_back:
            release(held_back, worker, until=_epoch(turn.held_until), reason=HELD_REASON)

    finished = False
    try:
        if once:
            stop_claiming(early=False)
        while senders_done < len(threads):
            if claiming and (
                time.monotonic() >= deadline
                or turn.held_for() > WAIT_AT_MOST
                or turn.should_yield()
            ):
                stop_claiming(early=True)
            if claiming and outstanding <= low_water and turn.held_for() <= 0:
                size = _claim_size(size, turn, recorder.sent)
                low_water = max(1, size // 2)
                batch = claim(channel, worker, limit=size)
                if batch:
                    turn.priority = batch[0].priority
                    hand_out(batch)
                    claimed += len(batch)
                    outstanding += len(batch)
                else:
                    stop_claiming(early=False)
            try:
                chunk = results.get(timeout=CHECK_EVERY)
            except queue.Empty:
                continue
            if chunk is _DONE:
                # A sender stops after the last delivery (or, with a bug, early: what it held
                # stays claimed until its lease runs out and another worker sends it).
                senders_done += 1
                continue
            record(chunk)
        recorder.flush()
        finished = True
    finally:
        if not finished:
            _wind_down(
                stop_claiming if claiming else None, results, record, len(threads) - senders_done
            )
            with contextlib.suppress(Exception):
                recorder.flush()
        for thread in threads:
            thread.join(timeout=1)
    _health(recorder, last_error, turn)
    held = turn.held_until
    return Served(claimed, held if held > time.time() else 0.0)


def _wind_down(
    stop: Callable[..., None] | None,
    results: queue.Queue[Any],
    record: Callable[[Any], None],
    senders: int,
) -> None:
    """After an error in the recording thread: stop the senders, take in their answers (a
    sender blocked on a full queue could never end otherwise) and record what can still be
    recorded, so what they sent is not sent again once the lease runs out."""
    if stop is not None:
        with contextlib.suppress(Exception):
            stop(early=True)
    until = time.monotonic() + 5
    while senders and time.monotonic() < until:
        try:
            chunk = results.get(timeout=0.1)
        except queue.Empty:
            continue
        if chunk is _DONE:
            senders -= 1
            continue
        with contextlib.suppress(Exception):
            record(chunk)


def _claim_size(size: int, turn: Turn, sent: int) -> int:
    """The next claim's size: half a second of what this pipeline has been sending, at most
    :data:`MAX_CLAIM`. A claim costs a fixed few milliseconds, so a fast provider is served
    in bigger claims, while a slow one has little in hand (a message queued meanwhile waits
    behind no more than half a second of it). Paced, the pace's own size (a quarter of a
    second at its rate)."""
    if turn.pace.paced:
        return size
    elapsed = time.monotonic() - turn.started
    if elapsed < CHECK_EVERY or not sent:
        return size
    return max(1, min(int(sent / elapsed * 0.5), MAX_CLAIM))


# --- drain --------------------------------------------------------------------------------------


def drain(channel: str | None = None, *, seconds: float = 60.0, worker: str | None = None) -> int:
    """Send until nothing is due or ``seconds`` have passed, most urgent first across
    ``channel`` (by default every channel); returns how many deliveries this worker claimed.
    Stopping after a while lets a worker's other tasks (an import preview) have a turn."""
    worker = worker or new_worker_token()
    reap()
    deadline = time.monotonic() + seconds
    channels = [channel] if channel else list(Channel.values)
    held: dict[str, float] = {}
    claimed, last = 0, ""
    while time.monotonic() < deadline:
        now = timezone.now()
        place(now)
        waiting = [
            (head, c)
            for c in channels
            if held.get(c, 0.0) <= time.time() and (head := head_priority(c, now)) is not None
        ]
        if not waiting:
            # Only held channels left: wait out a short hold rather than end the turn.
            soon = min((until for until in held.values() if until > time.time()), default=0.0)
            if not soon or soon - time.time() > WAIT_AT_MOST:
                break
            time.sleep(max(0.0, soon - time.time()))
            continue
        best = min(head for head, _ in waiting)
        tied = [c for head, c in waiting if head == best]
        # Equal urgency: the channels take turns.
        chosen = next((c for c in tied if c != last), tied[0])
        last = chosen
        if _pipelined(chosen):
            served = pipeline(chosen, worker, deadline=deadline)
        else:
            served = _deliver_batch(chosen, worker)
        claimed += served.claimed
        if served.held_until:
            held[chosen] = served.held_until
        elif not served.claimed:
            # Due a moment ago, claimed by another worker since: look again shortly.
            held[chosen] = time.time() + CHECK_EVERY
    return claimed


def next_work_at(channel: str | None = None) -> dt.datetime | None:
    """When there will next be something to do (for ``channel``, by default any): now for due
    work, or when its gateway's hold ends; a future attempt or schedule; or the end of a live
    lease (to reap it if its worker died)."""
    times: list[dt.datetime] = []
    now = timezone.now()
    holds = dict(GatewayPace.objects.values_list("gateway", "hold_until"))
    for c in [channel] if channel else list(Channel.values):
        first = (
            Delivery.objects.filter(status=Status.QUEUED, channel=c)
            .order_by("next_attempt_at")
            .values_list("next_attempt_at", flat=True)
            .first()
        )
        if first is None:
            continue
        if first <= now:
            hold = holds.get(_gateway_name(c), 0.0)
            first = max(first, _epoch(hold)) if hold else first
        times.append(first)
    leased = Delivery.objects.filter(status=Status.SENDING)
    if channel:
        leased = leased.filter(channel=channel)
    lease_end = leased.aggregate(end=Min("lease_until"))["end"]
    if lease_end is not None:
        times.append(lease_end)
    return min(times) if times else None
