"""Who a message goes to: the audience staff chose, resolved against the register into one copy
per number or address.

Resolution is reads only, a fixed handful of queries whatever the school's size:

1. the people: parents linked to the targeted students (all of them, prime only, or those with
   parental responsibility), adult members by role, or chosen individuals — never anyone opted
   out or held for review, never a student who has left;
2. per person, the channels the message may use: a number only if it takes SMS, the person has not
   turned SMS off and the number has not texted STOP; an address only if email is not turned off;
3. one copy per person (a parent of three targeted children gets one message naming all three),
   then one copy per number or address (a phone two parents share, a member of staff who is also a
   parent): the copy greets every person it stands for and names every child;
4. the unreachable: targeted students (or chosen people) whom no copy reaches;
5. the left out: every person the audience names whom no copy reaches, with the one reason the
   office can act on (opted out, held for review, no email or mobile, the channel turned off,
   the number texted STOP), so that the people counted are the people reached plus the people
   left out, and the messages are the copies left after sharing.

The opted-out and held come back from the same queries as everyone else (a flag on each row) and
are set aside before any copy is made: they are reported, never reached.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from homelink.messaging.merge import list_names
from homelink.messaging.models import Channel, Message, SmsBlock
from homelink.register.models import Adult, Link, Member
from homelink.schools.models import School

Mode = Message.Mode


class AudienceError(ValueError):
    pass


@dataclass(frozen=True)
class Audience:
    """What staff chose. ``who`` is ``parents``, ``staff`` or ``individuals``.

    Parents: ``parents`` is ``all``, ``prime`` or ``responsibility``; ``students`` is ``all``,
    ``years``, ``groups`` or ``chosen`` with the matching list; ``roles`` adds adult members with
    those roles. Staff: ``roles`` (none = every adult member). Individuals: ``adult_ids`` (parents and carers) and ``member_ids`` (adult
    members).
    """

    who: str = "parents"
    parents: str = "all"
    students: str = "all"
    years: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    student_ids: tuple[int, ...] = ()
    roles: tuple[str, ...] = ()
    adult_ids: tuple[int, ...] = ()
    member_ids: tuple[int, ...] = ()

    WHO = ("parents", "staff", "individuals")
    PARENTS = ("all", "prime", "responsibility")
    STUDENTS = ("all", "years", "groups", "chosen")

    def __post_init__(self) -> None:
        if self.who not in self.WHO:
            raise AudienceError(f"Unknown audience {self.who!r}: use {', '.join(self.WHO)}.")
        if self.parents not in self.PARENTS:
            raise AudienceError(f"Unknown parents choice {self.parents!r}.")
        if self.students not in self.STUDENTS:
            raise AudienceError(f"Unknown students choice {self.students!r}.")
        if self.who == "parents":
            chosen = {"years": self.years, "groups": self.groups, "chosen": self.student_ids}
            if self.students in chosen and not chosen[self.students]:
                raise AudienceError(f"Choose at least one of the {self.students_noun}.")
        if self.who == "individuals" and not (self.adult_ids or self.member_ids):
            raise AudienceError("Choose at least one person.")
        bad_roles = set(self.roles) - {r for r in Member.Role.values if r != Member.Role.STUDENT}
        if bad_roles:
            raise AudienceError(f"Unknown role {sorted(bad_roles)[0]!r}.")

    @property
    def students_noun(self) -> str:
        return {"years": "year groups", "groups": "registration groups"}.get(
            self.students, "students"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "who": self.who,
            "parents": self.parents,
            "students": self.students,
            "years": list(self.years),
            "groups": list(self.groups),
            "student_ids": list(self.student_ids),
            "roles": list(self.roles),
            "adult_ids": list(self.adult_ids),
            "member_ids": list(self.member_ids),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Audience:
        return cls(
            who=str(data.get("who", "parents")),
            parents=str(data.get("parents", "all")),
            students=str(data.get("students", "all")),
            years=tuple(str(y) for y in data.get("years", ())),
            groups=tuple(str(g) for g in data.get("groups", ())),
            student_ids=tuple(int(i) for i in data.get("student_ids", ())),
            roles=tuple(str(r) for r in data.get("roles", ())),
            adult_ids=tuple(int(i) for i in data.get("adult_ids", ())),
            member_ids=tuple(int(i) for i in data.get("member_ids", ())),
        )

    def label(self) -> str:
        """A short description for lists ("Prime parents of year 7, 8")."""
        if self.who == "staff":
            roles = ", ".join(Member.Role(r).label for r in self.roles)
            return f"Staff: {roles}" if roles else "All adult members"
        if self.who == "individuals":
            count = len(self.adult_ids) + len(self.member_ids)
            return f"{count} chosen {'person' if count == 1 else 'people'}"
        parents = {
            "all": "Parents",
            "prime": "Prime parents",
            "responsibility": "Parents with parental responsibility",
        }[self.parents]
        if self.students == "years":
            label = f"{parents} of year {', '.join(self.years)}"
        elif self.students == "groups":
            label = f"{parents} of {', '.join(self.groups)}"
        elif self.students == "chosen":
            count = len(self.student_ids)
            label = f"{parents} of {count} chosen student{'s' if count != 1 else ''}"
        else:
            label = f"{parents} of all students"
        if self.roles:
            label += " and staff: " + ", ".join(Member.Role(r).label for r in self.roles)
        return label


class LeftOutReason(enum.StrEnum):
    """Why someone the audience names gets nothing, in the order the preview lists them."""

    OPTED_OUT = "opted_out"
    HELD = "held"
    LEFT = "left"
    NO_DETAILS = "no_details"
    CHANNEL_OFF = "channel_off"
    STOP = "stop"


@dataclass
class Person:
    """Someone the audience includes, with what the register says about reaching them."""

    adult_id: int | None
    member_id: int | None
    name: str
    email: str
    mobile: str
    email_ok: bool
    sms_ok: bool
    children: list[str] = field(default_factory=list)
    student_ids: list[int] = field(default_factory=list)
    #: Set for someone nothing may reach whatever the channel (opted out, held, has left).
    barred: LeftOutReason | None = None
    email_off: bool = False
    sms_off: bool = False
    #: Their number texted STOP to the school.
    stopped: bool = False

    @property
    def record_id(self) -> int | None:
        """The member whose linked-people screen shows this person: an adult member's own, a
        parent's first targeted child's (None for a parent with no current child)."""
        if self.member_id is not None:
            return self.member_id
        return self.student_ids[0] if self.student_ids else None


@dataclass
class Copy:
    """One copy of the message: one channel, one number or address."""

    channel: str
    to: str
    people: list[Person]

    @property
    def name(self) -> str:
        return list_names(list(dict.fromkeys(p.name for p in self.people)))

    @property
    def children(self) -> str:
        return list_names(list(dict.fromkeys(c for p in self.people for c in p.children)))

    @property
    def adult_ids(self) -> list[int]:
        return [p.adult_id for p in self.people if p.adult_id is not None]

    @property
    def member_ids(self) -> list[int]:
        return [p.member_id for p in self.people if p.member_id is not None]


@dataclass(frozen=True)
class Unreachable:
    """A targeted student nobody can reach on the chosen channels (or a chosen person)."""

    member_id: int | None
    adult_id: int | None
    name: str
    year: str
    group: str
    why: str


@dataclass(frozen=True)
class LeftOutGroup:
    """The people left out for one reason, with the office's words for it."""

    reason: LeftOutReason
    title: str
    advice: str
    people: list[Person]


def left_out_words(reason: LeftOutReason, mode: str) -> tuple[str, str]:
    """(title, what it means or what to do) for one reason, in the words of the channel chosen."""
    lacking = {"sms": "mobile", "email": "email address"}.get(mode, "email address or mobile")
    off = {"sms": "SMS", "email": "email"}.get(mode, "email or SMS")
    words = {
        LeftOutReason.OPTED_OUT: (
            "Opted out",
            "They asked for no messages from the school; their record says when and who "
            "recorded it.",
        ),
        LeftOutReason.HELD: (
            "Held for review",
            "The MIS flags a court order: they receive nothing until staff review them on "
            "their record.",
        ),
        LeftOutReason.LEFT: ("Has left", "They are no longer on the school's roll."),
        LeftOutReason.NO_DETAILS: (
            f"No {lacking}",
            f"The register has no {lacking} for them: add it in the MIS (or on their record, "
            "if staff added them by hand).",
        ),
        LeftOutReason.CHANNEL_OFF: (
            f"Turned {off} off",
            f"They chose not to get {off} from the school. Only they can turn it back on, from "
            "their account.",
        ),
        LeftOutReason.STOP: (
            "Texted STOP",
            "Their mobile texted STOP to the school's number. Texting START turns SMS back on.",
        ),
    }
    return words[reason]


@dataclass
class Resolved:
    copies: list[Copy]
    unreachable: list[Unreachable]
    #: Everyone the audience names: those some copy reaches plus those left out.
    people: int
    students: int
    #: The people no copy reaches, each with one reason (see :class:`LeftOutReason`).
    left_out: list[tuple[Person, LeftOutReason]] = field(default_factory=list)
    mode: str = Mode.EMAIL_ELSE_SMS

    def count(self, channel: str) -> int:
        return sum(1 for c in self.copies if c.channel == channel)

    @property
    def reached(self) -> int:
        return self.people - len(self.left_out)

    def left_out_counts(self) -> dict[str, int]:
        """People left out by reason, every reason present (0 when none)."""
        counts = dict.fromkeys(LeftOutReason, 0)
        for _person, reason in self.left_out:
            counts[reason] += 1
        return {reason.value: n for reason, n in counts.items()}

    def left_out_groups(self) -> list[LeftOutGroup]:
        """The left out by reason, in the order of :class:`LeftOutReason`, each by name."""
        by_reason: dict[LeftOutReason, list[Person]] = {}
        for person, reason in self.left_out:
            by_reason.setdefault(reason, []).append(person)
        groups = []
        for reason in LeftOutReason:
            if reason in by_reason:
                title, advice = left_out_words(reason, self.mode)
                people = sorted(by_reason[reason], key=lambda p: (p.name.casefold(), id(p)))
                groups.append(LeftOutGroup(reason, title, advice, people))
        return groups

    @property
    def shared(self) -> list[Copy]:
        """Copies that stand for more than one person: one number or address they share."""
        return [c for c in self.copies if len(c.people) > 1]

    @property
    def copies_saved(self) -> int:
        """How many fewer messages sharing makes than one per person and channel."""
        return sum(len(c.people) - 1 for c in self.copies)


def _full_name(forename: str, surname: str) -> str:
    return f"{forename} {surname}".strip()


Students = dict[int, tuple[str, str, str, str]]


def _students(school_ids: list[int], audience: Audience) -> dict[int, Students]:
    """Targeted current students of each school: school id → (id → (forename, surname, year,
    group)), each school's in name order."""
    students = Member.objects.filter(
        school_id__in=school_ids, kind=Member.Kind.STUDENT, status=Member.Status.CURRENT
    )
    if audience.students == "years":
        students = students.filter(year__in=audience.years)
    elif audience.students == "groups":
        students = students.filter(reg_group__in=audience.groups)
    elif audience.students == "chosen":
        students = students.filter(pk__in=audience.student_ids)
    rows = students.order_by("surname", "forename", "pk").values_list(
        "school_id", "pk", "forename", "surname", "year", "reg_group"
    )
    found: dict[int, Students] = {pk: {} for pk in school_ids}
    for school_id, pk, forename, surname, year, group in rows:
        found[school_id][pk] = (forename, surname, year, group)
    return found


_ADULT_FIELDS = (
    "pk",
    "forename",
    "surname",
    "email",
    "mobile",
    "email_off",
    "sms_off",
    "opted_out",
    "held",
)


def _adult_person(row: tuple[Any, ...], blocked: set[str]) -> Person:
    pk, forename, surname, email, mobile, email_off, sms_off, opted_out, held = row
    barred = LeftOutReason.OPTED_OUT if opted_out else LeftOutReason.HELD if held else None
    stopped = bool(mobile) and mobile in blocked
    return Person(
        adult_id=pk,
        member_id=None,
        name=_full_name(forename, surname),
        email=email,
        mobile=mobile,
        email_ok=barred is None and bool(email) and not email_off,
        sms_ok=barred is None and bool(mobile) and not sms_off and not stopped,
        barred=barred,
        email_off=email_off,
        sms_off=sms_off,
        stopped=stopped,
    )


def _parents(
    school_ids: list[int],
    audience: Audience,
    students: dict[int, Students],
    blocked: dict[int, set[str]],
) -> dict[int, tuple[list[Person], dict[int, list[Person]]]]:
    """Each school's parents of its targeted students, and who is linked to each student."""
    # Opted-out and held adults too: they are reported as left out, never given a copy.
    links = Link.objects.filter(school_id__in=school_ids)
    if audience.students != "all":
        links = links.filter(student_id__in=[pk for found in students.values() for pk in found])
    else:
        links = links.filter(
            student__kind=Member.Kind.STUDENT, student__status=Member.Status.CURRENT
        )
    if audience.parents == "prime":
        links = links.filter(prime=True)
    elif audience.parents == "responsibility":
        links = links.filter(parental_responsibility=True)
    rows = links.order_by("adult_id", "student_id").values_list(
        "school_id", "student_id", *(f"adult__{name}" for name in _ADULT_FIELDS)
    )
    people: dict[int, dict[int, Person]] = {pk: {} for pk in school_ids}
    by_student: dict[int, dict[int, list[Person]]] = {pk: {} for pk in school_ids}
    for school_id, student_id, *adult in rows:
        student = students[school_id].get(student_id)
        if student is None:
            continue
        person = people[school_id].get(adult[0])
        if person is None:
            person = people[school_id][adult[0]] = _adult_person(tuple(adult), blocked[school_id])
        person.children.append(student[0])
        person.student_ids.append(student_id)
        by_student[school_id].setdefault(student_id, []).append(person)
    return {pk: (list(people[pk].values()), by_student[pk]) for pk in school_ids}


def _member_person(row: tuple[Any, ...], blocked: set[str]) -> Person:
    pk, forename, surname, email, mobile, opted_out, status = row
    barred = (
        LeftOutReason.OPTED_OUT
        if opted_out
        else LeftOutReason.LEFT
        if status != Member.Status.CURRENT
        else None
    )
    stopped = bool(mobile) and mobile in blocked
    return Person(
        adult_id=None,
        member_id=pk,
        name=_full_name(forename, surname),
        email=email,
        mobile=mobile,
        email_ok=barred is None and bool(email),
        sms_ok=barred is None and bool(mobile) and not stopped,
        barred=barred,
        stopped=stopped,
    )


_MEMBER_FIELDS = ("pk", "forename", "surname", "email", "mobile", "opted_out", "status")


def _staff(
    school_ids: list[int], audience: Audience, blocked: dict[int, set[str]]
) -> dict[int, list[Person]]:
    # The opted out too, to be reported; staff who left are not staff, so not in the audience.
    members = Member.objects.filter(
        school_id__in=school_ids, kind=Member.Kind.ADULT, status=Member.Status.CURRENT
    )
    if audience.roles:
        members = members.filter(role__in=audience.roles)
    rows = members.order_by("surname", "forename", "pk").values_list("school_id", *_MEMBER_FIELDS)
    found: dict[int, list[Person]] = {pk: [] for pk in school_ids}
    for school_id, *row in rows:
        found[school_id].append(_member_person(tuple(row), blocked[school_id]))
    return found


def _individuals(school: School, audience: Audience, blocked: set[str]) -> list[Person]:
    """Chosen people, the opted out and held among them marked as barred."""
    people: list[Person] = []
    rows = (
        Adult.objects.filter(school=school, pk__in=audience.adult_ids)
        .order_by("surname", "forename", "pk")
        .values_list(*_ADULT_FIELDS)
    )
    for row in rows:
        people.append(_adult_person(row, blocked))
    # Their current children, for {children} and for where to find them: one query for all.
    children = (
        Link.objects.filter(
            adult_id__in=[p.adult_id for p in people],
            student__kind=Member.Kind.STUDENT,
            student__status=Member.Status.CURRENT,
        )
        .order_by("student__forename", "student_id")
        .values_list("adult_id", "student_id", "student__forename")
    )
    by_adult = {p.adult_id: p for p in people}
    for adult_id, student_id, forename in children:
        by_adult[adult_id].children.append(forename)
        by_adult[adult_id].student_ids.append(student_id)
    members = (
        Member.objects.filter(school=school, pk__in=audience.member_ids, kind=Member.Kind.ADULT)
        .order_by("surname", "forename", "pk")
        .values_list(*_MEMBER_FIELDS)
    )
    people += [_member_person(row, blocked) for row in members]
    return people


def blocked_numbers(school: School) -> set[str]:
    return set(SmsBlock.objects.filter(school=school).values_list("number", flat=True))


def _blocked(school_ids: list[int]) -> dict[int, set[str]]:
    found: dict[int, set[str]] = {pk: set() for pk in school_ids}
    for school_id, number in SmsBlock.objects.filter(school_id__in=school_ids).values_list(
        "school_id", "number"
    ):
        found[school_id].add(number)
    return found


def channels_for(person: Person, mode: str) -> list[tuple[str, str]]:
    """The (channel, address) pairs the message uses for this person."""
    email = (Channel.EMAIL, person.email.lower()) if person.email_ok else None
    sms = (Channel.SMS, person.mobile) if person.sms_ok else None
    if mode == Mode.SMS:
        chosen = [sms]
    elif mode == Mode.EMAIL:
        chosen = [email]
    elif mode == Mode.BOTH:
        chosen = [email, sms]
    else:
        chosen = [email or sms]
    return [c for c in chosen if c is not None]


def _copies(people: Iterable[Person], mode: str) -> tuple[list[Copy], set[int]]:
    """One copy per (channel, address), in the order people come; and the ids of the people
    some copy reaches (by ``id()``, as adults and members are different tables)."""
    copies: dict[tuple[str, str], Copy] = {}
    reached: set[int] = set()
    for person in people:
        for channel, to in channels_for(person, mode):
            reached.add(id(person))
            copy = copies.get((channel, to))
            if copy is None:
                copies[(channel, to)] = Copy(channel, to, [person])
            else:
                copy.people.append(person)
    return list(copies.values()), reached


_WANTS = {"sms": "a mobile that takes SMS", "email": "an email address"}


def _why(person_list: list[Person], mode: str) -> str:
    if not person_list:
        return "no linked adult"
    if all(p.barred is not None for p in person_list):
        return "every linked adult opted out or held for review"
    return f"no adult with {_WANTS.get(mode, 'an email address or a mobile')}"


def _why_person(mode: str) -> str:
    """Why one chosen person gets nothing (the number or address may be missing, or turned off
    by them, or blocked by a STOP)."""
    return {
        "sms": "no mobile that can take this SMS",
        "email": "no email address that can take this",
    }.get(mode, "no email address or mobile that can take this")


_WHY_BARRED = {
    LeftOutReason.OPTED_OUT: "opted out",
    LeftOutReason.HELD: "held for review",
    LeftOutReason.LEFT: "has left",
}


def _unreached(people: list[Person], reached: set[int], mode: str) -> list[Unreachable]:
    """Chosen people (not students) whom no copy reaches: the barred first, as chosen."""
    missed = [p for p in people if id(p) not in reached]
    return [
        Unreachable(
            p.member_id,
            p.adult_id,
            p.name,
            "",
            "",
            _WHY_BARRED[p.barred] if p.barred is not None else _why_person(mode),
        )
        for p in sorted(missed, key=lambda p: p.barred is None)
    ]


def _left_out_reason(person: Person, mode: str) -> LeftOutReason:
    """The one reason to show for someone no copy reaches. A detail they have but cannot be
    used (a STOP, a channel turned off) says more than one they lack, so it is given first:
    with email, else SMS, an address turned off and no mobile at all reads "turned off"."""
    if person.barred is not None:
        return person.barred
    wanted: tuple[str, ...] = {"sms": (Channel.SMS,), "email": (Channel.EMAIL,)}.get(
        mode, (Channel.EMAIL, Channel.SMS)
    )
    reasons = set()
    for channel in wanted:
        if channel == Channel.EMAIL:
            reasons.add(LeftOutReason.CHANNEL_OFF if person.email else LeftOutReason.NO_DETAILS)
        elif not person.mobile:
            reasons.add(LeftOutReason.NO_DETAILS)
        else:
            reasons.add(LeftOutReason.STOP if person.stopped else LeftOutReason.CHANNEL_OFF)
    for reason in (LeftOutReason.STOP, LeftOutReason.CHANNEL_OFF):
        if reason in reasons:
            return reason
    return LeftOutReason.NO_DETAILS


def _reach(
    people: list[Person], mode: str
) -> tuple[list[Copy], set[int], list[tuple[Person, LeftOutReason]]]:
    """The copies for everyone who may be messaged, who they reach, and who is left out."""
    copies, reached = _copies([p for p in people if p.barred is None], mode)
    left_out = [(p, _left_out_reason(p, mode)) for p in people if id(p) not in reached]
    return copies, reached, left_out


def resolve(school: School, audience: Audience, mode: str) -> Resolved:
    if audience.who == "individuals":
        if mode not in Mode.values:
            raise AudienceError(f"Unknown channel {mode!r}.")
        people = _individuals(school, audience, blocked_numbers(school))
        copies, reached, left_out = _reach(people, mode)
        return Resolved(copies, _unreached(people, reached, mode), len(people), 0, left_out, mode)
    return resolve_schools([school], audience, mode)[0]


def resolve_schools(schools: list[School], audience: Audience, mode: str) -> list[Resolved]:
    """The audience at each of ``schools``, each exactly as that school's own send resolves it
    (a trust-wide send): the same handful of queries for all of them together, so the cost
    does not grow with the number of schools beyond the work per school in Python."""
    if mode not in Mode.values:
        raise AudienceError(f"Unknown channel {mode!r}.")
    if audience.who == "individuals":
        raise AudienceError("Chosen people belong to one school: send to them school by school.")
    ids = [school.pk for school in schools]
    blocked = _blocked(ids)
    if audience.who == "staff":
        staff = _staff(ids, audience, blocked)
        found = []
        for pk in ids:
            people = staff[pk]
            copies, reached, left_out = _reach(people, mode)
            found.append(
                Resolved(copies, _unreached(people, reached, mode), len(people), 0, left_out, mode)
            )
        return found
    students = _students(ids, audience)
    parents = _parents(ids, audience, students, blocked)
    staff = _staff(ids, audience, blocked) if audience.roles else {pk: [] for pk in ids}
    return [_parents_resolved(students[pk], *parents[pk], staff[pk], mode) for pk in ids]


def _parents_resolved(
    students: Students,
    people: list[Person],
    by_student: dict[int, list[Person]],
    staff: list[Person],
    mode: str,
) -> Resolved:
    # Staff after parents: a member of staff who is also a parent shares the parent's copy.
    everyone = [*people, *staff]
    copies, reached, left_out = _reach(everyone, mode)
    unreachable = []
    for student_id, (forename, surname, year, group) in students.items():
        linked = by_student.get(student_id, [])
        if not any(id(p) in reached for p in linked):
            unreachable.append(
                Unreachable(
                    student_id,
                    None,
                    _full_name(forename, surname),
                    year,
                    group,
                    _why(linked, mode),
                )
            )
    unreachable += _unreached(staff, reached, mode)
    return Resolved(copies, unreachable, len(everyone), len(students), left_out, mode)
