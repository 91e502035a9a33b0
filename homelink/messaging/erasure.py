"""What the outbox forgets when a school erases a person (issue 13, :mod:`homelink.privacy.erasure`).

Messages already sent keep their counts, not the person: the delivery rows stay, with their
channel, status and times, so a message's report still adds up; the address, the name it greeted
and a gateway's reason that may quote the address are blanked. Replies the person texted lose
their number and their words. Numbers that texted STOP stay blocked (:class:`SmsBlock` is the
list of numbers never to text again, which is what the person asked for).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.db.models import Case, F, Q, QuerySet, TextField, Value, When
from django.db.models.functions import Cast
from django.utils import timezone

from homelink.messaging.merge import list_names
from homelink.messaging.models import Channel, Delivery, InboundSms, Message, OutboxMessage, Status
from homelink.messaging.services import refund_credits
from homelink.register.models import Adult, Link, Member
from homelink.schools.models import School

#: What a blanked reply says instead of the person's words.
ERASED_TEXT = ""
SKIPPED_REASON = "the person's data was erased at their request"


@dataclass(frozen=True)
class Forgotten:
    #: Copies blanked (sent, delivered, failed…), replies blanked, queued copies skipped.
    deliveries: int
    replies: int
    skipped: int


def copies_forget_person(*, school: School, adult_id: int, email: str, mobile: str) -> Forgotten:
    """Blank the school's copies to this adult, or to their email or mobile, and their replies.
    Call inside the erasure's transaction, before the adult row is deleted.

    A copy still queued for them alone is skipped now (its SMS credits refunded, as the claim
    does for someone who opted out). One queued or being sent for a shared number or address
    still goes to the others, but stops standing for them: their id leaves its ``adult_ids``
    and it greets only the others. One a worker is sending to them alone at this moment is left
    to finish: the worker blanks it as it records the result (:func:`forget_if_gone`), and if
    it comes back to the queue the claim skips it (nobody left to receive it)."""
    now = timezone.now()
    with transaction.atomic():
        to_them = Q(adult_id=adult_id)
        if email:
            to_them |= Q(channel=Channel.EMAIL, to=email)
        if mobile:
            to_them |= Q(channel=Channel.SMS, to=mobile)
        # A trust-wide send's copy that stood for them and for families of other schools of
        # the trust (held under whichever school's message sent it): it loses them alone.
        shared = shared_copies_of(adult_id)
        shared_ids = list(shared.values_list("pk", flat=True))
        copies = Delivery.objects.filter(to_them, school=school).exclude(pk__in=shared_ids)
        queued: list[tuple[int, int, str, int]] = []
        for pk, message_id, channel, parts, adults, member_id, status in copies.filter(
            status__in=(Status.QUEUED, Status.SENDING)
        ).values_list("pk", "message_id", "channel", "parts", "adult_ids", "member_id", "status"):
            others = [a for a in adults or [] if a != adult_id]
            if adult_id in (adults or []) and (others or member_id is not None):
                _stand_for_others(pk, others, member_id)
            elif not others and member_id is None and status == Status.QUEUED:
                # Theirs alone (or found by their address and standing for nobody else).
                queued.append((pk, message_id, channel, parts))
        deliveries = 0
        for pk, message_id, channel, parts, status in Delivery.objects.filter(
            pk__in=shared_ids
        ).values_list("pk", "message_id", "channel", "parts", "status"):
            left = _leave_shared(pk, adult_id)
            if status not in (Status.QUEUED, Status.SENDING):
                deliveries += 1
            elif not left and status == Status.QUEUED:
                # It stands for nobody else any more: not sent at all, like a copy theirs alone.
                queued.append((pk, message_id, channel, parts))
        skipped = Delivery.objects.filter(
            pk__in=[pk for pk, *_ in queued], status=Status.QUEUED
        ).update(status=Status.SKIPPED, reason=SKIPPED_REASON, status_at=now, lease_until=None)
        if skipped:
            refunds: dict[int, int] = {}
            for _pk, message_id, channel, parts in queued:
                if channel == Channel.SMS and parts:
                    refunds[message_id] = refunds.get(message_id, 0) + parts
            paid = Message.objects.only("school_id", "credits_trust_id").in_bulk(list(refunds))
            for message_id, parts in refunds.items():
                Message.objects.filter(pk=message_id).update(
                    credits_refunded=F("credits_refunded") + parts
                )
                # To the school, or to the trust whose pool paid a trust-wide send.
                refund_credits(paid[message_id], parts)
        done = copies.exclude(status__in=(Status.QUEUED, Status.SENDING))
        # A gateway's reason may quote the address (a bounce): blank it where it does.
        for address in (a for a in (email, mobile) if a):
            done.filter(reason__contains=address).update(reason="")
        deliveries += done.update(to="", name="")
        theirs = Q(adult_id=adult_id)
        if mobile:
            theirs |= Q(from_number=mobile)
        replies = InboundSms.objects.filter(theirs, school=school).update(
            from_number="", text=ERASED_TEXT
        )
        # The development outbox keeps what it would have sent: the same copies.
        addresses = [a for a in (email, mobile) if a]
        if addresses:
            # Its writers (the outbox gateway and email backend) know no school: rows without
            # one are this install's development outbox, shared by its schools.
            OutboxMessage.objects.filter(
                Q(school=school) | Q(school__isnull=True), to__in=addresses
            ).delete()
    return Forgotten(deliveries=deliveries, replies=replies, skipped=skipped)


def _stand_for_others(pk: int, others: list[int], member_id: int | None) -> None:
    """A shared copy, queued or in a worker's hands, stops standing for the erased adult: it
    greets the others only (a worker already sending it keeps what it read; a retry reads this)."""
    names = {
        pk_: f"{forename} {surname}".strip()
        for pk_, forename, surname in Adult.objects.filter(pk__in=others).values_list(
            "pk", "forename", "surname"
        )
    }
    people = [names[a] for a in others if a in names]
    if member_id is not None:
        member = Member.objects.filter(pk=member_id).values_list("forename", "surname").first()
        if member is not None:
            people.append(f"{member[0]} {member[1]}".strip())
    Delivery.objects.filter(pk=pk).update(
        adult_ids=others,
        adult_id=others[0] if others else None,
        name=list_names(list(dict.fromkeys(people)))[:255],
    )


def shared_copies_of(adult_id: int) -> QuerySet[Delivery]:
    """Trust-wide sends' copies, of any school of the trust, that stand for this adult among
    families of several schools (their id in ``adult_ids``)."""
    shared = Delivery.objects.filter(schools__isnull=False)
    if connection.features.supports_json_field_contains:
        return shared.filter(adult_ids__contains=[adult_id])
    # SQLite has no JSON containment: the id as a whole number in the list's text.
    return shared.annotate(ids_text=Cast("adult_ids", output_field=TextField())).filter(
        ids_text__regex=rf"(^|[^0-9]){adult_id}([^0-9]|$)"
    )


def _leave_shared(pk: int, adult_id: int) -> bool:
    """Take the adult out of a shared copy: their id (from ``adult_ids`` and their school's entry
    of ``schools``), their name from its greeting and their children from those it names, so
    it keeps only the others it stood for. Returns whether someone else is left on it. One
    nobody is left on loses its address too, unless a worker holds it (the worker blanks it as
    it records the result, :func:`forget_if_gone`)."""
    row = (
        Delivery.objects.select_for_update()
        .filter(pk=pk)
        .values_list("adult_ids", "member_id", "schools", "name", "children", "status")
        .first()
    )
    if row is None:
        return False
    adults, member_id, schools, name, children, status = row
    others = [a for a in adults or [] if a != adult_id]
    entries = []
    for entry in schools or []:
        entry = dict(entry)
        entry["adults"] = [a for a in entry.get("adults") or [] if a != adult_id]
        entry_members = entry.get("members") or []
        # An unsent copy no longer ends with the notice and stop link of a school it is for
        # nobody at; a sent one keeps saying which schools it was about.
        if status == Status.QUEUED and not entry["adults"] and not entry_members:
            continue
        entries.append(entry)
    member_ids = [m for e in entries for m in e.get("members") or []]
    left = bool(others or member_ids or member_id is not None)
    people = {
        f"{forename} {surname}".strip()
        for forename, surname in Adult.objects.filter(pk__in=others).values_list(
            "forename", "surname"
        )
    } | {
        f"{forename} {surname}".strip()
        for forename, surname in Member.objects.filter(pk__in=member_ids).values_list(
            "forename", "surname"
        )
    }
    # Of what it said, only what stands for the others: a name or a child they share with
    # the erased person (the same parent in two schools' registers) stays.
    pupils = set(
        Link.objects.filter(adult_id__in=others).values_list("student__forename", flat=True)
    )
    changes: dict[str, Any] = {
        "adult_ids": others,
        "adult_id": others[0] if others else None,
        "schools": entries,
        "name": list_names([n for n in dict.fromkeys(_LIST_SPLIT.split(name)) if n in people]),
        "children": list_names(
            [c for c in dict.fromkeys(_LIST_SPLIT.split(children)) if c in pupils]
        ),
    }
    if not left and status != Status.SENDING:
        changes["to"] = ""
    Delivery.objects.filter(pk=pk).update(**changes)
    return left


#: How a stored greeting or list of children ("Amy, Ben and Cara") splits into its names.
_LIST_SPLIT = re.compile(r", | and ")


def forget_if_gone(ids: Collection[int]) -> int:
    """Blank the address and greeting of those copies (just recorded by a worker) that
    reached a final status after the person they were for was erased: no adult and no member
    left on the copy; and a failure's reason, which a gateway may write with the address in it.
    A worker sending the copy at the moment of erasure (:func:`copies_forget_person` leaves it
    to finish) calls this as it records the result, so the address goes then rather than
    staying for the messages' retention period. One statement for the whole set."""
    if not ids:
        return 0
    return (
        Delivery.objects.filter(pk__in=list(ids), adult_id__isnull=True, member_id__isnull=True)
        .exclude(status__in=(Status.QUEUED, Status.SENDING))
        .exclude(to="", name="")
        .update(
            to="",
            name="",
            reason=Case(When(status=Status.FAILED, then=Value("")), default=F("reason")),
        )
    )
