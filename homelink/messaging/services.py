"""Writes about messages: preview (reads only), send, cancel, the school's templates, and the
record of a download of a message's recipients.

``message_send`` is the one way a message enters the outbox — the console, the CLI and the tests
all call it. In one transaction it resolves the audience as the register is at that moment,
charges the SMS credits with a conditional update (a school's credits cannot go negative, however
many sends race), and writes the message with one delivery row per copy; the workers are woken
only after the commit.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import F, Field
from django.utils import timezone

from homelink.audit.services import audit_record
from homelink.messaging import merge
from homelink.messaging.audience import Audience, AudienceError, Copy, Resolved, resolve
from homelink.messaging.lanes import first_lane
from homelink.messaging.models import Channel, Delivery, Message, Template
from homelink.messaging.sms import SmsSize, sms_size
from homelink.schools.models import School
from homelink.staff.actor import Actor, actor_parts
from homelink.trusts.models import Trust

if TYPE_CHECKING:
    from homelink.privacy.notices import NoticePlan

#: A chosen time this close to now counts as now (a form filled in over a minute boundary).
SCHEDULE_SLACK = dt.timedelta(minutes=1)
MAX_SMS_LENGTH = 918  # six GSM-7 parts: a school text longer than that is a mistake


class SendError(ValidationError):
    """Why a send was refused; nothing was written."""


class NeedsConfirmation(SendError):
    def __init__(self, count: int, threshold: int) -> None:
        self.count = count
        super().__init__(
            f"This sends {count:,} messages, more than {threshold:,}: confirm the large send."
        )


class NotEnoughCredits(SendError):
    def __init__(self, needed: int, available: int) -> None:
        self.needed = needed
        self.available = available
        super().__init__(
            f"This needs {needed:,} SMS credits and the school has {available:,}: "
            "buy more credits, shorten the text or send by email."
        )


@dataclass(frozen=True)
class Draft:
    """What staff wrote, before it becomes a message."""

    mode: str
    audience: Audience
    subject: str = ""
    email_body: str = ""
    sms_text: str = ""
    urgent: bool = False
    send_at: dt.datetime | None = None

    @property
    def uses_sms(self) -> bool:
        return self.mode != Message.Mode.EMAIL

    @property
    def uses_email(self) -> bool:
        return self.mode != Message.Mode.SMS


@dataclass
class Preview:
    """What a send would do, shown before staff confirm it (and printed by ``homelink send``)."""

    resolved: Resolved
    sms_count: int
    email_count: int
    credits: int
    parts_min: int
    parts_max: int
    #: The text as written: its encoding, parts, and the characters that force UCS-2.
    text_size: SmsSize
    #: Copies that names (a "Zoë") turned into UCS-2 although the text is GSM-7.
    ucs2_by_names: int
    credits_available: int
    threshold: int
    #: The privacy notice that goes first to adults from the MIS not yet told
    #: (``privacy.notices``): its copies and credits come on top of the message's.
    notices: NoticePlan | None = None

    @property
    def notice_credits(self) -> int:
        return self.notices.credits if self.notices is not None else 0

    @property
    def total(self) -> int:
        return self.sms_count + self.email_count

    @property
    def needs_confirmation(self) -> bool:
        return self.total > self.threshold

    @property
    def enough_credits(self) -> bool:
        return self.credits + self.notice_credits <= self.credits_available

    def as_json(self) -> dict[str, Any]:
        notices = {"privacy_notices": self.notices.as_json()} if self.notices is not None else {}
        return {
            # Everyone the audience names: those reached plus those left out, by reason.
            "recipients": self.resolved.people,
            "reached": self.resolved.reached,
            "left_out": self.resolved.left_out_counts(),
            "messages": self.total,
            "sms": self.sms_count,
            "email": self.email_count,
            "sms_parts": {"min": self.parts_min, "max": self.parts_max},
            "encoding": self.text_size.encoding,
            "ucs2_characters": list(self.text_size.ucs2_chars),
            "credits": self.credits,
            "credits_available": self.credits_available,
            "unreachable": len(self.resolved.unreachable),
            "needs_confirmation": self.needs_confirmation,
            **notices,
        }


def check_draft(draft: Draft) -> None:
    """What in a draft cannot be sent as written (texts, merge fields, the channel), by field."""
    errors: dict[str, str] = {}
    if draft.uses_sms:
        if not draft.sms_text.strip():
            errors["sms_text"] = "Write the SMS text."
        elif len(draft.sms_text) > MAX_SMS_LENGTH:
            errors["sms_text"] = f"An SMS can be at most {MAX_SMS_LENGTH} characters."
    if draft.uses_email:
        if not draft.subject.strip():
            errors["subject"] = "Write the email's subject."
        if not draft.email_body.strip():
            errors["email_body"] = "Write the email."
    for name in ("subject", "email_body", "sms_text"):
        if name not in errors:
            try:
                merge.check(getattr(draft, name))
            except merge.MergeError as error:
                errors[name] = str(error)
    if draft.mode not in Message.Mode.values:
        errors["mode"] = "Choose how to send."
    if errors:
        raise SendError(errors)


def _sizes(copies: list[Copy], draft: Draft, school: School) -> list[SmsSize | None]:
    """Each copy's SMS as it will be sent (None for an email copy): rendered once each, for
    both its parts and whether a name forced UCS-2."""
    if not merge.uses_fields(draft.sms_text):
        size = sms_size(draft.sms_text)
        return [size if c.channel == Channel.SMS else None for c in copies]
    return [
        sms_size(merge.render(draft.sms_text, name=c.name, children=c.children, school=school.name))
        if c.channel == Channel.SMS
        else None
        for c in copies
    ]


def _preview(school: School, draft: Draft) -> tuple[Preview, list[int]]:
    # Data protection sits above messaging, and hooks in here and in message_send.
    from homelink.privacy import notices

    check_draft(draft)
    try:
        resolved = resolve(school, draft.audience, draft.mode)
    except AudienceError as error:
        raise SendError({"audience": str(error)}) from error
    sizes = _sizes(resolved.copies, draft, school)
    sms_sizes = [size for size in sizes if size is not None]
    sms_parts = [size.parts for size in sms_sizes]
    text_size = sms_size(draft.sms_text) if draft.uses_sms else sms_size("")
    ucs2_by_names = 0
    if text_size.encoding == "GSM-7":
        ucs2_by_names = sum(1 for size in sms_sizes if size.encoding == "UCS-2")
    preview = Preview(
        resolved=resolved,
        sms_count=len(sms_parts),
        email_count=resolved.count(Channel.EMAIL),
        credits=sum(sms_parts),
        parts_min=min(sms_parts, default=0),
        parts_max=max(sms_parts, default=0),
        text_size=text_size,
        ucs2_by_names=ucs2_by_names,
        credits_available=school.sms_credits,
        threshold=school.large_send_threshold,
        notices=notices.first_contact_plan(
            school, {a for c in resolved.copies for a in c.adult_ids}
        )
        if notices.enabled()
        else None,
    )
    return preview, [size.parts if size is not None else 0 for size in sizes]


def message_preview(*, school: School, draft: Draft) -> Preview:
    """What sending ``draft`` now would do; raises :class:`SendError` for a draft that cannot be
    sent as written."""
    preview, _ = _preview(school, draft)
    return preview


def _send_at(draft: Draft, now: dt.datetime) -> dt.datetime:
    if draft.send_at is None:
        return now
    if draft.send_at < now - SCHEDULE_SLACK:
        raise SendError({"send_at": "That time has passed: choose a later one, or send now."})
    return max(draft.send_at, now)


def message_send(
    *,
    school: School,
    draft: Draft,
    actor: Actor,
    confirmed_large: bool = False,
    confirmed_up_to: int | None = None,
    via: str = "console",
) -> Message:
    """Queue ``draft`` for delivery (or schedule it); see the module's docstring.

    A send over the school's threshold needs ``confirmed_large`` (any size: ``homelink send
    --yes``) or ``confirmed_up_to``, the count staff were shown and confirmed: if the audience
    has grown past it since, they are asked again."""
    now = timezone.now()
    send_at = _send_at(draft, now)
    from homelink.privacy.notices import NotEnoughCreditsForNotice, first_contact_queue

    label, actor_id = actor_parts(actor)
    with transaction.atomic():
        preview, parts = _preview(school, draft)
        if not preview.total:
            raise SendError({"audience": "Nobody in this audience can be reached that way."})
        confirmed = confirmed_large or (
            confirmed_up_to is not None and preview.total <= confirmed_up_to
        )
        if preview.needs_confirmation and not confirmed:
            raise NeedsConfirmation(preview.total, preview.threshold)
        if preview.credits:
            charged = School.objects.filter(pk=school.pk, sms_credits__gte=preview.credits).update(
                sms_credits=F("sms_credits") - preview.credits
            )
            if not charged:
                available = School.objects.values_list("sms_credits", flat=True).get(pk=school.pk)
                raise NotEnoughCredits(preview.credits, available)
        message = Message.objects.create(
            school=school,
            created_by_id=actor_id,
            mode=draft.mode,
            audience=draft.audience.to_json(),
            audience_label=draft.audience.label()[:255],
            subject=draft.subject if draft.uses_email else "",
            email_body=draft.email_body if draft.uses_email else "",
            sms_text=draft.sms_text if draft.uses_sms else "",
            sms_sender=school.sms_sender,
            urgent=draft.urgent,
            send_at=send_at,
            sms_count=preview.sms_count,
            email_count=preview.email_count,
            credits_charged=preview.credits,
            unreachable_count=len(preview.resolved.unreachable),
        )
        insert_deliveries(
            message=message,
            copies=preview.resolved.copies,
            parts=parts,
            priority=Delivery.URGENT if draft.urgent else Delivery.BULK,
        )
        if preview.notices is not None:
            try:
                # Adults from the MIS never told how the school uses their details are sent
                # its privacy notice first, in this transaction; dispatch holds their copies
                # of this message until theirs has gone.
                first_contact_queue(
                    school=school,
                    actor=actor,
                    via=via,
                    adult_ids={a for c in preview.resolved.copies for a in c.adult_ids},
                )
            except NotEnoughCreditsForNotice as error:
                raise NotEnoughCredits(
                    preview.credits + error.needed, error.available + preview.credits
                ) from error
        audit_record(
            school=school,
            actor_label=label,
            actor_id=actor_id,
            action="message.queued",
            obj=message,
            detail={
                "via": via,
                "mode": message.mode,
                "sms": message.sms_count,
                "email": message.email_count,
                "credits": message.credits_charged,
                "urgent": message.urgent,
                "scheduled": send_at > now + SCHEDULE_SLACK,
            },
        )
        message_id = message.pk
        transaction.on_commit(lambda: _wake_workers(message_id))
    return message


def _column(name: str) -> str:
    field = Delivery._meta.get_field(name)
    assert isinstance(field, Field) and field.column
    return field.column


class CopyLike(Protocol):
    """What a delivery row is made from: an audience's copy, or a privacy notice's."""

    @property
    def channel(self) -> str: ...
    @property
    def to(self) -> str: ...
    @property
    def adult_ids(self) -> list[int]: ...
    @property
    def member_ids(self) -> list[int]: ...
    @property
    def name(self) -> str: ...
    @property
    def children(self) -> str: ...


#: The columns a delivery row is written with, in order (the rest keep their defaults).
_INSERT_FIELDS = (
    "message",
    "school",
    "channel",
    "to",
    "adult",
    "member",
    "adult_ids",
    "name",
    "children",
    "schools",
    "parts",
    "priority",
    "lane",
    "status",
    "next_attempt_at",
    "attempts",
    "unanswered",
    "refused",
    "claimed_by",
    "gateway",
    "gateway_id",
    "reason",
)


def insert_deliveries(
    *, message: Message, copies: Sequence[CopyLike], parts: list[int], priority: int
) -> None:
    """One row per copy, written the fastest way each database has (COPY on PostgreSQL, one
    prepared INSERT run for every row on SQLite): a send to 10,000 people is queued in well
    under a second, where ``bulk_create`` spends longer than that building SQL."""
    _write_rows(_delivery_rows(message, copies, parts, _lanes(message, copies, priority), priority))


def insert_delivery_batches(
    batches: Sequence[tuple[Message, Sequence[CopyLike], list[int]]], *, priority: int
) -> None:
    """Several messages' copies in one statement: a trust-wide send, one message per school.
    Their lanes (when due now) are one sequence per channel that takes the messages' copies in
    turn, so every school's families start receiving at once, and the send as a whole shares
    the queue with other schools' messages as one message does (:mod:`messaging.lanes`)."""
    if not batches:
        return
    now = timezone.now()
    due = [m.send_at <= now for m, _c, _p in batches]
    channels = {c.channel for _m, copies, _p in batches for c in copies}
    next_lane = {channel: first_lane(channel, priority, now) for channel in channels}
    lanes: list[list[int | None]] = [[None] * len(copies) for _m, copies, _p in batches]
    # Round robin over the messages: the first copy of each, then the second of each, …
    longest = max(len(copies) for _m, copies, _p in batches)
    for index in range(longest):
        for number, (_message, copies, _parts) in enumerate(batches):
            if index < len(copies) and due[number]:
                channel = copies[index].channel
                lanes[number][index] = next_lane[channel]
                next_lane[channel] += 1
    _write_rows(
        row
        for (message, copies, parts), message_lanes in zip(batches, lanes, strict=True)
        for row in _delivery_rows(message, copies, parts, message_lanes, priority)
    )


def _delivery_rows(
    message: Message,
    copies: Sequence[CopyLike],
    parts: list[int],
    lanes: Sequence[int | None],
    priority: int,
) -> Iterator[tuple[Any, ...]]:
    json_field = Delivery._meta.get_field("adult_ids")
    when = connection.ops.adapt_datetimefield_value(message.send_at)
    for copy, copy_parts, lane in zip(copies, parts, lanes, strict=True):
        # Only a trust-wide send's copies can stand for several schools' families.
        schools = getattr(copy, "schools", None)
        yield (
            message.pk,
            message.school_id,
            copy.channel,
            copy.to,
            copy.adult_ids[0] if copy.adult_ids else None,
            copy.member_ids[0] if copy.member_ids else None,
            json_field.get_db_prep_save(copy.adult_ids, connection),
            copy.name[:255],
            copy.children[:1000],
            json_field.get_db_prep_save(schools, connection) if schools else None,
            copy_parts,
            priority,
            lane,
            Delivery.Status.QUEUED,
            when,
            0,
            0,
            0,
            "",
            "",
            "",
            "",
        )


def _write_rows(rows: Iterable[tuple[Any, ...]]) -> None:
    quote = connection.ops.quote_name
    columns = ", ".join(quote(_column(f)) for f in _INSERT_FIELDS)
    placeholders = ", ".join(["%s"] * len(_INSERT_FIELDS))
    table = quote(Delivery._meta.db_table)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # COPY: one stream for every row (a statement per row costs a round trip each,
            # and psycopg spends longer parsing a many-row VALUES than the server storing it).
            with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            # Table and column names come from the model, never from input.
            cursor.executemany(
                f"INSERT INTO {table} ({columns}) VALUES ({placeholders})",  # noqa: S608
                list(rows),
            )


def _lanes(message: Message, copies: Sequence[CopyLike], priority: int) -> list[int | None]:
    """Each copy's place in the fair-share order (``messaging.lanes``): consecutive per channel
    from where that channel's queue stands now; none yet for a scheduled message, which is
    placed when its time comes."""
    now = timezone.now()
    if message.send_at > now:
        return [None] * len(copies)
    next_lane = {
        channel: first_lane(channel, priority, now) for channel in {c.channel for c in copies}
    }
    lanes: list[int | None] = []
    for copy in copies:
        lanes.append(next_lane[copy.channel])
        next_lane[copy.channel] += 1
    return lanes


def _wake_workers(message_id: int) -> None:
    from homelink.messaging.tasks import wake_for_message

    wake_for_message(message_id)


#: Why the privacy notice has no cancel button: what the school must send before its messages.
NOTICE_NOT_CANCELLED = (
    "A privacy notice cannot be cancelled: the school must tell these parents how it uses "
    "their details before its messages reach them, and those messages wait for it."
)


def message_cancel(*, message: Message, actor: Actor) -> int:
    """Cancel what of ``message`` has not gone yet; refunds its SMS credits. Copies a worker has
    already taken are not recalled (they are at the gateway, or about to be). Returns how many
    copies were cancelled. A privacy notice cannot be cancelled (:data:`NOTICE_NOT_CANCELLED`)."""
    if message.kind == Message.Kind.NOTICE:
        # The school's messages to these adults wait for it (privacy.notices): every one of
        # them must be told before those reach them.
        raise SendError(NOTICE_NOT_CANCELLED)
    label, actor_id = actor_parts(actor)
    now = timezone.now()
    with transaction.atomic():
        # The deliveries first, then the message: the order a worker's claim takes them in
        # (it notes a skipped copy's refund on the message), so the two never deadlock.
        cancelled, refund = _cancel_queued(message.pk, now)
        locked = Message.objects.select_for_update().get(pk=message.pk)
        if locked.status == Message.Status.CANCELLED:
            # Nothing is written: the transaction rolls back whatever was cancelled just now
            # (a copy back in the queue, which the next claim cancels and refunds anyway).
            raise SendError("This message was already cancelled.")
        if not cancelled:
            raise SendError("Everything in this message has been sent already.")
        if refund:
            refund_credits(locked, refund)
        locked.status = Message.Status.CANCELLED
        locked.cancelled_at = now
        locked.cancelled_by_id = actor_id
        locked.credits_refunded = F("credits_refunded") + refund
        locked.save(update_fields=["status", "cancelled_at", "cancelled_by", "credits_refunded"])
        audit_record(
            school=locked.school,
            actor_label=label,
            actor_id=actor_id,
            action="message.cancelled",
            obj=locked,
            detail={"cancelled": cancelled, "credits_refunded": refund},
        )
    message.refresh_from_db()
    return cancelled


def refund_credits(message: Message, parts: int) -> None:
    """Give ``parts`` SMS credits back to whoever paid for ``message``: its school, or the
    trust whose pool paid a trust-wide send (its school once that pool has been closed: a
    closed pool holds nothing, and the credits must land somewhere)."""
    if message.credits_trust_id is not None and (
        Trust.objects.filter(pk=message.credits_trust_id, sms_credits__isnull=False).update(
            sms_credits=F("sms_credits") + parts
        )
    ):
        return
    School.objects.filter(pk=message.school_id).update(sms_credits=F("sms_credits") + parts)


def _cancel_queued(message_id: int, now: dt.datetime) -> tuple[int, int]:
    """Cancel the message's copies no worker has taken: how many, and their SMS parts.

    One ``UPDATE … RETURNING``, so the refund is exactly what this statement cancelled: a
    worker's claim that commits meanwhile takes its copies out of the update (PostgreSQL
    re-checks a row's status once the claim's lock is released), and they go, charged."""
    quote = connection.ops.quote_name
    status, channel, parts = (quote(_column(f)) for f in ("status", "channel", "parts"))
    # Table and column names come from the model, never from input.
    sql = (
        f"UPDATE {quote(Delivery._meta.db_table)} SET {status} = %s, "  # noqa: S608
        f"{quote(_column('status_at'))} = %s, {quote(_column('reason'))} = %s "
        f"WHERE {quote(_column('message'))} = %s AND {status} = %s RETURNING {channel}, {parts}"
    )
    params = (
        Delivery.Status.CANCELLED,
        connection.ops.adapt_datetimefield_value(now),
        "cancelled by staff",
        message_id,
        Delivery.Status.QUEUED,
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return len(rows), sum(p for c, p in rows if c == Channel.SMS)


def credits_add(*, school: School, amount: int, actor: Actor) -> int:
    """Add (or, with a negative amount, remove) SMS credits; never below zero. Returns the new
    balance."""
    label, actor_id = actor_parts(actor)
    with transaction.atomic():
        locked = School.objects.select_for_update().get(pk=school.pk)
        if locked.sms_credits + amount < 0:
            raise ValidationError(
                f"The school has {locked.sms_credits:,} credits: cannot remove {-amount:,}."
            )
        locked.sms_credits += amount
        locked.save(update_fields=["sms_credits"])
        audit_record(
            school=locked,
            actor_label=label,
            actor_id=actor_id,
            action="school.sms_credits_changed",
            obj=locked,
            detail={"change": amount, "balance": locked.sms_credits},
        )
    school.sms_credits = locked.sms_credits
    return locked.sms_credits


# --- templates ----------------------------------------------------------------------------------


def template_save(
    *,
    school: School,
    name: str,
    subject: str = "",
    email_body: str = "",
    sms_text: str = "",
    template: Template | None = None,
    actor: Actor,
) -> Template:
    errors: dict[str, str] = {}
    if not name.strip():
        errors["name"] = "Give the template a name."
    for field_name, text in (
        ("subject", subject),
        ("email_body", email_body),
        ("sms_text", sms_text),
    ):
        try:
            merge.check(text)
        except merge.MergeError as error:
            errors[field_name] = str(error)
    if errors:
        raise ValidationError(errors)
    label, actor_id = actor_parts(actor)
    with transaction.atomic():
        clash = Template.objects.filter(school=school, name=name.strip())
        if template is not None:
            clash = clash.exclude(pk=template.pk)
        if clash.exists():
            raise ValidationError({"name": "The school has a template with that name already."})
        saved = template or Template(school=school)
        saved.name = name.strip()
        saved.subject = subject
        saved.email_body = email_body
        saved.sms_text = sms_text
        saved.save()
        audit_record(
            school=school,
            actor_label=label,
            actor_id=actor_id,
            action="template.saved",
            obj=saved,
        )
    return saved


def template_delete(*, template: Template, actor: Actor) -> None:
    label, actor_id = actor_parts(actor)
    with transaction.atomic():
        audit_record(
            school=template.school,
            actor_label=label,
            actor_id=actor_id,
            action="template.deleted",
            obj=template,
        )
        template.delete()


def message_export_record(*, message: Message, rows: int, actor: Actor) -> None:
    """Record that a message's recipients (names, numbers, addresses) left the system as a
    file: who took them, and how many rows."""
    label, actor_id = actor_parts(actor)
    with transaction.atomic():
        audit_record(
            school=message.school,
            actor_label=label,
            actor_id=actor_id,
            action="message.deliveries_exported",
            obj=message,
            detail={"rows": rows, "format": "csv"},
        )
