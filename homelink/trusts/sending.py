"""Trust-wide sends (the snow day): one message to the families and staff of chosen schools of a
trust, in one transaction — all the schools or none.

**Who it reaches.** Each chosen school's audience (all parents, prime parents, a year group or
registration group in every school, staff by role) is resolved exactly as a school send resolves
it (:func:`homelink.messaging.audience.resolve_schools`): opted-out and held people, channels a
person turned off, numbers that texted STOP and the email-else-SMS rule are the school's own.
The same handful of queries serves every school chosen, whatever their number and size.

**One copy per number or address across the schools.** Adults are rows of one school's register,
so a parent with children in two schools of the trust is two rows with the same mobile and email.
The schools' copies are merged by channel and number or address, as one school's are: the parent
gets *one* copy, greeting each person it stands for and naming every child, in every school.

**Which school sends, and pays for, a shared copy.** The first of its schools *in the order
chosen* (``--schools URN,URN`` as typed; ``all`` and the console: the trust's schools by name).
The copy is recorded under that school's message, goes from that school's SMS sender name (an
email from its name), and is paid from its credits — or from the trust's pool when the trust has
one (``Trust.sms_credits`` not None: the pool pays for the whole send, privacy notices included,
and refunds go back to it). In a shared copy ``{school}`` names every school it is about, in the
same order ("Oak Primary and Elm Academy are closed today"), and its email ends with each
school's privacy notice and a link that stops that school's messages. Anywhere else ``{school}``
is the school's own name, as in a school send.

**What is recorded.** One :class:`~homelink.messaging.models.Message` per school that has copies
of its own, with its deliveries (so each school's console shows what went to its families and
how it went), and a :class:`~homelink.messaging.models.TrustMessage` tying them together with
every school's figures for the trust's view. The first-contact privacy notice still goes per
school before that school's first message to an adult from its MIS
(:mod:`homelink.privacy.notices`); a shared copy waits for every school's notice it needs.

**Speed.** Resolution is per school; merging and pricing are one pass over the copies; the
deliveries of every school go in one COPY (PostgreSQL) or one prepared INSERT (SQLite); the
messages and audit events are one statement each. Their fair-share lanes take the schools'
copies in turn, so every school's families start receiving at once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from homelink.audit.services import audit_event, audit_record_all
from homelink.messaging import merge
from homelink.messaging.audience import (
    Audience,
    AudienceError,
    Copy,
    LeftOutReason,
    Person,
    Resolved,
    resolve_schools,
)
from homelink.messaging.models import Channel, Delivery, Message, TrustMessage
from homelink.messaging.services import (
    SCHEDULE_SLACK,
    Draft,
    NeedsConfirmation,
    SendError,
    check_draft,
    insert_delivery_batches,
    message_cancel,
)
from homelink.messaging.sms import SmsSize, sms_size
from homelink.privacy import notices
from homelink.privacy.notices import NoticePlan
from homelink.schools.models import School
from homelink.staff.actor import Actor, actor_parts
from homelink.trusts.models import Trust

#: What ``--schools`` takes for every school of the trust.
ALL = "all"


class NotEnoughTrustCredits(SendError):
    """The pool, or one or more schools, cannot pay for the send: nothing was queued anywhere."""

    def __init__(self, text: str, shortfalls: list[tuple[str, int, int]]) -> None:
        #: (who, credits needed, credits they have) for each payer short of credits.
        self.shortfalls = shortfalls
        super().__init__(text)


class LargeTrustSend(NeedsConfirmation):
    """A school's share is over that school's large-send threshold."""

    def __init__(self, count: int, over: list[tuple[str, int, int]]) -> None:
        self.over = over
        named = "; ".join(f"{name} {n:,} (its limit {limit:,})" for name, n, limit in over)
        SendError.__init__(
            self,
            f"This sends {count:,} messages, and more than a school's large-send limit at "
            f"{named}: confirm the large send.",
        )
        self.count = count


# --- the schools -----------------------------------------------------------------------------------


def chosen_schools(trust: Trust, urns: Sequence[str] | str) -> list[School]:
    """The trust's schools named by ``urns`` (in that order; ``"all"``: every school of the trust,
    by name). A URN of a school outside the trust — or of no school — is refused alike."""
    in_trust = School.objects.filter(trust_place__trust=trust).order_by("name", "pk")
    if isinstance(urns, str):
        if urns.strip().lower() == ALL:
            schools = list(in_trust)
            if not schools:
                raise SendError({"schools": f"The trust {trust.name} has no schools yet."})
            return schools
        urns = [u for u in (part.strip() for part in urns.split(",")) if u]
    wanted = list(dict.fromkeys(str(u).strip() for u in urns if str(u).strip()))
    if not wanted:
        raise SendError({"schools": "Choose at least one school."})
    found = {s.urn: s for s in in_trust.filter(urn__in=wanted)}
    missing = [u for u in wanted if u not in found]
    if missing:
        raise SendError(
            {
                "schools": f"The trust {trust.name} has no school with URN "
                f"{', '.join(missing)}: a trust-wide send goes only to the trust's own schools."
            }
        )
    return [found[u] for u in wanted]


def check_audience(audience: Audience) -> None:
    """A trust-wide send names groups every school has: parents (all, prime, with parental
    responsibility) of all students, of year groups or of registration groups, and staff by
    role. Chosen students and people are ids of one school's register."""
    if audience.who == "individuals" or (
        audience.who == "parents" and audience.students == "chosen"
    ):
        raise SendError(
            {
                "audience": "A trust-wide send goes to parents of all students, of year groups or "
                "of registration groups, or to staff: chosen students and people are sent to "
                "school by school."
            }
        )


# --- one copy across the schools -----------------------------------------------------------------


@dataclass(slots=True)
class TrustCopy:
    """One copy of a trust-wide send: one channel, one number or address, standing for people of
    one or more schools (``parts``: each school's own copy, the paying school's first). What it
    says and whom it is for are worked out once, by :meth:`settle`, after the merge."""

    channel: str
    to: str
    parts: list[tuple[School, Copy]]
    name: str = ""
    children: str = ""
    adult_ids: list[int] = field(default_factory=list)
    member_ids: list[int] = field(default_factory=list)
    #: ``Delivery.schools``: every school it stands for with its people; None for a copy of
    #: one school.
    schools: list[dict[str, Any]] | None = None
    #: What ``{school}`` says in it.
    school_names: str = ""

    @property
    def owner(self) -> School:
        return self.parts[0][0]

    @property
    def shared(self) -> bool:
        """Whether it stands for families of more than one school."""
        return self.schools is not None

    @property
    def people(self) -> list[Person]:
        return [p for _school, copy in self.parts for p in copy.people]

    def settle(self) -> None:
        if len(self.parts) == 1:
            # Most copies: one school's, as that school's send would make it.
            school, copy = self.parts[0]
            self.name, self.children = copy.name, copy.children
            self.adult_ids, self.member_ids = copy.adult_ids, copy.member_ids
            self.school_names = school.name
            return
        people = self.people
        self.name = merge.list_names(list(dict.fromkeys(p.name for p in people)))
        self.children = merge.list_names(list(dict.fromkeys(c for p in people for c in p.children)))
        self.adult_ids = [p.adult_id for p in people if p.adult_id is not None]
        self.member_ids = [p.member_id for p in people if p.member_id is not None]
        entries: dict[int, dict[str, Any]] = {}
        for school, copy in self.parts:
            entry = entries.setdefault(
                school.pk,
                {
                    "id": school.pk,
                    "urn": school.urn,
                    "name": school.name,
                    "adults": [],
                    "members": [],
                },
            )
            entry["adults"] += copy.adult_ids
            entry["members"] += copy.member_ids
        # Within one school a number or address is one copy already: two parts are two schools.
        self.schools = list(entries.values())
        self.school_names = merge.list_names([str(e["name"]) for e in self.schools])


# --- the preview -----------------------------------------------------------------------------------


@dataclass
class SchoolShare:
    """One chosen school's part in a trust-wide send."""

    school: School
    resolved: Resolved
    #: The copies recorded under (and paid by) this school, and their SMS parts.
    copies: list[TrustCopy] = field(default_factory=list)
    parts: list[int] = field(default_factory=list)
    #: Its own copies that went into a copy another school sends (a number or address shared).
    through_others: int = 0
    notices: NoticePlan | None = None

    @property
    def sms_count(self) -> int:
        return sum(1 for c in self.copies if c.channel == Channel.SMS)

    @property
    def email_count(self) -> int:
        return sum(1 for c in self.copies if c.channel == Channel.EMAIL)

    @property
    def total(self) -> int:
        return len(self.copies)

    @property
    def credits(self) -> int:
        return sum(self.parts)

    @property
    def notice_credits(self) -> int:
        return self.notices.credits if self.notices is not None else 0

    @property
    def shared(self) -> int:
        """Copies it sends that stand for other schools' families too."""
        return sum(1 for c in self.copies if c.shared)

    @property
    def threshold(self) -> int:
        return self.school.large_send_threshold

    @property
    def over_threshold(self) -> bool:
        return self.total > self.threshold

    def adult_ids(self) -> set[int]:
        """Its adults that some copy reaches (whichever school's copy)."""
        return {a for c in self.resolved.copies for a in c.adult_ids}

    def as_json(self) -> dict[str, Any]:
        figures: dict[str, Any] = {
            "urn": self.school.urn,
            "name": self.school.name,
            "recipients": self.resolved.people,
            "reached": self.resolved.reached,
            "left_out": self.resolved.left_out_counts(),
            "messages": self.total,
            "sms": self.sms_count,
            "email": self.email_count,
            "credits": self.credits,
            "credits_available": self.school.sms_credits,
            "shared": self.shared,
            "through_other_schools": self.through_others,
            "unreachable": len(self.resolved.unreachable),
            "needs_confirmation": self.over_threshold,
        }
        if self.notices is not None:
            figures["privacy_notices"] = self.notices.as_json()
        return figures


@dataclass
class TrustPreview:
    """What a trust-wide send would do, school by school (shown before it is sent, and printed
    by ``homelink send --trust``)."""

    trust: Trust
    shares: list[SchoolShare]
    copies: list[TrustCopy]
    text_size: SmsSize
    parts_min: int
    parts_max: int
    #: SMS copies that names (a "Zoë") turned into UCS-2 although the text is GSM-7.
    ucs2_by_names: int

    @property
    def pool(self) -> int | None:
        """The trust's pool of credits (None: each school pays its share)."""
        return self.trust.sms_credits

    @property
    def total(self) -> int:
        return len(self.copies)

    @property
    def sms_count(self) -> int:
        return sum(s.sms_count for s in self.shares)

    @property
    def email_count(self) -> int:
        return sum(s.email_count for s in self.shares)

    @property
    def credits(self) -> int:
        return sum(s.credits for s in self.shares)

    @property
    def notice_credits(self) -> int:
        return sum(s.notice_credits for s in self.shares)

    @property
    def shared(self) -> int:
        return sum(1 for c in self.copies if c.shared)

    @property
    def copies_saved(self) -> int:
        """How many fewer copies the schools' families get than one per school's copy."""
        return sum(len(c.parts) - 1 for c in self.copies)

    @property
    def people(self) -> int:
        return sum(s.resolved.people for s in self.shares)

    @property
    def reached(self) -> int:
        return sum(s.resolved.reached for s in self.shares)

    @property
    def left_out(self) -> int:
        return self.people - self.reached

    @property
    def unreachable(self) -> int:
        return sum(len(s.resolved.unreachable) for s in self.shares)

    @property
    def notices(self) -> bool:
        """Whether any school sends its privacy notice first."""
        return any(s.notices is not None and s.notices.copies for s in self.shares)

    def left_out_counts(self) -> dict[str, int]:
        counts = {reason.value: 0 for reason in LeftOutReason}
        for share in self.shares:
            for reason, n in share.resolved.left_out_counts().items():
                counts[reason] += n
        return counts

    def shortfalls(self) -> list[tuple[str, int, int]]:
        """Who cannot pay: (the pool or the school, credits needed, credits it has)."""
        if self.pool is not None:
            needed = self.credits + self.notice_credits
            return (
                [(f"the trust {self.trust.name}", needed, self.pool)] if needed > self.pool else []
            )
        return [
            (s.school.name, s.credits + s.notice_credits, s.school.sms_credits)
            for s in self.shares
            if s.credits + s.notice_credits > s.school.sms_credits
        ]

    @property
    def enough_credits(self) -> bool:
        return not self.shortfalls()

    def over_threshold(self) -> list[tuple[str, int, int]]:
        return [(s.school.name, s.total, s.threshold) for s in self.shares if s.over_threshold]

    @property
    def needs_confirmation(self) -> bool:
        return bool(self.over_threshold())

    def as_json(self) -> dict[str, Any]:
        figures: dict[str, Any] = {
            "trust": self.trust.name,
            "schools": [s.as_json() for s in self.shares],
            "recipients": self.people,
            "reached": self.reached,
            "left_out": self.left_out_counts(),
            "messages": self.total,
            "sms": self.sms_count,
            "email": self.email_count,
            "shared": self.shared,
            "copies_saved": self.copies_saved,
            "sms_parts": {"min": self.parts_min, "max": self.parts_max},
            "encoding": self.text_size.encoding,
            "ucs2_characters": list(self.text_size.ucs2_chars),
            "credits": self.credits,
            "credits_from": "trust" if self.pool is not None else "schools",
            "credits_available": self.pool
            if self.pool is not None
            else sum(s.school.sms_credits for s in self.shares),
            "unreachable": self.unreachable,
            "needs_confirmation": self.needs_confirmation,
        }
        if any(s.notices is not None for s in self.shares):
            figures["privacy_notice_credits"] = self.notice_credits
        return figures


def _merge(shares: list[SchoolShare]) -> list[TrustCopy]:
    """One copy per (channel, number or address) across the schools, in the order chosen: a
    copy belongs to the first school whose audience has it."""
    merged: dict[tuple[str, str], TrustCopy] = {}
    for share in shares:
        for copy in share.resolved.copies:
            key = (copy.channel, copy.to)
            found = merged.get(key)
            if found is None:
                found = merged[key] = TrustCopy(copy.channel, copy.to, [])
                share.copies.append(found)
            else:
                share.through_others += found.owner.pk != share.school.pk
            found.parts.append((share.school, copy))
    copies = list(merged.values())
    for trust_copy in copies:
        trust_copy.settle()
    return copies


def _price(shares: list[SchoolShare], draft: Draft) -> tuple[list[int], int]:
    """Each copy's SMS parts, rendered as it will be sent (each school's list in ``parts``);
    all the SMS parts; and how many copies a name turned into UCS-2."""
    sized = merge.uses_fields(draft.sms_text)
    plain = sms_size(draft.sms_text)
    every: list[int] = []
    ucs2_by_names = 0
    for share in shares:
        share.parts = []
        for copy in share.copies:
            if copy.channel != Channel.SMS:
                share.parts.append(0)
                continue
            size = plain
            if sized:
                size = sms_size(
                    merge.render(
                        draft.sms_text,
                        name=copy.name,
                        children=copy.children,
                        school=copy.school_names,
                    )
                )
            ucs2_by_names += size.encoding != plain.encoding
            share.parts.append(size.parts)
            every.append(size.parts)
    return every, ucs2_by_names


def _preview(trust: Trust, schools: list[School], draft: Draft) -> TrustPreview:
    check_draft(draft)
    check_audience(draft.audience)
    try:
        resolved = resolve_schools(schools, draft.audience, draft.mode)
    except AudienceError as error:
        raise SendError({"audience": str(error)}) from error
    shares = [SchoolShare(school, r) for school, r in zip(schools, resolved, strict=True)]
    copies = _merge(shares)
    every, ucs2_by_names = _price(shares, draft)
    if notices.enabled():
        for share in shares:
            share.notices = notices.first_contact_plan(share.school, share.adult_ids())
    return TrustPreview(
        trust=trust,
        shares=shares,
        copies=copies,
        text_size=sms_size(draft.sms_text) if draft.uses_sms else sms_size(""),
        parts_min=min(every, default=0),
        parts_max=max(every, default=0),
        ucs2_by_names=ucs2_by_names,
    )


def trust_message_preview(*, trust: Trust, schools: list[School], draft: Draft) -> TrustPreview:
    """What sending ``draft`` to ``schools`` of ``trust`` now would do (reads only); raises
    :class:`SendError` for a draft that cannot be sent as written."""
    return _preview(trust, schools, draft)


# --- the send ------------------------------------------------------------------------------------


def _send_at(draft: Draft, now: dt.datetime) -> dt.datetime:
    if draft.send_at is None:
        return now
    if draft.send_at < now - SCHEDULE_SLACK:
        raise SendError({"send_at": "That time has passed: choose a later one, or send now."})
    return max(draft.send_at, now)


def _credits_text(preview: TrustPreview, shortfalls: list[tuple[str, int, int]]) -> str:
    if preview.pool is not None:
        _who, needed, available = shortfalls[0]
        return (
            f"This needs {needed:,} SMS credits and the trust's pool has {available:,}: add "
            "credits to the pool, shorten the text or send by email. Nothing was sent."
        )
    short = "; ".join(f"{name} needs {n:,} and has {a:,}" for name, n, a in shortfalls)
    return (
        f"Not enough SMS credits: {short}. Add credits to "
        f"{'that school' if len(shortfalls) == 1 else 'those schools'}, shorten the text or send "
        "by email. Nothing was sent to any school."
    )


def _charge(preview: TrustPreview) -> None:
    """Charge the send's SMS credits (the notices' too, when the pool pays): every payer or
    none, each by a conditional update so no balance goes negative whatever runs at once."""
    shortfalls = preview.shortfalls()
    if shortfalls:
        raise NotEnoughTrustCredits(_credits_text(preview, shortfalls), shortfalls)
    if preview.pool is not None:
        needed = preview.credits + preview.notice_credits
        if needed and not Trust.objects.filter(pk=preview.trust.pk, sms_credits__gte=needed).update(
            sms_credits=F("sms_credits") - needed
        ):
            pool = Trust.objects.values_list("sms_credits", flat=True).get(pk=preview.trust.pk)
            short = [(f"the trust {preview.trust.name}", needed, pool or 0)]
            raise NotEnoughTrustCredits(_credits_text(preview, short), short)
        return
    for share in preview.shares:
        # The notices' credits are charged by notices.first_contact_queue, as in a school send.
        if share.credits and not School.objects.filter(
            pk=share.school.pk, sms_credits__gte=share.credits
        ).update(sms_credits=F("sms_credits") - share.credits):
            available = School.objects.values_list("sms_credits", flat=True).get(pk=share.school.pk)
            short = [(share.school.name, share.credits + share.notice_credits, available)]
            raise NotEnoughTrustCredits(_credits_text(preview, short), short)


def _label(trust: Trust, audience: Audience) -> str:
    return f"{trust.name} (trust-wide): {audience.label()}"[:255]


def trust_message_send(
    *,
    trust: Trust,
    schools: list[School],
    draft: Draft,
    actor: Actor,
    confirmed_large: bool = False,
    confirmed_up_to: int | None = None,
    via: str = "console",
) -> TrustMessage:
    """Queue ``draft`` to ``schools`` of ``trust`` (or schedule it): every school's share and
    the trust's record in one transaction, or nothing at all. See the module's docstring.

    A school's share over its large-send threshold needs ``confirmed_large`` (``--yes``) or
    ``confirmed_up_to``, the total staff were shown and confirmed."""
    if not schools:
        raise SendError({"schools": "Choose at least one school."})
    inside = School.objects.filter(trust_place__trust=trust, pk__in=[s.pk for s in schools])
    if inside.count() != len({s.pk for s in schools}):
        raise SendError({"schools": "A trust-wide send goes only to the trust's own schools."})
    now = timezone.now()
    send_at = _send_at(draft, now)
    label, actor_id = actor_parts(actor)
    with transaction.atomic():
        # The schools' rows (in id order, as every trust send takes them) and the trust's: the
        # credits and who has been sent the privacy notice are read and charged under them.
        locked = School.objects.select_for_update().in_bulk([s.pk for s in schools])
        fresh = [locked[s.pk] for s in schools]
        trust = Trust.objects.select_for_update().get(pk=trust.pk)
        preview = _preview(trust, fresh, draft)
        if not preview.total:
            raise SendError({"audience": "Nobody in these audiences can be reached that way."})
        confirmed = confirmed_large or (
            confirmed_up_to is not None and preview.total <= confirmed_up_to
        )
        if preview.needs_confirmation and not confirmed:
            raise LargeTrustSend(preview.total, preview.over_threshold())
        _charge(preview)
        pool = preview.pool is not None
        record = TrustMessage.objects.create(
            trust=trust,
            created_by_id=actor_id,
            mode=draft.mode,
            audience=draft.audience.to_json(),
            audience_label=draft.audience.label()[:255],
            subject=draft.subject if draft.uses_email else "",
            email_body=draft.email_body if draft.uses_email else "",
            sms_text=draft.sms_text if draft.uses_sms else "",
            urgent=draft.urgent,
            send_at=send_at,
            pool=pool,
            sms_count=preview.sms_count,
            email_count=preview.email_count,
            credits_charged=preview.credits + (preview.notice_credits if pool else 0),
            shared_count=preview.shared,
            summary=[share.as_json() for share in preview.shares],
        )
        sending = [share for share in preview.shares if share.copies]
        messages = Message.objects.bulk_create(
            [
                Message(
                    school=share.school,
                    created_by_id=actor_id,
                    mode=draft.mode,
                    audience=draft.audience.to_json(),
                    audience_label=_label(trust, draft.audience),
                    subject=record.subject,
                    email_body=record.email_body,
                    sms_text=record.sms_text,
                    sms_sender=share.school.sms_sender,
                    urgent=draft.urgent,
                    send_at=send_at,
                    sms_count=share.sms_count,
                    email_count=share.email_count,
                    credits_charged=share.credits,
                    unreachable_count=len(share.resolved.unreachable),
                    trust_message=record,
                    credits_trust=trust if pool else None,
                )
                for share in sending
            ]
        )
        by_school = {m.school_id: m for m in messages}
        priority = Delivery.URGENT if draft.urgent else Delivery.BULK
        insert_delivery_batches(
            [(by_school[s.school.pk], s.copies, s.parts) for s in sending], priority=priority
        )
        for share in preview.shares:
            _notices_first(share, record, actor=actor, via=via, pool=pool)
        scheduled = send_at > now + SCHEDULE_SLACK
        audit_record_all(
            audit_event(
                school=share.school,
                actor_label=label,
                actor_id=actor_id,
                action="message.queued",
                obj=by_school.get(share.school.pk, record),
                detail={
                    "via": via,
                    "trust": trust.name,
                    "trust_message": record.pk,
                    "mode": draft.mode,
                    "sms": share.sms_count,
                    "email": share.email_count,
                    "credits": share.credits,
                    "credits_from": "trust" if pool else "school",
                    "through_other_schools": share.through_others,
                    "urgent": draft.urgent,
                    "scheduled": scheduled,
                },
            )
            for share in preview.shares
        )
        total, urgent = preview.total, draft.urgent
        transaction.on_commit(lambda: _wake(total, send_at, urgent))
    trust.refresh_from_db(fields=["sms_credits"])
    return record


def _notices_first(
    share: SchoolShare, record: TrustMessage, *, actor: Actor, via: str, pool: bool
) -> None:
    """The school's privacy notice to its adults from the MIS this send reaches who were never
    told (``privacy.notices``): queued in this transaction, so their copies — whichever school
    sends them — wait until it has gone."""
    plan = share.notices
    if plan is None or not plan.copies:
        return
    if pool and plan.credits:
        # The pool has paid for the notices' SMS (in _charge); notices.first_contact_queue
        # charges the school's own credits, so they are handed to the school first (its row is
        # locked by this transaction: the plan cannot change before it queues).
        School.objects.filter(pk=share.school.pk).update(
            sms_credits=F("sms_credits") + plan.credits
        )
    try:
        notice = notices.first_contact_queue(
            school=share.school, actor=actor, via=via, adult_ids=share.adult_ids()
        )
    except notices.NotEnoughCreditsForNotice as error:
        # Checked under the school's lock before anything was charged: only a change the
        # lock does not cover (credits taken by hand meanwhile) gets here.
        short = [(share.school.name, share.credits + error.needed, error.available + share.credits)]
        raise NotEnoughTrustCredits(
            f"Not enough SMS credits: {share.school.name} needs {short[0][1]:,} (its privacy "
            f"notices included) and has {short[0][2]:,}. Nothing was sent to any school.",
            short,
        ) from error
    if notice is not None:
        # Refunds of what the pool paid go back to the pool.
        Message.objects.filter(pk=notice.pk).update(
            trust_message=record, credits_trust=record.trust if pool else None
        )


def _wake(copies: int, send_at: dt.datetime, urgent: bool) -> None:
    # One wake-up for the whole send: each task serves every school's copies.
    from homelink.messaging.tasks import chains, wake

    wake(count=min(chains(), copies), at=send_at, urgent=urgent)


# --- cancel --------------------------------------------------------------------------------------


def trust_message_cancel(*, record: TrustMessage, actor: Actor) -> int:
    """Cancel what of a trust-wide send has not gone yet, at every school (each school's message
    as its own console cancels it; credits go back to whoever paid). Returns how many copies
    were cancelled; refuses when nothing was left to cancel."""
    cancelled = 0
    with transaction.atomic():
        # Only the schools still in the trust: one taken out of it is its own staff's alone.
        for message in Message.objects.filter(
            trust_message=record,
            kind=Message.Kind.SCHOOL,
            school__trust_place__trust_id=record.trust_id,
        ).exclude(status=Message.Status.CANCELLED):
            try:
                cancelled += message_cancel(message=message, actor=actor)
            except SendError:
                continue  # all of that school's copies have gone already
    if not cancelled:
        raise SendError("Everything in this message has been sent already.")
    return cancelled


# --- the trust's pool ------------------------------------------------------------------------------


def trust_pool_change(*, trust: Trust, change: int | None) -> Trust:
    """Add ``change`` SMS credits to the trust's pool (opening it if the trust had none), take
    them away (a negative ``change``; never below zero), or, with None, close the pool so that
    its schools' own credits pay for trust-wide sends again (refused while it still holds
    credits: they would be lost)."""
    with transaction.atomic():
        locked = Trust.objects.select_for_update().get(pk=trust.pk)
        if change is None:
            if locked.sms_credits:
                raise SendError(
                    f"The trust's pool still holds {locked.sms_credits:,} credits: remove them "
                    f"first (-{locked.sms_credits}), or keep the pool open."
                )
            locked.sms_credits = None
        else:
            balance = (locked.sms_credits or 0) + change
            if balance < 0:
                raise SendError(
                    f"The trust's pool has {locked.sms_credits or 0:,} credits: cannot remove "
                    f"{-change:,}."
                )
            locked.sms_credits = balance
        locked.save(update_fields=["sms_credits"])
    trust.sms_credits = locked.sms_credits
    return trust
