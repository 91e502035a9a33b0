"""Texts people send back: STOP-style keywords block the number, anything else is a reply.

One gateway number may serve several schools, so a text is about the schools that have texted
that number: a keyword acts for all of them (someone who texts STOP wants no more texts from
this service), a reply goes to the one that texted last.
"""

from __future__ import annotations

import logging
import re

from django.db import IntegrityError, transaction
from django.db.models import Max

from homelink.messaging.models import Channel, Delivery, InboundSms, SmsBlock, Status
from homelink.mis.phones import normalise_mobile

log = logging.getLogger(__name__)

STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "END", "QUIT", "CANCEL"})
START_WORDS = frozenset({"START"})

#: Deliveries that never left us do not make a school one the number could be answering.
_NEVER_SENT = (Status.QUEUED, Status.CANCELLED, Status.SKIPPED)


_EDGE_PUNCTUATION = re.compile(r"^[\W_]+|[\W_]+$")


def keyword_of(text: str) -> str:
    """The keyword a text is, upper-cased, without the punctuation people add ("Stop."); empty
    unless the whole text is one word. As carriers and Twilio match them: a parent's "Cancel
    lunch club?" is a reply for staff to read, not an opt-out."""
    words = text.split()
    return _EDGE_PUNCTUATION.sub("", words[0]).upper() if len(words) == 1 else ""


def _sent_to(number: str) -> list[Delivery]:
    """The latest SMS delivery to ``number`` from each school, latest school first."""
    latest = (
        Delivery.objects.filter(channel=Channel.SMS, to=number)
        .exclude(status__in=_NEVER_SENT)
        .values("school_id")
        .annotate(last=Max("id"))
        .values_list("last", flat=True)
    )
    return list(Delivery.objects.filter(pk__in=list(latest)).order_by("-id"))


def _schools_of(
    deliveries: list[Delivery],
) -> dict[int, tuple[int | None, int | None, int | None]]:
    """The schools a keyword acts for, latest first, each with the message, adult and member
    its row names: each delivery's school, and every school a trust-wide send's copy stood
    for (one text to a parent of two schools of a trust: STOP stops both). Another school's
    row names none of the paying school's message (its staff cannot open it), only its own
    adult or member."""
    schools: dict[int, tuple[int | None, int | None, int | None]] = {}
    for d in deliveries:
        schools.setdefault(d.school_id, (d.message_id, d.adult_id, d.member_id))
    for d in deliveries:
        for entry in d.schools or []:
            adults, members = entry.get("adults") or [], entry.get("members") or []
            schools.setdefault(
                int(entry["id"]),
                (None, adults[0] if adults else None, members[0] if members else None),
            )
    return schools


def inbound_sms_receive(
    *, from_number: str, to_number: str, text: str, gateway_id: str = ""
) -> InboundSms | None:
    """Act on one inbound text; the row stored for it (the latest school's), or None when no
    school has texted that number (then nothing is stored).

    A ``gateway_id`` seen before (a retried webhook) changes nothing and returns the row
    stored the first time.
    """
    if gateway_id:
        seen = InboundSms.objects.filter(gateway_id=gateway_id).first()
        if seen is not None:
            return seen
    number = normalise_mobile(from_number, "GB")
    if not number:
        return None
    try:
        with transaction.atomic():
            return _receive(number, to_number, text, gateway_id)
    except IntegrityError:
        # The same webhook, retried while the first was still being handled.
        seen = InboundSms.objects.filter(gateway_id=gateway_id).first() if gateway_id else None
        if seen is None:
            raise
        return seen


def _receive(number: str, to_number: str, text: str, gateway_id: str) -> InboundSms | None:
    deliveries = _sent_to(number)
    if not deliveries:
        log.info("inbound SMS from a number no school has texted: not stored")
        return None
    word = keyword_of(text)
    schools = _schools_of(deliveries)
    if word in STOP_WORDS:
        action = "stop"
        SmsBlock.objects.bulk_create(
            [SmsBlock(school_id=school_id, number=number, keyword=word) for school_id in schools],
            ignore_conflicts=True,
        )
    elif word in START_WORDS:
        action = "start"
        SmsBlock.objects.filter(school_id__in=list(schools), number=number).delete()
    else:
        latest = deliveries[0]
        return InboundSms.objects.create(
            school_id=latest.school_id,
            from_number=number,
            to_number=to_number[:32],
            text=text,
            gateway_id=gateway_id,
            in_reply_to_id=latest.message_id,
            adult_id=latest.adult_id,
            member_id=latest.member_id,
        )
    # Each school's staff see why texts to this number stopped (or started again); the
    # gateway's id goes on one row only, as it is unique.
    rows = [
        InboundSms(
            school_id=school_id,
            from_number=number,
            to_number=to_number[:32],
            text=text,
            action=action,
            gateway_id=gateway_id if i == 0 else "",
            in_reply_to_id=message_id,
            adult_id=adult_id,
            member_id=member_id,
        )
        for i, (school_id, (message_id, adult_id, member_id)) in enumerate(schools.items())
    ]
    for row in rows:
        row.save()
    log.info("inbound SMS keyword %s for %d school(s)", action, len(rows))
    return rows[0]
