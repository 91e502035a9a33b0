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
4. the unreachable: targeted students (or chosen people) whom no copy reaches.
"""

from __future__ import annotations

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


@dataclass
class Resolved:
    copies: list[Copy]
    unreachable: list[Unreachable]
    people: int
    students: int

    def count(self, channel: str) -> int:
        return sum(1 for c in self.copies if c.channel == channel)


def _full_name(forename: str, surname: str) -> str:
    return f"{forename} {surname}".strip()


def _students(school: School, audience: Audience) -> dict[int, tuple[str, str, str, str]]:
    """Targeted current students: id → (forename, surname, year, group)."""
    students = Member.objects.filter(
        school=school, kind=Member.Kind.STUDENT, status=Member.Status.CURRENT
    )
    if audience.students == "years":
        students = students.filter(year__in=audience.years)
    elif audience.students == "groups":
        students = students.filter(reg_group__in=audience.groups)
    elif audience.students == "chosen":
        students = students.filter(pk__in=audience.student_ids)
    rows = students.order_by("surname", "forename", "pk").values_list(
        "pk", "forename", "surname", "year", "reg_group"
    )
    return {pk: (forename, surname, year, group) for pk, forename, surname, year, group in rows}


_ADULT_FIELDS = (
    "pk",
    "forename",
    "surname",
    "email",
    "mobile",
    "email_off",
    "sms_off",
)


def _adult_person(row: tuple[Any, ...], blocked: set[str]) -> Person:
    pk, forename, surname, email, mobile, email_off, sms_off = row
    return Person(
        adult_id=pk,
        member_id=None,
        name=_full_name(forename, surname),
        email=email,
        mobile=mobile,
        email_ok=bool(email) and not email_off,
        sms_ok=bool(mobile) and not sms_off and mobile not in blocked,
    )


def _parents(
    school: School,
    audience: Audience,
    students: dict[int, tuple[str, str, str, str]],
    blocked: set[str],
) -> tuple[list[Person], dict[int, list[Person]]]:
    links = Link.objects.filter(school=school, adult__opted_out=False, adult__held=False)
    if audience.students != "all":
        links = links.filter(student_id__in=list(students))
    else:
        links = links.filter(
            student__kind=Member.Kind.STUDENT, student__status=Member.Status.CURRENT
        )
    if audience.parents == "prime":
        links = links.filter(prime=True)
    elif audience.parents == "responsibility":
        links = links.filter(parental_responsibility=True)
    rows = links.order_by("adult_id", "student_id").values_list(
        "student_id", *(f"adult__{name}" for name in _ADULT_FIELDS)
    )
    people: dict[int, Person] = {}
    by_student: dict[int, list[Person]] = {}
    for student_id, *adult in rows:
        student = students.get(student_id)
        if student is None:
            continue
        person = people.get(adult[0])
        if person is None:
            person = people[adult[0]] = _adult_person(tuple(adult), blocked)
        person.children.append(student[0])
        person.student_ids.append(student_id)
        by_student.setdefault(student_id, []).append(person)
    return list(people.values()), by_student


def _member_person(row: tuple[Any, ...], blocked: set[str]) -> Person:
    pk, forename, surname, email, mobile = row
    return Person(
        adult_id=None,
        member_id=pk,
        name=_full_name(forename, surname),
        email=email,
        mobile=mobile,
        email_ok=bool(email),
        sms_ok=bool(mobile) and mobile not in blocked,
    )


_MEMBER_FIELDS = ("pk", "forename", "surname", "email", "mobile")


def _staff(school: School, audience: Audience, blocked: set[str]) -> list[Person]:
    members = Member.objects.filter(
        school=school, kind=Member.Kind.ADULT, status=Member.Status.CURRENT, opted_out=False
    )
    if audience.roles:
        members = members.filter(role__in=audience.roles)
    rows = members.order_by("surname", "forename", "pk").values_list(*_MEMBER_FIELDS)
    return [_member_person(row, blocked) for row in rows]


def _individuals(
    school: School, audience: Audience, blocked: set[str]
) -> tuple[list[Person], list[Unreachable]]:
    """Chosen people; those the register will not let us message are listed as unreachable."""
    people: list[Person] = []
    excluded: list[Unreachable] = []
    adults = Adult.objects.filter(school=school, pk__in=audience.adult_ids)
    for adult in adults.order_by("surname", "forename", "pk"):
        if adult.opted_out or adult.held:
            why = "opted out" if adult.opted_out else "held for review"
            name = _full_name(adult.forename, adult.surname)
            excluded.append(Unreachable(None, adult.pk, name, "", "", why))
            continue
        people.append(_adult_person(tuple(getattr(adult, f) for f in _ADULT_FIELDS), blocked))
    # Their current children, for {children}: one query for everyone chosen.
    children = (
        Link.objects.filter(
            adult_id__in=[p.adult_id for p in people],
            student__kind=Member.Kind.STUDENT,
            student__status=Member.Status.CURRENT,
        )
        .order_by("student__forename", "student_id")
        .values_list("adult_id", "student__forename")
    )
    by_adult = {p.adult_id: p for p in people}
    for adult_id, forename in children:
        by_adult[adult_id].children.append(forename)
    members = Member.objects.filter(
        school=school, pk__in=audience.member_ids, kind=Member.Kind.ADULT
    ).order_by("surname", "forename", "pk")
    for member in members:
        if member.opted_out or member.status != Member.Status.CURRENT:
            why = "opted out" if member.opted_out else "has left"
            name = _full_name(member.forename, member.surname)
            excluded.append(Unreachable(member.pk, None, name, "", "", why))
            continue
        people.append(_member_person(tuple(getattr(member, f) for f in _MEMBER_FIELDS), blocked))
    return people, excluded


def blocked_numbers(school: School) -> set[str]:
    return set(SmsBlock.objects.filter(school=school).values_list("number", flat=True))


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
    return f"no adult with {_WANTS.get(mode, 'an email address or a mobile')}"


def _why_person(mode: str) -> str:
    """Why one chosen person gets nothing (the number or address may be missing, or turned off
    by them, or blocked by a STOP)."""
    return {
        "sms": "no mobile that can take this SMS",
        "email": "no email address that can take this",
    }.get(mode, "no email address or mobile that can take this")


def _unreached(people: list[Person], reached: set[int], mode: str) -> list[Unreachable]:
    """Chosen people (not students) whom no copy reaches."""
    return [
        Unreachable(p.member_id, p.adult_id, p.name, "", "", _why_person(mode))
        for p in people
        if id(p) not in reached
    ]


def resolve(school: School, audience: Audience, mode: str) -> Resolved:
    if mode not in Mode.values:
        raise AudienceError(f"Unknown channel {mode!r}.")
    blocked = blocked_numbers(school)
    if audience.who == "staff":
        people = _staff(school, audience, blocked)
        copies, reached = _copies(people, mode)
        return Resolved(copies, _unreached(people, reached, mode), len(people), 0)
    if audience.who == "individuals":
        people, excluded = _individuals(school, audience, blocked)
        copies, reached = _copies(people, mode)
        return Resolved(copies, excluded + _unreached(people, reached, mode), len(people), 0)
    students = _students(school, audience)
    people, by_student = _parents(school, audience, students, blocked)
    staff = _staff(school, audience, blocked) if audience.roles else []
    # Staff after parents: a member of staff who is also a parent shares the parent's copy.
    copies, reached = _copies([*people, *staff], mode)
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
    return Resolved(copies, unreachable, len(people) + len(staff), len(students))
