"""The outbox's workers: claim due deliveries in batches, send them, record what happened.

**Claim.** One short transaction takes up to a batch of due deliveries of one channel, urgent
first, and marks them ``sending`` with this worker's token and a lease (``SELECT … FOR UPDATE
SKIP LOCKED`` on PostgreSQL, so workers never wait on each other; on SQLite the transaction takes
the write lock at BEGIN, so the conditional update cannot race). In the same transaction, copies
for people who opted out, were held, turned the channel off or texted STOP since the message was
queued are marked ``skipped``, and copies of a message cancelled since (one a worker held at the
cancel that came back to the queue) ``cancelled``; their SMS credits are refunded.

**Send.** Email goes through one connection of the configured Django email backend per batch;
SMS through one gateway object per batch (which keeps its HTTP connection alive). Each delivery is
sent once per claim.

**Record.** Successes are written in small groups (every :data:`RECORD_EVERY` sends, and at the
end of the batch); errors at once. For SMS through a provider on the network, sender threads
(one connection each) send while this thread claims and records (:func:`pipeline_sms`). A transient error puts the delivery back in the queue with
back-off; a permanent one (or the last attempt) marks it failed with the gateway's reason.

**Crashes.** A worker that dies leaves its claimed rows ``sending`` with a lease; :func:`reap`
returns them to the queue once the lease has run out, and another worker sends them. So every
delivery is sent at least once. A worker that is alive but slow starts no send in the last
:data:`LEASE_MARGIN` of a lease, so a delivery taken over is not sent by both. *The documented
window:* a delivery the gateway accepted whose success the worker had not yet recorded when it
died (at most :func:`crash_window` per worker: 20 for email, 84 for SMS over the default four
connections) is sent again. Gateways that take an idempotency key (the generic HTTP gateway
sends one per delivery) turn that second send into a no-op, so they see no duplicate at all.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import queue
import secrets
import smtplib
import threading
import time
from dataclasses import dataclass, field
from email.utils import formataddr, make_msgid, parseaddr
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.db import connection, transaction
from django.db.models import F, Min, Q
from django.utils import timezone

from homelink.messaging import merge
from homelink.messaging.gateways import GatewayError, SmsGateway, sms_gateway, sms_gateway_class
from homelink.messaging.health import gateway_health_record
from homelink.messaging.models import Channel, Delivery, Message, SmsBlock, idempotency_key
from homelink.mis.phones import for_display
from homelink.register.models import Adult, Member
from homelink.schools.models import School

logger = logging.getLogger(__name__)

Status = Delivery.Status

#: Successes recorded per write.
RECORD_EVERY = 20
#: SMS sender threads hand answers over this many at a time, at most this many chunks waiting.
RESULTS_CHUNK = 10
RESULT_CHUNKS_QUEUED = 2


def crash_window(connections: int = 0) -> int:
    """The most messages one worker can have sent but not recorded when it is killed, all of
    which are sent again once its lease runs out: its pending successes; and when it sends
    SMS over ``connections`` sender threads, per connection a chunk being filled and the send
    in flight, and the chunks queued for recording."""
    if not connections:
        return RECORD_EVERY
    return RECORD_EVERY + connections * (RESULTS_CHUNK + 1) + RESULT_CHUNKS_QUEUED * RESULTS_CHUNK


MAX_ATTEMPTS = 6


def backoff(attempts: int) -> dt.timedelta:
    """30 s, 1, 2, 4, 8 minutes…: a gateway that is down for a while is not hammered."""
    return dt.timedelta(seconds=min(30 * 2 ** max(attempts - 1, 0), 3600))


def new_worker_token() -> str:
    return secrets.token_hex(8)


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
    "parts",
    "priority",
    "attempts",
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
    parts: int
    priority: int
    attempts: int
    message: Message = field(init=False)
    #: ``time.monotonic()`` after which this worker no longer sends it (see :func:`in_lease`).
    send_by: float = field(init=False, default=0.0)

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
    columns = ", ".join(quote(c) for c in CLAIMED)
    return (
        f"UPDATE {table} SET status = 'sending', claimed_by = %s, lease_until = %s, "  # noqa: S608
        "attempts = attempts + 1 "
        f"WHERE id IN (SELECT id FROM {table} WHERE status = 'queued' AND channel = %s "
        "AND next_attempt_at <= %s ORDER BY priority, next_attempt_at, id "
        f"LIMIT %s{lock}) RETURNING {columns}"
    )


def claim(channel: str, worker: str, *, limit: int | None = None) -> list[Claimed]:
    """Take up to ``limit`` due deliveries of ``channel`` for ``worker``; see the module doc.

    One ``UPDATE … RETURNING`` statement: the claim is the costliest step per message after
    the gateway itself, and the ORM would need three statements and a model per row twice."""
    send_by = time.monotonic() + settings.HOMELINK_DELIVERY_LEASE_SECONDS * (1 - LEASE_MARGIN)
    now = timezone.now()
    lease_until = now + dt.timedelta(seconds=settings.HOMELINK_DELIVERY_LEASE_SECONDS)
    adapt = connection.ops.adapt_datetimefield_value
    params = (
        worker,
        adapt(lease_until),
        channel,
        adapt(now),
        limit or settings.HOMELINK_DELIVERY_BATCH,
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
        claimed.sort(key=lambda d: (d.priority, d.id))
        # A batch is mostly one message: fetch each once rather than a copy per delivery.
        messages = Message.objects.select_related("school").in_bulk({d.message_id for d in claimed})
        for delivery in claimed:
            delivery.message = messages[delivery.message_id]
            delivery.send_by = send_by
        return _drop_unwanted(claimed, now)


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


def _drop_unwanted(claimed: list[Claimed], now: dt.datetime) -> list[Claimed]:
    """Skip copies nobody may receive any more, or whose message was cancelled (inside the
    claim's transaction)."""
    adult_ids = {a for d in claimed for a in d.adult_ids}
    member_ids = {d.member_id for d in claimed if d.member_id and not d.adult_ids}
    adults = {
        pk: (opted_out or held, email_off, sms_off)
        for pk, opted_out, held, email_off, sms_off in Adult.objects.filter(
            pk__in=adult_ids
        ).values_list("pk", "opted_out", "held", "email_off", "sms_off")
    }
    members_out = set(
        Member.objects.filter(pk__in=member_ids, opted_out=True).values_list("pk", flat=True)
    )
    numbers = {d.to for d in claimed if d.channel == Channel.SMS}
    # By school and number: the order of the unique index that serves the lookup.
    blocked = set(
        SmsBlock.objects.filter(
            school_id__in={d.school_id for d in claimed}, number__in=numbers
        ).values_list("school_id", "number")
    )

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
    return keep


def _refund(deliveries: list[Claimed]) -> None:
    by_message: dict[int, int] = {}
    for d in deliveries:
        if d.channel == Channel.SMS and d.parts:
            by_message[d.message_id] = by_message.get(d.message_id, 0) + d.parts
    for message_id, parts in by_message.items():
        message = Message.objects.filter(pk=message_id)
        message.update(credits_refunded=F("credits_refunded") + parts)
        School.objects.filter(messages__pk=message_id).update(sms_credits=F("sms_credits") + parts)


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
        """Record the pending successes in one transaction of two prepared statements (the
        ORM's per-row CASE costs more than the sending it records)."""
        if not self.pending:
            return
        now = connection.ops.adapt_datetimefield_value(timezone.now())
        table = connection.ops.quote_name(Delivery._meta.db_table)
        mine = [(self.gateway, gid, now, now, pk, self.worker) for pk, gid in self.pending]
        # A receipt may have arrived first and moved the row on: the time it went is filled in
        # then, and the id unless the receipt brought it.
        theirs = [(self.gateway, gid, now, pk) for pk, gid in self.pending]
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.executemany(
                f"UPDATE {table} SET status = 'sent', gateway = %s, gateway_id = %s, "  # noqa: S608
                "sent_at = %s, status_at = %s, lease_until = NULL "
                "WHERE id = %s AND status = 'sending' AND claimed_by = %s",
                mine,
            )
            cursor.executemany(
                f"UPDATE {table} SET gateway = %s, "  # noqa: S608
                "gateway_id = CASE WHEN gateway_id = '' THEN %s ELSE gateway_id END, "
                "sent_at = %s "
                "WHERE id = %s AND sent_at IS NULL AND status NOT IN ('queued', 'sending')",
                theirs,
            )
        self.pending = []

    def error(self, delivery: Claimed, error: GatewayError) -> None:
        self.flush()
        self.transient += error.retry
        now = timezone.now()
        mine = Delivery.objects.filter(
            pk=delivery.pk, status=Status.SENDING, claimed_by=self.worker
        )
        reason = error.reason[:255]
        if error.retry and delivery.attempts < MAX_ATTEMPTS:
            mine.update(
                status=Status.QUEUED,
                claimed_by="",
                lease_until=None,
                reason=reason,
                next_attempt_at=now + backoff(delivery.attempts),
            )
        else:
            if error.retry:
                reason = f"gave up after {delivery.attempts} attempts: {error.reason}"[:255]
            mine.update(
                status=Status.FAILED,
                gateway=self.gateway,
                reason=reason,
                status_at=now,
                lease_until=None,
            )


# --- send ---------------------------------------------------------------------------------------


def render_for(text: str, delivery: Claimed | Delivery) -> str:
    return merge.render(
        text,
        name=delivery.name,
        children=delivery.children,
        school=delivery.message.school.name,
    )


def email_footer(school: School) -> str:
    """What every message email ends with: who sent it and how to reach the office, below a
    signature separator ("-- "), which mail programs show as the signature."""
    lines = ["", "", "-- ", school.name]
    if school.office_phone:
        lines.append(f"School office: {for_display(school.office_phone, school.phone_region)}")
    return "\n".join(lines)


def email_for(delivery: Claimed) -> EmailMessage:
    message = delivery.message
    domain = settings.HOMELINK_EMAIL_DOMAIN
    # The school's name in front of the site's address: parents see who wrote.
    from_email = formataddr((message.school.name, parseaddr(settings.DEFAULT_FROM_EMAIL)[1]))
    return EmailMessage(
        subject=render_for(message.subject, delivery),
        body=render_for(message.email_body, delivery) + email_footer(message.school),
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
        return GatewayError(
            f"mail server said {error.smtp_code}", retry=400 <= error.smtp_code < 500
        )
    if _connection_lost(error):
        return GatewayError(f"mail server unreachable ({type(error).__name__})", retry=True)
    # Anymail's errors, and anything else a backend raises: most are the ESP being unwell.
    status = getattr(error, "status_code", None)
    retry = status is None or status >= 500 or status == 429
    return GatewayError(f"{type(error).__name__}: {str(error)[:120]}", retry=retry)


def _email_id(email: EmailMessage) -> str:
    status = getattr(email, "anymail_status", None)
    esp_id = getattr(status, "message_id", None) if status is not None else None
    if isinstance(esp_id, str) and esp_id:
        return esp_id
    return str(email.extra_headers.get("Message-ID", ""))


def send_emails(deliveries: list[Claimed], recorder: Recorder) -> str:
    """Send over one connection; returns the last error's text ("" when all went)."""
    last_error = ""
    mail = get_connection(fail_silently=False)
    try:
        mail.open()
    except Exception as error:
        gateway_error = _email_error(error)
        for delivery in deliveries:
            recorder.error(delivery, gateway_error)
        return gateway_error.reason
    try:
        for delivery in deliveries:
            if not in_lease(delivery):
                continue
            email = email_for(delivery)
            try:
                mail.send_messages([email])
            except Exception as error:
                gateway_error = _email_error(error)
                last_error = gateway_error.reason
                recorder.error(delivery, gateway_error)
                if _connection_lost(error):
                    # The connection is gone: open a new one for the rest of the batch.
                    _close_quietly(mail)
                    mail = get_connection(fail_silently=False)
                continue
            recorder.sent_ok(delivery, _email_id(email))
    finally:
        recorder.flush()
        _close_quietly(mail)
    return last_error


def _close_quietly(mail: object) -> None:
    # The batch is recorded already: a failed QUIT changes nothing.
    with contextlib.suppress(Exception):
        mail.close()  # type: ignore[attr-defined]


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
        logger.exception("SMS gateway raised %s", type(error).__name__)
        return "", GatewayError(type(error).__name__, retry=True)
    return gateway_id, None


def send_sms(deliveries: list[Claimed], recorder: Recorder, gateway: SmsGateway) -> str:
    """Send in this thread (a gateway that writes the database itself: the local outbox)."""
    last_error = ""
    try:
        for delivery in deliveries:
            if not in_lease(delivery):
                continue
            gateway_id, error = send_one_sms(gateway, delivery)
            if error is not None:
                last_error = error.reason
                recorder.error(delivery, error)
            else:
                recorder.sent_ok(delivery, gateway_id)
    finally:
        recorder.flush()
        gateway.close()
    return last_error


def deliver_batch(channel: str, worker: str, *, limit: int | None = None) -> int:
    """Claim, send and record one batch in this thread; returns how many were claimed."""
    deliveries = claim(channel, worker, limit=limit)
    if not deliveries:
        return 0
    if channel == Channel.EMAIL:
        recorder = Recorder(worker, "email")
        last_error = send_emails(deliveries, recorder)
    else:
        gateway = sms_gateway()
        recorder = Recorder(worker, gateway.name)
        last_error = send_sms(deliveries, recorder, gateway)
    _health(recorder, last_error)
    return len(deliveries)


def _health(recorder: Recorder, last_error: str) -> None:
    if recorder.sent:
        gateway_health_record(recorder.gateway, ok=True)
    # A copy refused for good (a mailbox that does not exist, a landline) is that recipient's
    # problem, recorded on the copy: the gateway is failing when errors may pass, or when it
    # took nothing at all.
    if last_error and (recorder.transient or not recorder.sent):
        gateway_health_record(recorder.gateway, ok=False, error=last_error)


# --- SMS over the network: sending overlapped with the database ------------------------------


_DONE = object()
#: A sender's answer for a delivery it did not send because its lease had run out.
LEASE_LOST = GatewayError("the lease ran out before it was sent", retry=True)


def _sms_sender(
    gateway: SmsGateway, work: queue.SimpleQueue[Claimed | None], results: queue.Queue[Any]
) -> None:
    """A sender thread: one gateway (one kept-alive connection), no database. Answers go back
    in chunks: waking the recording thread for every message costs a thread switch each."""
    chunk: list[tuple[Claimed, str, GatewayError | None]] = []
    try:
        while True:
            try:
                delivery = work.get_nowait()
            except queue.Empty:
                # Nothing more to send for now: hand over what is done before waiting.
                if chunk:
                    results.put(chunk)
                    chunk = []
                delivery = work.get()
            if delivery is None:
                break
            if not in_lease(delivery):
                chunk.append((delivery, "", LEASE_LOST))
                continue
            chunk.append((delivery, *send_one_sms(gateway, delivery)))
            if len(chunk) >= RESULTS_CHUNK:
                results.put(chunk)
                chunk = []
    finally:
        if chunk:
            results.put(chunk)
        gateway.close()
        results.put(_DONE)


def pipeline_sms(worker: str, *, deadline: float) -> int:
    """Drain SMS through a gateway that only talks to the network (Twilio, generic HTTP).

    Sender threads, each with its own gateway and connection, send; this thread claims the next
    batch while the current one is still going out and records results as they come back, so
    the database's share of the work happens while the senders wait for the provider. Returns
    how many deliveries were claimed. The window of sent-but-unrecorded messages a crash can
    leave is :func:`crash_window`.
    """
    first = claim(Channel.SMS, worker)
    if not first:
        return 0
    gateways = [sms_gateway() for _ in range(max(1, settings.HOMELINK_SMS_CONNECTIONS))]
    recorder = Recorder(worker, gateways[0].name)
    work: queue.SimpleQueue[Claimed | None] = queue.SimpleQueue()
    # Bounded, so senders cannot run far ahead of what is recorded (the crash window).
    results: queue.Queue[Any] = queue.Queue(maxsize=RESULT_CHUNKS_QUEUED)
    threads = [
        threading.Thread(target=_sms_sender, args=(g, work, results), daemon=True) for g in gateways
    ]
    for delivery in first:
        work.put(delivery)
    for thread in threads:
        thread.start()
    claimed, outstanding, more = len(first), len(first), True
    low_water = max(1, len(first) // 2)
    last_error = ""
    senders_done = 0
    try:
        while senders_done < len(threads):
            if more and outstanding <= low_water:
                batch = claim(Channel.SMS, worker) if time.monotonic() < deadline else []
                for delivery in batch:
                    work.put(delivery)
                claimed += len(batch)
                outstanding += len(batch)
                more = bool(batch)
                if not more:
                    # Nothing more to claim: the senders stop once the queue is empty.
                    for _ in threads:
                        work.put(None)
            if not outstanding and more:
                continue
            chunk = results.get()
            if chunk is _DONE:
                # A sender stops after the last delivery (or, with a bug, early: what it held
                # stays claimed until its lease runs out and another worker sends it).
                senders_done += 1
                continue
            for delivery, gateway_id, error in chunk:
                outstanding -= 1
                if error is LEASE_LOST:
                    continue  # not sent: the reaper returns it once the lease runs out
                if error is None:
                    recorder.sent_ok(delivery, gateway_id)
                else:
                    last_error = error.reason
                    recorder.error(delivery, error)
    finally:
        recorder.flush()
        if more:  # left early by an exception: stop the senders without waiting on them
            for _ in threads:
                work.put(None)
        for thread in threads:
            thread.join(timeout=1)
    _health(recorder, last_error)
    return claimed


# --- drain --------------------------------------------------------------------------------------


def drain(channel: str, *, seconds: float = 60.0, worker: str | None = None) -> int:
    """Send batches of ``channel`` until none is due or ``seconds`` have passed; returns how
    many deliveries this worker claimed. Stopping after a while lets a worker's other tasks (an
    import preview) have a turn."""
    worker = worker or new_worker_token()
    reap()
    deadline = time.monotonic() + seconds
    if channel == Channel.SMS and sms_gateway_class().network_only:
        return pipeline_sms(worker, deadline=deadline)
    claimed = 0
    while time.monotonic() < deadline:
        taken = deliver_batch(channel, worker)
        if not taken:
            break
        claimed += taken
    return claimed


def next_work_at(channel: str) -> dt.datetime | None:
    """When there will next be something to do for ``channel``: now for due work, a future
    attempt or schedule, or the end of a live lease (to reap it if its worker died)."""
    pending = Delivery.objects.filter(channel=channel).filter(
        Q(status=Status.QUEUED) | Q(status=Status.SENDING)
    )
    found = pending.aggregate(
        queued=Min("next_attempt_at", filter=Q(status=Status.QUEUED)),
        leased=Min("lease_until", filter=Q(status=Status.SENDING)),
    )
    times = [t for t in (found["queued"], found["leased"]) if t is not None]
    return min(times) if times else None
