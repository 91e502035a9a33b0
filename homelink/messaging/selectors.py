"""Reads about messages for the staff console, the dashboard and the parent's account.

Every function takes the school (or, for a parent, the account) and filters by it first. Lists
are paged or capped and their counts are grouped queries, so a page costs the same handful of
queries for ten messages or ten thousand deliveries.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, overload

from django.db import connection
from django.db.models import Count, Q, QuerySet, TextField
from django.db.models.functions import Cast

from homelink.messaging import merge
from homelink.messaging.audience import Audience, AudienceError, Resolved, resolve
from homelink.messaging.models import (
    Delivery,
    InboundSms,
    Message,
    SmsBlock,
    Status,
    Template,
    TrustMessage,
)
from homelink.register.models import Adult, Link, Member
from homelink.register.years import in_school_order
from homelink.schools.models import School

#: Delivery statuses as staff read them, in the order the totals show them.
PROGRESS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("queued", "Waiting to send", (Status.QUEUED, Status.SENDING)),
    ("sent", "Sent", (Status.SENT,)),
    ("delivered", "Delivered", (Status.DELIVERED,)),
    ("failed", "Failed", (Status.FAILED, Status.BOUNCED)),
    ("cancelled", "Not sent", (Status.CANCELLED, Status.SKIPPED)),
)

#: Delivery is "stalled" when work has been due this long and no worker sent or failed
#: anything meanwhile.
STALL_AFTER = dt.timedelta(minutes=2)
FAILED_WINDOW = dt.timedelta(hours=24)
SEARCH_LIMIT = 25
#: The parent's messages page shows this many of the newest messages.
PARENT_MESSAGES_LIMIT = 100


# --- the school's messages ----------------------------------------------------------------------


@dataclass
class Progress:
    """How far a message's deliveries have got: counted by delivery status, read by the
    groups staff see (:data:`PROGRESS`)."""

    by_status: dict[str, int] = field(default_factory=dict)

    def count(self, key: str) -> int:
        """Copies in one of :data:`PROGRESS`'s groups."""
        return sum(self.by_status.get(status, 0) for status in progress_statuses(key))

    @property
    def queued(self) -> int:
        return self.count("queued")

    @property
    def sent(self) -> int:
        return self.count("sent")

    @property
    def delivered(self) -> int:
        return self.count("delivered")

    @property
    def failed(self) -> int:
        return self.count("failed")

    @property
    def total(self) -> int:
        return sum(self.by_status.values())

    @property
    def cancellable(self) -> int:
        """Copies no worker has taken yet: what a cancel would stop."""
        return self.by_status.get(Status.QUEUED, 0)

    def rows(self) -> list[ProgressRow]:
        """One row per status group, with its share of the whole, for the chart."""
        total = self.total
        return [
            ProgressRow(
                key=key,
                label=label,
                count=self.count(key),
                percent=round(100 * self.count(key) / total) if total else 0,
            )
            for key, label, _statuses in PROGRESS
        ]


@dataclass(frozen=True)
class ProgressRow:
    key: str
    label: str
    count: int
    percent: int


def messages_list(school: School) -> QuerySet[Message]:
    """The school's messages, newest first; pair a page of them with :func:`progress_of`."""
    return (
        Message.objects.filter(school=school)
        .select_related("created_by")
        .order_by("-created_at", "-pk")
    )


def progress_of(message_ids: Iterable[int]) -> dict[int, Progress]:
    """Each message's deliveries counted by status: one grouped query for a page of messages
    (the (message, status) index serves it), never one per message."""
    ids = list(message_ids)
    found: dict[int, Progress] = {pk: Progress() for pk in ids}
    rows = (
        Delivery.objects.filter(message_id__in=ids)
        .values_list("message_id", "status")
        .annotate(n=Count("pk"))
        .order_by()
    )
    for message_id, status, n in rows:
        found[message_id].by_status[status] = n
    return found


def message_state(message: Message, progress: Progress, now: dt.datetime) -> str:
    """How staff read a message's state: ``cancelled``, ``scheduled`` (its time has not
    come), ``sending`` (copies wait or are with a worker) or ``sent`` (every copy has gone or
    ended). The stored status only knows the first two."""
    if message.status == Message.Status.CANCELLED:
        return "cancelled"
    if message.send_at > now:
        return "scheduled"
    if progress.by_status.get(Status.QUEUED, 0) or progress.by_status.get(Status.SENDING, 0):
        return "sending"
    return "sent"


def message_progress(message: Message) -> Progress:
    return progress_of([message.pk])[message.pk]


def progress_statuses(key: str) -> tuple[str, ...]:
    """The delivery statuses a progress key stands for ("failed" is failed and bounced)."""
    for progress_key, _label, statuses in PROGRESS:
        if progress_key == key:
            return statuses
    raise KeyError(key)


def message_deliveries(message: Message, *, progress: str = "") -> SchoolCopies:
    """The message's copies, in the order they were queued, as its school's staff see them
    (:class:`SchoolCopies`); ``progress`` narrows to one group of :data:`PROGRESS`."""
    deliveries = Delivery.objects.filter(message=message)
    if progress:
        deliveries = deliveries.filter(status__in=progress_statuses(progress))
    return SchoolCopies(message.school_id, deliveries.order_by("pk"))


class SchoolCopies:
    """A school's message's copies, read as that school's staff may see them: a copy of a
    trust-wide send that stood for families of several schools (``Delivery.schools``) greets
    only this school's people on it and names only this school's pupils (:func:`school_part`),
    never a sister school's. Counted and sliced like a query set (a page holding such a copy
    costs three more queries); the copies it hands out are for reading, never for saving."""

    def __init__(self, school_id: int, deliveries: QuerySet[Delivery]) -> None:
        self.school_id = school_id
        self.deliveries = deliveries

    def count(self) -> int:
        return self.deliveries.count()

    def __len__(self) -> int:
        return self.count()

    @overload
    def __getitem__(self, index: int) -> Delivery: ...

    @overload
    def __getitem__(self, index: slice) -> list[Delivery]: ...

    def __getitem__(self, index: int | slice) -> Delivery | list[Delivery]:
        if isinstance(index, int):
            return self._seen([self.deliveries[index]])[0]
        return self._seen(list(self.deliveries[index]))

    def __iter__(self) -> Iterator[Delivery]:
        return iter(self._seen(list(self.deliveries)))

    def _seen(self, copies: list[Delivery]) -> list[Delivery]:
        shared = [d for d in copies if d.schools is not None]
        parts = school_part(self.school_id, [(d.schools, d.name, d.children) for d in shared])
        for delivery, (name, children) in zip(shared, parts, strict=True):
            delivery.name, delivery.children = name, children
        return copies


#: How a stored greeting or list of children ("Amy, Ben and Cara") splits into its names.
_LIST_SPLIT = re.compile(r", | and ")


def _school_entry(schools: Any, school_id: int) -> dict[str, Any] | None:
    if isinstance(schools, str):  # JSON as text (a raw read on SQLite)
        schools = json.loads(schools)
    for entry in schools or []:
        if entry.get("id") == school_id:
            return dict(entry)
    return None


def school_part(school_id: int, copies: list[tuple[Any, str, str]]) -> list[tuple[str, str]]:
    """What one school's staff may read of shared copies, each given as its (``schools``,
    ``name``, ``children``): the greeting as this school's own people on the copy (from its
    register, by the ids in its entry of ``schools``) and, of the children the copy named,
    only this school's pupils linked to them. Another school's adults and children are never
    in it; a greeting blanked by an erasure stays blank. At most three queries for any number
    of copies."""
    entries = [_school_entry(schools, school_id) for schools, _name, _children in copies]
    adult_ids = {int(a) for e in entries if e for a in e.get("adults") or []}
    member_ids = {int(m) for e in entries if e for m in e.get("members") or []}
    adults: dict[int, str] = {}
    pupils: dict[int, set[str]] = {}
    members: dict[int, str] = {}
    if adult_ids:
        adults = {
            pk: f"{forename} {surname}".strip()
            for pk, forename, surname in Adult.objects.filter(
                school_id=school_id, pk__in=adult_ids
            ).values_list("pk", "forename", "surname")
        }
        for adult_id, forename in Link.objects.filter(
            school_id=school_id, adult_id__in=adult_ids
        ).values_list("adult_id", "student__forename"):
            pupils.setdefault(adult_id, set()).add(forename)
    if member_ids:
        members = {
            pk: f"{forename} {surname}".strip()
            for pk, forename, surname in Member.objects.filter(
                school_id=school_id, kind=Member.Kind.ADULT, pk__in=member_ids
            ).values_list("pk", "forename", "surname")
        }
    found: list[tuple[str, str]] = []
    for entry, (_schools, name, children) in zip(entries, copies, strict=True):
        if entry is None:
            found.append(("", ""))
            continue
        ids = [int(a) for a in entry.get("adults") or []]
        people = [adults[a] for a in ids if a in adults] + [
            members[int(m)] for m in entry.get("members") or [] if int(m) in members
        ]
        own = {c for a in ids for c in pupils.get(a, ())}
        named = [c for c in dict.fromkeys(_LIST_SPLIT.split(children)) if c in own]
        greeting = merge.list_names(list(dict.fromkeys(people))) if name else ""
        found.append((greeting[:255], merge.list_names(named)))
    return found


CSV_HEADER = (
    "name",
    "children",
    "channel",
    "to",
    "status",
    "reason",
    "attempts",
    "sms_parts",
    "sent_at",
    "status_at",
)


def message_csv_rows(message: Message) -> Iterator[tuple[Any, ...]]:
    """Every copy of the message as a CSV row (see :data:`CSV_HEADER`), read in chunks; of a
    trust-wide send's shared copy, only the message's school's part (:func:`school_part`)."""
    rows = (
        Delivery.objects.filter(message=message)
        .order_by("pk")
        .values_list(
            "schools",
            "name",
            "children",
            "channel",
            "to",
            "status",
            "reason",
            "attempts",
            "parts",
            "sent_at",
            "status_at",
        )
    )
    chunk: list[tuple[Any, ...]] = []
    for row in rows.iterator(chunk_size=CSV_CHUNK):
        chunk.append(row)
        if len(chunk) == CSV_CHUNK:
            yield from _csv_chunk(message.school_id, chunk)
            chunk = []
    yield from _csv_chunk(message.school_id, chunk)


#: Copies read at a time for the CSV (their shared ones' school parts worked out together).
CSV_CHUNK = 2000


def _csv_chunk(school_id: int, chunk: list[tuple[Any, ...]]) -> Iterator[tuple[Any, ...]]:
    at = [i for i, row in enumerate(chunk) if row[0] is not None]
    parts = dict(zip(at, school_part(school_id, [chunk[i][:3] for i in at]), strict=True))
    for i, row in enumerate(chunk):
        name, children = parts.get(i, (row[1], row[2]))
        yield (name, children, *row[3:])


def message_replies(message: Message) -> list[InboundSms]:
    return list(
        InboundSms.objects.filter(school_id=message.school_id, in_reply_to=message)
        .select_related("adult", "member")
        .order_by("-received_at", "-pk")
    )


def message_unreachable(message: Message) -> Resolved:
    """Who the message's audience leaves out, as the register is now (not as it was when the
    message was sent: the register does not keep its history)."""
    return resolve(message.school, Audience.from_json(message.audience), message.mode)


# --- composing -----------------------------------------------------------------------------------


def _natural(text: str) -> tuple[tuple[int, int | str], ...]:
    # "7A" before "10A", "Year 2" before "Year 10".
    return tuple(
        (0, int(part)) if part.isdigit() else (1, part)
        for part in re.split(r"(\d+)", text.casefold())
        if part
    )


def _current_students(school: School) -> QuerySet[Member]:
    return Member.objects.filter(
        school=school, kind=Member.Kind.STUDENT, status=Member.Status.CURRENT
    )


def audience_choices(school: School) -> tuple[list[str], list[str]]:
    """The distinct year groups and registration groups of the school's current students."""
    students = _current_students(school)
    years = {y for y in students.values_list("year", flat=True).distinct() if y}
    groups = {g for g in students.values_list("reg_group", flat=True).distinct() if g}
    # Years in school order (Nursery, Reception, 1 … 13): as text, R would follow 11.
    return in_school_order(years), sorted(groups, key=_natural)


def students_by_id(school: School, ids: Iterable[int]) -> list[Member]:
    return list(
        _current_students(school).filter(pk__in=list(ids)).order_by("surname", "forename", "pk")
    )


def students_by_mis_id(school: School, mis_ids: Iterable[str]) -> dict[str, Member]:
    """Current students by MIS id (a former UPN finds the student too), for pasted lists."""
    wanted = [m for m in mis_ids if m]
    found: dict[str, Member] = {}
    for student in _current_students(school).filter(
        Q(mis_id__in=wanted) | Q(former_upn__in=wanted)
    ):
        found[student.mis_id] = student
        if student.former_upn:
            found[student.former_upn] = student
    return found


def student_search(school: School, q: str) -> list[Member]:
    """Current students whose name or MIS id contains ``q`` (every word of it, for names)."""
    q = q.strip()
    if not q:
        return []
    condition = Q(mis_id__iexact=q)
    words = q.split()
    name = Q()
    for word in words:
        name &= Q(forename__icontains=word) | Q(surname__icontains=word)
    return list(
        _current_students(school)
        .filter(condition | name)
        .order_by("surname", "forename", "pk")[:SEARCH_LIMIT]
    )


@dataclass(frozen=True)
class PersonChoice:
    """An adult or an adult member staff can choose as a recipient, keyed ``adult:12`` or
    ``member:5``."""

    key: str
    name: str
    note: str


def _adult_choice(adult: Adult, children: list[str]) -> PersonChoice:
    notes = [f"parent or carer of {merge.list_names(children)}" if children else "not linked"]
    if adult.opted_out:
        notes.append("opted out")
    if adult.held:
        notes.append("held for review")
    return PersonChoice(
        f"adult:{adult.pk}", f"{adult.forename} {adult.surname}".strip(), ", ".join(notes)
    )


def _member_choice(member: Member) -> PersonChoice:
    notes = [member.get_role_display()]
    if member.opted_out:
        notes.append("opted out")
    return PersonChoice(
        f"member:{member.pk}", f"{member.forename} {member.surname}".strip(), ", ".join(notes)
    )


def _children_of(adult_ids: list[int]) -> dict[int, list[str]]:
    children: dict[int, list[str]] = {}
    links = (
        Link.objects.filter(adult_id__in=adult_ids, student__status=Member.Status.CURRENT)
        .order_by("student__forename", "pk")
        .values_list("adult_id", "student__forename")
    )
    for adult_id, forename in links:
        children.setdefault(adult_id, []).append(forename)
    return children


def _people(adults: list[Adult], members: list[Member]) -> list[PersonChoice]:
    children = _children_of([a.pk for a in adults])
    return [_adult_choice(a, children.get(a.pk, [])) for a in adults] + [
        _member_choice(m) for m in members
    ]


def people_by_key(school: School, keys: Iterable[str]) -> list[PersonChoice]:
    """The chosen people, from their keys; keys of another school's people find nothing."""
    adult_ids, member_ids = split_person_keys(keys)
    adults = list(
        Adult.objects.filter(school=school, pk__in=adult_ids).order_by("surname", "forename", "pk")
    )
    members = list(
        Member.objects.filter(school=school, kind=Member.Kind.ADULT, pk__in=member_ids).order_by(
            "surname", "forename", "pk"
        )
    )
    return _people(adults, members)


def people_search(school: School, q: str) -> list[PersonChoice]:
    """Parents and carers, and current adult members, whose name or email contains ``q``."""
    q = q.strip()
    if not q:
        return []
    name = Q()
    for word in q.split():
        name &= Q(forename__icontains=word) | Q(surname__icontains=word)
    condition = name | Q(email__iexact=q)
    adults = list(
        Adult.objects.filter(school=school)
        .filter(condition)
        .order_by("surname", "forename", "pk")[:SEARCH_LIMIT]
    )
    members = list(
        Member.objects.filter(school=school, kind=Member.Kind.ADULT, status=Member.Status.CURRENT)
        .filter(condition)
        .order_by("surname", "forename", "pk")[:SEARCH_LIMIT]
    )
    return _people(adults, members)


def split_person_keys(keys: Iterable[str]) -> tuple[list[int], list[int]]:
    """``["adult:1", "member:2"]`` → ([1], [2]); anything else is ignored."""
    adults: list[int] = []
    members: list[int] = []
    for key in keys:
        kind, _, pk = key.partition(":")
        if not pk.isdigit():
            continue
        if kind == "adult":
            adults.append(int(pk))
        elif kind == "member":
            members.append(int(pk))
    return adults, members


def school_templates(school: School) -> QuerySet[Template]:
    return Template.objects.filter(school=school).order_by("name", "pk")


def draft_unreachable(school: School, audience: Audience, mode: str) -> Resolved:
    """Who a draft would leave out (resolved now); raises AudienceError for a bad audience."""
    if mode not in Message.Mode.values:
        raise AudienceError(f"Unknown channel {mode!r}.")
    return resolve(school, audience, mode)


# --- replies and blocked numbers -----------------------------------------------------------------


@dataclass(frozen=True)
class Sender:
    """Who a number belongs to in the register, and where staff can see them."""

    name: str
    #: The member whose screen shows them: an adult member's own, or a parent's first child's.
    member_id: int | None


def _adult_screens(adult_ids: Iterable[int]) -> dict[int, int]:
    """For each adult, the first student they are linked to (their linked-people screen)."""
    screens: dict[int, int] = {}
    rows = (
        Link.objects.filter(adult_id__in=list(adult_ids))
        .order_by("adult_id", "student_id")
        .values_list("adult_id", "student_id")
    )
    for adult_id, student_id in rows:
        screens.setdefault(adult_id, student_id)
    return screens


def senders_by_number(school: School, numbers: Iterable[str]) -> dict[str, list[Sender]]:
    """Everyone in the school's register with each number (several people may share one)."""
    wanted = sorted({n for n in numbers if n})
    found: dict[str, list[Sender]] = {n: [] for n in wanted}
    adults = list(
        Adult.objects.filter(school=school, mobile__in=wanted)
        .order_by("surname", "forename", "pk")
        .values_list("pk", "forename", "surname", "mobile")
    )
    screens = _adult_screens(pk for pk, *_ in adults)
    for pk, forename, surname, mobile in adults:
        found[mobile].append(Sender(f"{forename} {surname}".strip(), screens.get(pk)))
    members = (
        Member.objects.filter(school=school, kind=Member.Kind.ADULT, mobile__in=wanted)
        .order_by("surname", "forename", "pk")
        .values_list("pk", "forename", "surname", "mobile")
    )
    for pk, forename, surname, mobile in members:
        found[mobile].append(Sender(f"{forename} {surname}".strip(), pk))
    return found


@dataclass(frozen=True)
class Reply:
    inbound: InboundSms
    #: Who sent it: the person the inbound handler recorded, else everyone with that number.
    senders: list[Sender]


def replies_with_senders(school: School, inbound: list[InboundSms]) -> list[Reply]:
    """Each text with its sender resolved: two queries for the page, whatever its length."""
    unknown = [i.from_number for i in inbound if i.adult_id is None and i.member_id is None]
    by_number = senders_by_number(school, unknown)
    screens = _adult_screens(i.adult_id for i in inbound if i.adult_id is not None)
    replies = []
    for item in inbound:
        if item.adult is not None:
            name = f"{item.adult.forename} {item.adult.surname}".strip()
            senders = [Sender(name, screens.get(item.adult.pk))]
        elif item.member is not None:
            name = f"{item.member.forename} {item.member.surname}".strip()
            senders = [Sender(name, item.member.pk)]
        else:
            senders = by_number.get(item.from_number, [])
        replies.append(Reply(item, senders))
    return replies


def school_inbound(school: School) -> QuerySet[InboundSms]:
    return (
        InboundSms.objects.filter(school=school)
        .select_related("adult", "member", "in_reply_to")
        .order_by("-received_at", "-pk")
    )


@dataclass(frozen=True)
class Block:
    block: SmsBlock
    senders: list[Sender]


def school_blocks(school: School) -> list[Block]:
    blocks = list(SmsBlock.objects.filter(school=school).order_by("-created_at", "-pk"))
    who = senders_by_number(school, (b.number for b in blocks))
    return [Block(b, who.get(b.number, [])) for b in blocks]


# --- the dashboard -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeliverySummary:
    queued: int
    scheduled: int
    failed_24h: int
    problems: list[str]


def _due(school: School, now: dt.datetime) -> Q:
    """This school's copies that a worker should have taken by now."""
    return Q(school=school, status=Status.QUEUED, next_attempt_at__lte=now - STALL_AFTER)


def delivery_summary(school: School, now: dt.datetime) -> DeliverySummary:
    """The dashboard's delivery panel: one aggregate, and the problems' own reads."""
    counts = Delivery.objects.filter(school=school).aggregate(
        n_queued=Count(
            "pk",
            filter=Q(status__in=[Status.QUEUED, Status.SENDING], next_attempt_at__lte=now),
        ),
        n_scheduled=Count("pk", filter=Q(status=Status.QUEUED, next_attempt_at__gt=now)),
        n_failed=Count(
            "pk",
            filter=Q(
                status__in=[Status.FAILED, Status.BOUNCED], status_at__gte=now - FAILED_WINDOW
            ),
        ),
        n_due=Count("pk", filter=_due(school, now)),
    )
    return DeliverySummary(
        queued=counts["n_queued"],
        scheduled=counts["n_scheduled"],
        failed_24h=counts["n_failed"],
        problems=_problems(counts["n_due"], now),
    )


def delivery_problems(school: School, now: dt.datetime) -> list[str]:
    """Sentences for the dashboard when delivery is not alive: this school's due work waiting
    while no worker anywhere sends anything, then whatever the gateways' health says."""
    return _problems(Delivery.objects.filter(_due(school, now)).count(), now)


def _problems(due: int, now: dt.datetime) -> list[str]:
    problems: list[str] = []
    cutoff = now - STALL_AFTER
    # Only asked when something is overdue: "anything sent anywhere lately" is a wide read.
    if due and not (
        Delivery.objects.filter(
            Q(sent_at__gte=cutoff)
            | Q(status__in=[Status.SENT, Status.FAILED], status_at__gte=cutoff)
        ).exists()
    ):
        minutes = int(STALL_AFTER.total_seconds() // 60)
        problems.append(
            f"Delivery has stalled: {due:,} message{'s' if due != 1 else ''} "
            f"{'have' if due != 1 else 'has'} been due for more than {minutes} minutes and no "
            f"worker has sent anything in the last {minutes} minutes. Check that the background "
            "worker is running."
        )
    # Imported here: the gateways' health is the dispatcher's side, loaded only for this read.
    from homelink.messaging.health import gateway_problems

    problems.extend(gateway_problems(now))
    return problems


# --- the parent's account ------------------------------------------------------------------------


@dataclass
class ParentMessage:
    """One message as the parent received it: what it said to them, on which channels."""

    message: Message
    school: str
    subject: str
    email_body: str
    sms_text: str
    #: (channel label, status as a parent reads it), one per copy.
    copies: list[tuple[str, str]]

    @property
    def sent_at(self) -> dt.datetime:
        return self.message.send_at


PARENT_STATUS = {
    Status.QUEUED: "sending",
    Status.SENDING: "sending",
    Status.SENT: "sent",
    Status.DELIVERED: "delivered",
    Status.FAILED: "could not be delivered",
    Status.BOUNCED: "could not be delivered",
}


def _for_adults(deliveries: QuerySet[Delivery], adult_ids: list[int]) -> QuerySet[Delivery]:
    """Copies addressed to one of these adults, or whose ``adult_ids`` list holds one of them
    (a copy a shared number or address carried for several people)."""
    condition = Q(adult_id__in=adult_ids)
    if connection.features.supports_json_field_contains:
        for pk in adult_ids:
            condition |= Q(adult_ids__contains=[pk])
        return deliveries.filter(condition)
    # SQLite has no JSON containment: match the ids as whole numbers in the list's text.
    pattern = r"(^|[^0-9])(" + "|".join(str(pk) for pk in adult_ids) + r")([^0-9]|$)"
    return deliveries.annotate(adult_ids_text=Cast("adult_ids", output_field=TextField())).filter(
        condition | Q(adult_ids_text__regex=pattern)
    )


def account_messages(*, user: Any, now: dt.datetime) -> list[ParentMessage]:
    """What the schools sent to the account's adults, newest first: copies addressed to one of
    them, or carried for one of them on a shared number or address. Copies never sent
    (cancelled, skipped) and scheduled messages not yet due are not shown."""
    adults = list(Adult.objects.filter(account=user).values_list("pk", "school_id"))
    if not adults:
        return []
    adult_ids = [pk for pk, _ in adults]
    schools = sorted({school_id for _, school_id in adults})
    deliveries = (
        _for_adults(
            Delivery.objects.filter(
                # A trust-wide send's copy for families of several schools is another school's
                # message: it is theirs if it carries one of their adults.
                Q(school_id__in=schools) | Q(schools__isnull=False),
                status__in=list(PARENT_STATUS),
                message__send_at__lte=now,
            ),
            adult_ids,
        )
        .select_related("message", "message__school")
        .order_by("-message__send_at", "-message_id", "channel", "pk")
    )
    found: dict[int, ParentMessage] = {}
    for delivery in deliveries.iterator(chunk_size=500):
        message = delivery.message
        entry = found.get(message.pk)
        if entry is None:
            if len(found) >= PARENT_MESSAGES_LIMIT:
                break
            entry = found[message.pk] = ParentMessage(
                message=message,
                school=merge.school_named(delivery.schools, message.school.name),
                subject="",
                email_body="",
                sms_text="",
                copies=[],
            )
        fields = {
            "name": delivery.name,
            "children": delivery.children,
            "school": merge.school_named(delivery.schools, message.school.name),
        }
        if delivery.channel == "email" and not entry.email_body:
            entry.subject = merge.render(message.subject, **fields)
            entry.email_body = merge.render(message.email_body, **fields)
        elif delivery.channel == "sms" and not entry.sms_text:
            entry.sms_text = merge.render(message.sms_text, **fields)
        label = "Email" if delivery.channel == "email" else "Text message"
        entry.copies.append((label, PARENT_STATUS.get(Status(delivery.status), delivery.status)))
    return list(found.values())


# --- trust-wide sends -----------------------------------------------------------------------------


def trust_audience_choices(school_ids: Iterable[int]) -> tuple[list[str], list[str]]:
    """The year groups and registration groups current students have in any of these schools
    (a trust's): one query each, however many schools."""
    students = Member.objects.filter(
        school_id__in=list(school_ids), kind=Member.Kind.STUDENT, status=Member.Status.CURRENT
    )
    years = {y for y in students.values_list("year", flat=True).distinct() if y}
    groups = {g for g in students.values_list("reg_group", flat=True).distinct() if g}
    return in_school_order(years), sorted(groups, key=_natural)


def trust_messages_list(trust: Any) -> QuerySet[TrustMessage]:
    """The trust's trust-wide sends, newest first; pair a page of them with
    :func:`trust_progress`."""
    return (
        TrustMessage.objects.filter(trust=trust)
        .select_related("created_by")
        .order_by("-created_at", "-pk")
    )


@dataclass
class SchoolProgress:
    """One school's share of a trust-wide send: its message (None when every one of its
    families was reached by another school's copy) and how far its copies have got."""

    urn: str
    name: str
    message: Message | None
    progress: Progress
    state: str
    figures: dict[str, Any]

    @property
    def left_out(self) -> int:
        return int(self.figures.get("recipients", 0)) - int(self.figures.get("reached", 0))

    @property
    def cancellable(self) -> bool:
        """Whether some of its copies have not gone yet."""
        return self.state in ("scheduled", "sending") and self.progress.queued > 0


def trust_progress(
    records: Iterable[TrustMessage], now: dt.datetime
) -> dict[int, list[SchoolProgress]]:
    """Each trust-wide send's schools, in the order chosen, with their delivery progress: two
    queries for a page of sends, whatever the number of schools."""
    records = list(records)
    messages: dict[tuple[int, str], Message] = {}
    for message in Message.objects.filter(
        trust_message__in=records, kind=Message.Kind.SCHOOL
    ).select_related("school"):
        assert message.trust_message_id is not None
        messages[(message.trust_message_id, message.school.urn)] = message
    progress = progress_of(m.pk for m in messages.values())
    found: dict[int, list[SchoolProgress]] = {}
    for record in records:
        rows = found[record.pk] = []
        for figures in record.summary:
            found_message = messages.get((record.pk, figures["urn"]))
            counted = progress[found_message.pk] if found_message is not None else Progress()
            state = message_state(found_message, counted, now) if found_message else "—"
            rows.append(
                SchoolProgress(
                    figures["urn"], figures["name"], found_message, counted, state, figures
                )
            )
    return found
