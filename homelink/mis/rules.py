"""The import rules (product.md, "The import rules"): records + the register → a plan.

Planning only reads. It loads the school's register once into compact in-memory state, walks the
file's records, and decides every create, update, removal and skip with its reason. The plan is the
preview; :mod:`homelink.mis.apply` writes it in one short transaction. Keeping the two apart means
parents registering and workers are not locked out while a big file is read, and the console, the
CLI and tests all see exactly the same plan.
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from sys import intern
from typing import Any

from django.conf import settings

from homelink.mis.phones import pick_mobile
from homelink.mis.records import ContactRecord, FileHeader, Format, MemberRecord
from homelink.register.identity import clean_text, name_key, normalise_email
from homelink.register.models import Adult, Link, Member, Source
from homelink.schools.models import School

#: How many itemised entries of each kind the preview keeps; counts are always complete.
DETAIL_LIMIT = 500

RELATIONSHIPS = {
    "PAM": "mother",
    "PAF": "father",
    "PAR": "parent",
    "STM": "step-mother",
    "STF": "step-father",
    "FOM": "foster mother",
    "FOF": "foster father",
    "GRM": "grandmother",
    "GRF": "grandfather",
    "CAR": "carer",
    "CHM": "childminder",
    "DOC": "doctor",
    "REL": "relative",
    "SWR": "social worker",
    "OTH": "other",
    "PARENT": "parent",
    "GUARDIAN": "guardian",
    "RELATIVE": "relative",
}


def relationship_label(code: str) -> str:
    code = code.strip()
    if not code:
        return ""
    return RELATIONSHIPS.get(code.upper(), "other")


class ImportRefused(Exception):
    """The file is not one this school may import as asked (wrong school, leavers guard).

    The message is for anyone, the school office in the console included: it never names a
    command-line option. ``cli_hint`` is what ``homelink import`` adds: the option that goes
    past the refusal. The console offers its own choice instead (see ``forceable``).
    """

    #: Whether importing anyway (``force``) goes past this refusal.
    forceable = False

    def __init__(self, message: str, *, cli_hint: str = "") -> None:
        super().__init__(message)
        self.cli_hint = cli_hint


class AnotherSchoolsFile(ImportRefused):
    """The file names another school (or another OneRoster org): imported only when forced."""

    forceable = True


# --- the register as the planner sees it -----------------------------------------------------


@dataclass(slots=True)
class MemberState:
    id: int
    kind: str
    role: str
    mis_id: str
    former_upn: str
    admission_no: str
    forename: str
    surname: str
    year: str
    reg_group: str
    email: str
    mobile: str
    status: str
    registered: bool
    opted_out: bool


MEMBER_FIELDS = list(MemberState.__slots__)


@dataclass(slots=True)
class AdultState:
    """An adult as the planner needs it. Its details are kept only as a digest: they are read
    for the few adults the file changes, not held for the hundreds of thousands it does not."""

    id: int
    name_key: str
    source: str
    registered: bool
    opted_out: bool
    court_order: bool
    held: bool
    mis_id: str
    details: int


ADULT_FIELDS = [
    "id",
    "name_key",
    "source",
    "registered",
    "opted_out",
    "court_order",
    "held",
    "mis_id",
]
DETAIL_FIELDS = ("title", "forename", "surname", "email", "mobile")


def details_digest(values: tuple[str, ...]) -> int:
    """Stands for an adult's DETAIL_FIELDS within one process (str hashes are per process)."""
    return hash(values)


@dataclass(slots=True)
class LinkState:
    id: int
    student_id: int
    adult_id: int
    source: str
    priority: int | None
    prime: bool
    prime_set_by: str
    relationship: str
    parental_responsibility: bool


LINK_FIELDS = list(LinkState.__slots__)

MEMBER_CREATE = (
    "mis_id",
    "kind",
    "role",
    "former_upn",
    "admission_no",
    "forename",
    "surname",
    "year",
    "reg_group",
    "email",
    "mobile",
)
ADULT_CREATE = (
    "title",
    "forename",
    "surname",
    "name_key",
    "email",
    "mobile",
    "court_order",
    "held",
    "mis_id",
)


@dataclass(slots=True)
class Register:
    members: dict[str, MemberState]
    by_former: dict[str, MemberState]
    by_admission: dict[str, MemberState]
    adults: dict[int, AdultState]
    by_adult_mis_id: dict[str, int]
    links: dict[int, list[LinkState]]


def _batches(items: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _interning(fields: list[str], names: set[str]) -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
    """A row converter that interns the given text columns: names, years, relationships and
    codes repeat across a school, and a big register's rows would otherwise hold copies."""
    positions = [i for i, name in enumerate(fields) if name in names]

    def convert(row: tuple[Any, ...]) -> tuple[Any, ...]:
        values = list(row)
        for i in positions:
            values[i] = intern(values[i])
        return tuple(values)

    return convert


def load_register(school: School) -> Register:
    """One query per table, compact rows: a 100,000-pupil school fits in memory this way."""
    members: dict[str, MemberState] = {}
    by_former: dict[str, MemberState] = {}
    by_admission: dict[str, MemberState] = {}
    convert = _interning(
        MEMBER_FIELDS, {"kind", "role", "forename", "surname", "year", "reg_group", "status"}
    )
    for row in Member.objects.filter(school=school).values_list(*MEMBER_FIELDS).iterator(2000):
        m = MemberState(*convert(row))
        members[m.mis_id] = m
        if m.former_upn:
            by_former[m.former_upn] = m
        if m.admission_no:
            by_admission[m.admission_no] = m
    adults: dict[int, AdultState] = {}
    by_adult_mis_id: dict[str, int] = {}
    for row in (
        Adult.objects.filter(school=school)
        .values_list(*ADULT_FIELDS, *DETAIL_FIELDS)
        .iterator(2000)
    ):
        pk, key, source, registered, opted_out, court_order, held, mis_id, *details = row
        a = AdultState(
            pk,
            key,
            intern(source),
            registered,
            opted_out,
            court_order,
            held,
            mis_id,
            details_digest(tuple(details)),
        )
        adults[a.id] = a
        if a.mis_id:
            by_adult_mis_id[a.mis_id] = a.id
    links: dict[int, list[LinkState]] = defaultdict(list)
    convert = _interning(LINK_FIELDS, {"source", "prime_set_by", "relationship"})
    for row in Link.objects.filter(school=school).values_list(*LINK_FIELDS).iterator(2000):
        link = LinkState(*convert(row))
        if link.adult_id not in adults:
            continue  # made by a registration after the adults were read: not this import's
        links[link.student_id].append(link)
    return Register(members, by_former, by_admission, adults, by_adult_mis_id, links)


#: A label for the preview, or a function making one: most are never shown (the preview keeps
#: the first entries of each kind), and a big import makes hundreds of thousands.
Label = str | Callable[[], str]

# --- the plan ----------------------------------------------------------------------------------

#: A member or adult is referred to by its id, or by a negative number while it is only planned.
Ref = int


@dataclass(slots=True)
class Report:
    """What the preview shows: complete counts, the first entries of each kind, the issues."""

    counts: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    details: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    issues: list[dict[str, Any]] = field(default_factory=list)
    issue_counts: Counter[str] = field(default_factory=Counter)

    def add(self, action: str, what: str, label: Label, reason: str = "", **extra: Any) -> None:
        key = f"{what}_{action}"
        self.counts[key] += 1
        if reason:
            self.reasons[f"{what} {action}: {reason}"] += 1
        bucket = self.details[action]
        if len(bucket) < DETAIL_LIMIT:
            entry: dict[str, Any] = {"what": what, "who": label() if callable(label) else label}
            if reason:
                entry["reason"] = reason
            entry.update(extra)
            bucket.append(entry)

    def issue(self, kind: str, message: str, *, student: str = "", where: str = "") -> None:
        self.issue_counts[kind] += 1
        if len(self.issues) < DETAIL_LIMIT * 4:
            item = {"kind": kind, "message": message}
            if student:
                item["student"] = student
            if where:
                item["where"] = where
            self.issues.append(item)


@dataclass(slots=True)
class Plan:
    school_id: int
    header: FileHeader
    students_whole_roll: bool
    staff_whole_roll: bool
    links_removable: bool
    #: New rows as tuples in MEMBER_CREATE / ADULT_CREATE column order: a first import plans
    #: hundreds of thousands of them, and a dict each would cost several times the memory.
    member_creates: dict[Ref, tuple[Any, ...]] = field(default_factory=dict)
    member_updates: dict[int, dict[str, Any]] = field(default_factory=dict)
    adult_creates: dict[Ref, tuple[Any, ...]] = field(default_factory=dict)
    adult_updates: dict[int, dict[str, Any]] = field(default_factory=dict)
    #: (student, adult, (priority, prime, relationship, parental responsibility))
    link_creates: list[tuple[Ref, Ref, int | None, bool, str, bool]] = field(default_factory=list)
    link_updates: dict[int, dict[str, Any]] = field(default_factory=dict)
    link_deletes: list[int] = field(default_factory=list)
    #: Existing students given a prime parent by this import: re-checked when applying, in case
    #: a parent registered (and became prime) while the file was being read.
    new_prime_students: set[int] = field(default_factory=set)
    leaving: list[int] = field(default_factory=list)
    current_students: int = 0
    report: Report = field(default_factory=Report)

    @property
    def leaving_students(self) -> int:
        return self.report.counts["student_left"]

    @property
    def leaver_share(self) -> float:
        return self.leaving_students / self.current_students if self.current_students else 0.0

    @property
    def has_writes(self) -> bool:
        return bool(
            self.member_creates
            or self.member_updates
            or self.adult_creates
            or self.adult_updates
            or self.link_creates
            or self.link_updates
            or self.link_deletes
            or self.leaving
        )

    def summary(self) -> dict[str, Any]:
        counts = self.report.counts
        return {
            "students": {
                "created": counts["student_create"],
                "updated": counts["student_update"],
                "unchanged": counts["student_unchanged"],
                "rejoined": counts["student_rejoin"],
                "left": counts["student_left"],
                "skipped": counts["student_skip"],
            },
            "staff": {
                "created": counts["staff_create"],
                "updated": counts["staff_update"],
                "unchanged": counts["staff_unchanged"],
                "left": counts["staff_left"],
                "skipped": counts["staff_skip"],
            },
            "adults": {
                "created": counts["adult_create"],
                "updated": counts["adult_update"],
                "skipped": counts["adult_skip"],
            },
            "links": {
                "created": counts["link_create"],
                "updated": counts["link_update"],
                "removed": counts["link_remove"],
                "skipped": counts["link_skip"],
            },
            "whole_roll": self.students_whole_roll,
            "links_removable": self.links_removable,
            "current_students": self.current_students,
            "leaver_share": round(self.leaver_share, 4),
            "reasons": dict(sorted(self.report.reasons.items())),
            "data_issues": dict(sorted(self.report.issue_counts.items())),
            "details": dict(self.report.details),
        }


# --- deciding ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ImportOptions:
    update_only: bool = False
    confirm_leavers: bool = False
    force: bool = False


def check_school(school: School, header: FileHeader, options: ImportOptions) -> str:
    """Which kind of file this is for the school: "own", "transfer-in", "forced" or "own"-like
    for formats without a school id. Raises :class:`ImportRefused` for another school's file."""
    if header.format == Format.CTF:
        if _same_school(school, header.source_urn, header.source_la, header.source_estab):
            return "own"
        if _same_school(school, header.dest_urn, header.dest_la, header.dest_estab):
            return "transfer-in"
        if options.force:
            return "forced"
        raise AnotherSchoolsFile(
            _another_schools_ctf(school, header), cli_hint="Use --force if this is really meant."
        )
    if header.format == Format.ONEROSTER and school.oneroster_org_id and header.org_ids:
        known = set(school.oneroster_org_id.split(","))
        if not known.intersection(header.org_ids):
            if options.force:
                return "forced"
            raise AnotherSchoolsFile(
                f"This OneRoster export is for the organisation {', '.join(header.org_ids)}, "
                f"but {school.name}'s earlier OneRoster imports were for "
                f"{school.oneroster_org_id}.",
                cli_hint="Use --force if the MIS really changed.",
            )
    return "own"


def _school_ids(urn: str, la: str, estab: str) -> str:
    """ "URN 100401, DfE number 933/3281", from what a CTF gives (a URN of "XXXXXX" or nothing
    is no URN), or "" when it gives nothing."""
    urn, la, estab = urn.strip(), la.strip(), estab.strip()
    parts = []
    if urn.isdigit():
        parts.append(f"URN {urn}")
    if la and estab:
        parts.append(f"DfE number {la}/{estab}")
    return ", ".join(parts)


def _another_schools_ctf(school: School, header: FileHeader) -> str:
    """Why a CTF is not this school's, in plain words: who wrote it and for whom, saying so
    when the file does not name one or the other (never "URN ?")."""
    source_ids = _school_ids(header.source_urn, header.source_la, header.source_estab)
    source = header.source_name.strip() if header.source_name else ""
    if source and source_ids:
        writer = f"{source} ({source_ids})"
    else:
        writer = source or (f"the school with {source_ids}" if source_ids else "")
    dest_ids = _school_ids(header.dest_urn, header.dest_la, header.dest_estab)
    ours = _school_ids(school.urn, school.la_code, school.estab)
    written = (
        f"This CTF was written by {writer}" if writer else "This CTF does not say who wrote it"
    )
    if dest_ids:
        return (
            f"{written}, for the school with {dest_ids}; neither is {school.name} ({ours}), "
            "so it is not your own export, nor a transfer to you."
        )
    return (
        f"{written}, and does not name the school it is for. It is not {school.name}'s own "
        f"export ({ours}), nor a transfer to {school.name}."
    )


def _same_school(school: School, urn: str, la: str, estab: str) -> bool:
    urn = urn.strip()
    if urn and urn.isdigit() and urn == school.urn:
        return True
    return bool(
        school.la_code
        and school.estab
        and la.strip() == school.la_code
        and estab.strip() == school.estab
    )


@dataclass(slots=True)
class Resolved:
    """One contact of one student and the adult it is (``ref``), once known."""

    contact: ContactRecord
    email: str
    mobile: str
    ref: Ref | None = None
    ambiguous: bool = False


@dataclass(frozen=True, slots=True)
class Statement:
    """An adult's details as the file states them under one student."""

    index: int
    title: str
    forename: str
    surname: str
    email: str
    mobile: str
    court_order: bool
    mis_id: str
    student: str
    student_label: str
    where: str

    @property
    def who(self) -> str:
        return f"{self.forename} {self.surname}, contact of {self.student_label}"

    @property
    def details(self) -> int:
        return details_digest((self.title, self.forename, self.surname, self.email, self.mobile))


def _who_of(statement: Statement) -> Callable[[], str]:
    return lambda: statement.who


class Planner:
    """Builds a :class:`Plan` from one file's records against the loaded register."""

    def __init__(
        self,
        school: School,
        header: FileHeader,
        register: Register,
        options: ImportOptions,
        relation: str,
    ) -> None:
        self.school = school
        self.region = school.phone_region or "GB"
        self.register = register
        self.options = options
        qualifier = header.qualifier.lower()
        adds_only = (
            options.update_only
            or relation != "own"
            or (header.format == Format.CTF and qualifier != "full")
            or (header.format == Format.ONEROSTER and qualifier == "delta")
        )
        self.plan = Plan(
            school_id=school.pk,
            header=header,
            students_whole_roll=not adds_only and header.carries_students,
            staff_whole_roll=not adds_only and header.carries_staff,
            links_removable=not adds_only and header.carries_contacts,
        )
        self.report = self.plan.report
        self._new_refs = itertools.count(-1, -1)
        self._seen_members: set[Ref] = set()
        #: MIS ids the plan gives members (new, renamed or kept): one member each.
        self._seen_ids: set[str] = set()
        # Cross-sibling identity (rule 7): name → candidate adults, with the email and mobile
        # each is known by. New adults join as they are planned; existing adults join once the
        # whole file is read, with the details this import leaves them (see finish).
        # Most names belong to one adult: a bare ref then, a list only for shared names.
        self._by_name: dict[str, Ref | list[Ref]] = {}
        #: Existing adults' details for matching (new adults' are in their statements).
        self._known_details: dict[Ref, tuple[str, ...]] = {}
        self._existing_names = {adult.name_key for adult in register.adults.values()}
        # What the file says about each adult the plan keeps or links: the statement under the
        # first student in file order wins, whatever order the rules meet them in.
        self._statements: dict[Ref, Statement] = {}
        #: ref → (file position, digest of the email and mobile) of its winning statement.
        self._firsts: dict[Ref, tuple[int, int]] = {}
        self._pending: dict[Ref, tuple[str, str]] = {}
        self._conflicts: set[Ref] = set()
        #: Adults the file flags with a court order under any student (rule 9 wins over order).
        self._court: set[Ref] = set()
        # Students whose new contacts share a name with an adult already in the register wait
        # until every statement about existing adults is known.
        self._deferred: list[tuple[int, Ref, MemberRecord, str, list[Resolved]]] = []
        self._index = 0

    # -- members ------------------------------------------------------------------------------

    def add(self, record: MemberRecord) -> None:
        state = self._find_member(record)
        kind = "student" if record.is_student else "staff"
        label = f"{clean_text(record.forename)} {clean_text(record.surname)} ({record.mis_id})"
        if (
            state is not None and state.id in self._seen_members
        ) or record.mis_id in self._seen_ids:
            self.report.add("skip", kind, label, "listed twice in the file")
            self.report.issue("duplicate_member", f"{label} is listed twice", where=record.where)
            return
        self._seen_ids.add(record.mis_id)
        if state is None:
            ref = self._create_member(record, label)
        else:
            ref = state.id
            self._update_member(state, record, label)
        self._seen_members.add(ref)
        self._index += 1
        if record.is_student and record.contacts is not None and self.plan.header.carries_contacts:
            self._contacts_of(ref, record, label)

    def _find_member(self, record: MemberRecord) -> MemberState | None:
        reg = self.register
        mis_id = record.mis_id
        state = reg.members.get(mis_id)
        if state is None:
            for former in record.former_ids:
                state = reg.members.get(former) or reg.by_former.get(former)
                if state is not None:
                    break
        if state is None and record.admission_no:
            state = reg.by_admission.get(record.admission_no)
        if state is None:
            state = reg.by_former.get(mis_id)
        return state

    def _member_fields(self, record: MemberRecord, label: str) -> dict[str, Any]:
        values: dict[str, Any] = {
            "forename": intern(clean_text(record.forename)),
            "surname": intern(clean_text(record.surname)),
            "role": record.role.value,
        }
        if record.year is not None:
            values["year"] = intern(clean_text(record.year))
        if record.reg_group is not None:
            values["reg_group"] = intern(clean_text(record.reg_group))
        if record.admission_no:
            values["admission_no"] = record.admission_no
        if record.email is not None:
            email = normalise_email(record.email)
            if email is None:
                self.report.issue(
                    "invalid_email", f"{label}: the email is not an address", where=record.where
                )
                email = ""
            values["email"] = email
        if record.phones is not None:
            choice = pick_mobile(record.phones, self.region)
            for number, reason in choice.problems:
                self.report.issue(
                    "not_mobile", f"{label}: {number} is {reason}", where=record.where
                )
            values["mobile"] = choice.mobile
        return values

    def _create_member(self, record: MemberRecord, label: str) -> Ref:
        ref = next(self._new_refs)
        values = self._member_fields(record, label)
        values.update(
            mis_id=record.mis_id,
            kind=(Member.Kind.STUDENT if record.is_student else Member.Kind.ADULT).value,
            former_upn=record.former_ids[0] if record.former_ids else "",
        )
        self.plan.member_creates[ref] = tuple(values.get(name, "") for name in MEMBER_CREATE)
        self.report.add("create", "student" if record.is_student else "staff", label)
        return ref

    def _update_member(self, state: MemberState, record: MemberRecord, label: str) -> None:
        kind = "student" if record.is_student else "staff"
        values = self._member_fields(record, label)
        if state.registered or state.opted_out:
            # Rule 1 and rule 4: their own details are theirs, or stay out.
            held_back = [
                f for f in ("email", "mobile") if f in values and values[f] != getattr(state, f)
            ]
            for f in ("email", "mobile"):
                values.pop(f, None)
            if held_back:
                why = "registered: keeps their own details" if state.registered else "opted out"
                self.report.add("skip", kind, label, why, fields=held_back)
        if state.mis_id != record.mis_id:
            values["mis_id"] = record.mis_id
            values["former_upn"] = state.mis_id
        changes = {k: v for k, v in values.items() if getattr(state, k) != v}
        if state.status == Member.Status.LEFT:
            changes["status"] = Member.Status.CURRENT
            changes["left_at"] = None
            self.report.add("rejoin", kind, label, "back in the file")
        if changes:
            self.plan.member_updates[state.id] = changes
            self.report.add(
                "update", kind, label, fields=sorted(k for k in changes if k != "left_at")
            )
        else:
            self.report.add("unchanged", kind, label)

    def finish_members(self) -> None:
        """Rule 6: a member missing from a whole-roll export is marked left, never deleted."""
        for state in self.register.members.values():
            if state.status != Member.Status.CURRENT:
                continue
            is_student = state.kind == Member.Kind.STUDENT
            if is_student:
                self.plan.current_students += 1
            whole_roll = self.plan.students_whole_roll if is_student else self.plan.staff_whole_roll
            if whole_roll and state.id not in self._seen_members:
                self.plan.leaving.append(state.id)
                kind = "student" if is_student else "staff"
                label = f"{state.forename} {state.surname} ({state.mis_id})"
                self.report.add("left", kind, label, "not in this whole-roll export")

    # -- contacts -----------------------------------------------------------------------------

    def _contacts_of(self, student: Ref, record: MemberRecord, label: str) -> None:
        resolved = self._resolve_within(student, record, label)
        self._check_priorities(record, label)
        pending = [item for item in resolved if item.ref is None]
        if any(
            name_key(item.contact.forename, item.contact.surname) in self._existing_names
            for item in pending
        ):
            self._deferred.append((self._index, student, record, label, resolved))
            return
        self._resolve_across(pending, label)
        self._plan_links(student, record, label, resolved)

    def finish_contacts(self) -> None:
        """Resolve the deferred students against the details existing adults will have."""
        if not self._deferred:
            return
        needed = {
            name_key(item.contact.forename, item.contact.surname)
            for *_, resolved in self._deferred
            for item in resolved
            if item.ref is None
        }
        # What the deferred students themselves say about the adults they already have counts too.
        for index, _student, record, label, resolved in self._deferred:
            self._index = index
            for item in resolved:
                if item.ref is not None and item.ref > 0:
                    self._state(item.ref, item, record, label)
        for chunk in _batches(sorted(needed), 500):
            rows = Adult.objects.filter(school=self.school, name_key__in=chunk).values_list(
                "id", "email", "mobile"
            )
            for adult_id, email, mobile in rows:
                adult = self.register.adults.get(adult_id)
                if adult is None:
                    continue  # made after the register was read: not this import's to match
                # An adult is known by the details this import leaves it; one whose details the
                # file may not change (opted out, registered) also by what the file now says: it
                # is still the same person under their new MIS details (rule 7).
                statement = self._statements.get(adult_id)
                if statement is None:
                    known: tuple[str, ...] = (email, mobile)
                elif self._takes_details(adult):
                    known = (statement.email, statement.mobile)  # what the import leaves it
                else:
                    known = (email, mobile, statement.email, statement.mobile)
                self._index_name(adult.name_key, adult_id)
                self._known_details[adult_id] = known
        for index, student, record, label, resolved in self._deferred:
            self._index = index  # statements rank by the student's place in the file
            self._resolve_across([item for item in resolved if item.ref is None], label)
            self._plan_links(student, record, label, resolved)
        self._deferred = []

    def _index_name(self, key: str, ref: Ref) -> None:
        known = self._by_name.get(key)
        if known is None:
            self._by_name[key] = ref
        elif isinstance(known, list):
            known.append(ref)
        else:
            self._by_name[key] = [known, ref]

    def _named(self, key: str) -> list[Ref]:
        known = self._by_name.get(key)
        if known is None:
            return []
        return known if isinstance(known, list) else [known]

    def _details_of(self, ref: Ref) -> tuple[str, ...]:
        if ref > 0:
            return self._known_details.get(ref, ("", ""))
        statement = self._statements.get(ref)
        return (statement.email, statement.mobile) if statement is not None else self._pending[ref]

    def _resolve_within(self, student: Ref, record: MemberRecord, label: str) -> list[Resolved]:
        """Rule 7 within one student: the same student and the same normalised name is the same
        adult. Contacts it cannot place keep ``ref=None`` for :meth:`_resolve_across`."""
        assert record.contacts is not None
        existing = self.register.links.get(student, []) if student > 0 else []
        by_key: dict[str, list[int]] = defaultdict(list)
        for link in existing:
            by_key[self.register.adults[link.adult_id].name_key].append(link.adult_id)
        # Highest priority first whatever the file's order; one name is one adult, so later
        # entries of a name are duplicates and the same entry wins on every import.
        ordered = sorted(
            enumerate(record.contacts),
            key=lambda item: (item[1].priority is None, item[1].priority or 0, item[0]),
        )
        seen: set[str] = set()
        resolved: list[Resolved] = []
        for _, contact in ordered:
            key = name_key(contact.forename, contact.surname)
            who = self._who(contact, label)
            if not key:
                self.report.add("skip", "adult", who, "no name")
                continue
            if key in seen:
                self.report.add("skip", "link", who, "listed twice for this student")
                continue
            seen.add(key)
            email = normalise_email(contact.email)
            if email is None:
                self.report.issue(
                    "invalid_email", f"{who()}: the email is not an address", where=contact.where
                )
                email = ""
            choice = pick_mobile(contact.phones, self.region)
            for number, reason in choice.problems:
                self.report.issue(
                    "not_mobile", f"{who()}: {number} is {reason}", where=contact.where
                )
            item = Resolved(contact, email, choice.mobile)
            # The MIS's own contact id, where the format has one, is the strongest evidence.
            known = self.register.by_adult_mis_id.get(contact.mis_id) if contact.mis_id else None
            same = by_key.get(key, [])
            if known is not None:
                item.ref = known
            elif len(same) == 1:
                item.ref = same[0]
            elif len(same) > 1:
                item.ambiguous = True
                self.report.add(
                    "skip", "adult", who, "ambiguous: several adults of this student have this name"
                )
                self.report.issue(
                    "ambiguous_match",
                    f"{who()}: several linked adults share this name",
                    where=contact.where,
                )
            resolved.append(item)
        return resolved

    def _resolve_across(self, pending: list[Resolved], label: str) -> None:
        """Rule 7 across siblings: the same name and a shared email or mobile; names alone never
        merge. Anything else is a new adult; more than one candidate is shown, not guessed."""
        for item in pending:
            if item.ambiguous:
                continue
            contact = item.contact
            key = name_key(contact.forename, contact.surname)
            mine = {d for d in (item.email, item.mobile) if d}
            candidates = [
                ref
                for ref in self._named(key)
                if any(detail in self._details_of(ref) for detail in mine)
            ]
            if len(candidates) > 1:
                item.ambiguous = True
                who = self._who(contact, label)
                self.report.add(
                    "skip", "adult", who, "ambiguous: several adults match this name and details"
                )
                self.report.issue(
                    "ambiguous_match",
                    f"{who()}: {len(candidates)} adults share this name and an email or mobile",
                    where=contact.where,
                )
            elif candidates:
                item.ref = candidates[0]
            else:
                item.ref = next(self._new_refs)
                self._index_name(key, item.ref)
                # Until a link needs it (and its statement is made), the adult is known by this.
                self._pending[item.ref] = (item.email, item.mobile)

    def _plan_links(
        self, student: Ref, record: MemberRecord, label: str, resolved: list[Resolved]
    ) -> None:
        """Rules 2, 3, 5 and 6 for one student, once every contact is placed."""
        existing = self.register.links.get(student, []) if student > 0 else []
        linked = {link.adult_id: link for link in existing}
        wanted: dict[Ref, Resolved] = {}
        for item in resolved:
            if item.ref is None:
                continue
            if item.ref in wanted:
                self.report.add(
                    "skip",
                    "link",
                    self._contact_label(item.contact, label),
                    "listed twice for this student",
                )
                continue
            wanted[item.ref] = item

        # A name this student's file lists but that fits several of its adults: those links are
        # still in the MIS (which one is not known), so none is removed and their prime stands.
        unclear = {name_key(i.contact.forename, i.contact.surname) for i in resolved if i.ambiguous}
        # Removals first (rule 6), so a new priority 1 is promoted in this same import.
        had_prime = False
        updates: dict[int, dict[str, Any]] = {}
        dropped: set[Ref] = set()
        for link in existing:
            listed = wanted.get(link.adult_id)
            follows_file = link.source == Source.IMPORT and not link.prime_set_by
            if listed is None:
                who = self._adult_who(link.adult_id, label)
                if self.register.adults[link.adult_id].name_key in unclear:
                    self.report.add("skip", "link", who, "ambiguous in this file: left as it is")
                elif link.source != Source.IMPORT:
                    pass  # rule 5: web and manual links are never removed by an import
                elif not follows_file:
                    self.report.add(
                        "skip",
                        "link",
                        who,
                        "not in the MIS, but staff set its prime: left for staff",
                    )
                elif self.plan.links_removable:
                    self.plan.link_deletes.append(link.id)
                    self.report.add("remove", "link", who, "contact no longer in the MIS")
                    continue
                else:
                    self.report.add(
                        "skip", "link", who, "not in the file; this import never removes links"
                    )
                had_prime = had_prime or link.prime
                continue
            contact = listed.contact
            if link.source != Source.IMPORT:
                who = self._who(contact, label)
                self.report.add(
                    "skip",
                    "link",
                    who,
                    f"linked by {Source(link.source).label}: the import leaves it alone",
                )
                had_prime = had_prime or link.prime
                continue
            if (
                follows_file
                and contact.priority != 1
                and not self.school.import_lower_priority
                and self.plan.links_removable
            ):
                # The school turned lower-priority contacts off: the ones imported before go.
                self.plan.link_deletes.append(link.id)
                self.report.add(
                    "remove",
                    "link",
                    self._who(contact, label),
                    "lower-priority contacts are not imported (school setting)",
                )
                dropped.add(link.adult_id)
                continue
            # An imported link follows the file: priority, relationship, and the prime status of
            # a priority-1 link (unless staff or a registration set its prime).
            changes: dict[str, Any] = {}
            relationship = relationship_label(contact.relationship)
            if link.priority != contact.priority:
                changes["priority"] = contact.priority
            if link.relationship != relationship:
                changes["relationship"] = relationship
            if link.parental_responsibility != contact.parental_responsibility:
                changes["parental_responsibility"] = contact.parental_responsibility
            prime = link.prime
            if follows_file and prime and contact.priority != 1:
                changes["prime"] = prime = False
            updates[link.id] = changes
            had_prime = had_prime or prime

        # Rule 2 (priority 1 → prime, for a student with no prime), then rule 3.
        for ref, item in wanted.items():
            if ref in dropped:
                continue
            contact = item.contact
            who = self._who(contact, label)
            current = linked.get(ref)
            if current is not None:
                if (
                    current.source == Source.IMPORT
                    and not current.prime_set_by
                    and contact.priority == 1
                    and not current.prime
                    and not had_prime
                ):
                    updates[current.id]["prime"] = True
                    self.plan.new_prime_students.add(student)
                self._state(ref, item, record, label)
                continue
            if contact.priority == 1 and not had_prime:
                prime = True
            elif contact.priority == 1:
                self.report.add("skip", "link", who, "the student already has a prime parent")
                continue
            elif self.school.import_lower_priority:
                prime = False
            else:
                self.report.add(
                    "skip", "link", who, "lower-priority contacts are not imported (school setting)"
                )
                continue
            self._state(ref, item, record, label)
            self.plan.link_creates.append(
                (
                    student,
                    ref,
                    contact.priority,
                    prime,
                    relationship_label(contact.relationship),
                    contact.parental_responsibility,
                )
            )
            if prime and student > 0:
                self.plan.new_prime_students.add(student)
            self.report.add("create", "link", who, "prime parent" if prime else "non-prime contact")

        for link_id, changes in updates.items():
            if changes:
                self.plan.link_updates[link_id] = changes
                self.report.add("update", "link", label, fields=sorted(changes))

    def _check_priorities(self, record: MemberRecord, label: str) -> None:
        assert record.contacts is not None
        firsts = [c for c in record.contacts if c.priority == 1]
        if len(firsts) > 1:
            self.report.issue(
                "priority1_tie",
                f"{label}: {len(firsts)} contacts at priority 1; all become prime",
                student=record.mis_id,
                where=record.where,
            )
        elif not firsts and record.contacts:
            self.report.issue(
                "no_priority1",
                f"{label}: no contact has priority 1, so none becomes prime",
                student=record.mis_id,
                where=record.where,
            )

    # -- adults -------------------------------------------------------------------------------

    def _state(self, ref: Ref, item: Resolved, record: MemberRecord, label: str) -> None:
        """Record what the file says about an adult the plan keeps or links (first student in
        file order wins; a different statement elsewhere is a data issue)."""
        contact = item.contact
        statement = Statement(
            index=self._index,
            # Interned: a school's first names, surnames and titles repeat a great deal.
            title=intern(clean_text(contact.title)),
            forename=intern(clean_text(contact.forename)),
            surname=intern(clean_text(contact.surname)),
            email=item.email,
            mobile=item.mobile,
            court_order=contact.court_order,
            mis_id=contact.mis_id,
            student=record.mis_id,
            student_label=label,
            where=record.where,
        )
        said = hash((statement.email, statement.mobile))
        if contact.court_order:
            self._court.add(ref)
        if ref < 0:
            self._pending.pop(ref, None)
            held = self._statements.get(ref)
            first = (held.index, hash((held.email, held.mobile))) if held is not None else None
        else:
            first = self._firsts.get(ref)
        if first is not None:
            if first[1] != said and ref not in self._conflicts:
                self._conflicts.add(ref)
                self.report.issue(
                    "conflicting_details",
                    f"{statement.who}: the file gives this adult different details under another student; the first is kept",
                    student=record.mis_id,
                    where=contact.where,
                )
            if first[0] <= statement.index:
                return
        if ref < 0:
            self._statements[ref] = statement
            return
        self._firsts[ref] = (statement.index, said)
        adult = self.register.adults[ref]
        if adult.court_order == statement.court_order and adult.details == statement.details:
            # What the register already says: nothing to write, nothing to hold.
            self._statements.pop(ref, None)
        else:
            self._statements[ref] = statement

    def _takes_details(self, adult: AdultState) -> bool:
        """Whether the MIS owns this adult's details (rules 1, 4 and 5)."""
        return adult.source == Source.IMPORT and not adult.registered and not adult.opted_out

    def finish_adults(self) -> None:
        """Create or update every adult the plan keeps or links (rules 1, 4, 6 and 9)."""
        changing: dict[int, Statement] = {}
        stated: dict[int, Statement] = {}
        # Popped as they are turned into rows, so statements and rows are never all held at once.
        for ref in list(self._statements):
            st = self._statements.pop(ref)
            if ref in self._court and not st.court_order:
                st = replace(st, court_order=True)
            if ref < 0:
                self.plan.adult_creates[ref] = (
                    st.title,
                    st.forename,
                    st.surname,
                    name_key(st.forename, st.surname),
                    st.email,
                    st.mobile,
                    st.court_order,
                    st.court_order,
                    st.mis_id,
                )
                self.report.add(
                    "create",
                    "adult",
                    st.who,
                    "held for review (court order)" if st.court_order else "",
                )
                if st.court_order:
                    self.report.issue(
                        "held_for_review",
                        f"{st.who}: court order in the MIS; held for review",
                        student=st.student,
                        where=st.where,
                    )
                if not st.email and not st.mobile:
                    self.report.issue(
                        "no_details",
                        f"{st.who}: no email and no mobile",
                        student=st.student,
                        where=st.where,
                    )
                continue
            adult = self.register.adults[ref]
            changes: dict[str, Any] = {}
            if st.court_order and not adult.court_order:
                changes.update(court_order=True, held=True)
                self.report.issue(
                    "held_for_review",
                    f"{st.who}: court order in the MIS; held for review",
                    student=st.student,
                    where=st.where,
                )
            elif not st.court_order and adult.court_order:
                changes["court_order"] = False
            differs = st.details != adult.details
            if adult.source != Source.IMPORT:
                pass  # staff or the adult made this record: its details are not the MIS's
            elif adult.opted_out:
                if differs:
                    self.report.add("skip", "adult", st.who, "opted out: details not imported")
            elif adult.registered:
                if differs:
                    self.report.add("skip", "adult", st.who, "registered: keeps their own details")
            elif differs:
                changing[ref] = st
            stated[ref] = st
            if changes:
                self.plan.adult_updates[ref] = changes
        # Flagged under a later student only, with the winning statement the same as the register.
        for ref in self._court - stated.keys():
            flagged = self.register.adults.get(ref)
            if ref > 0 and flagged is not None and not flagged.court_order:
                self.plan.adult_updates[ref] = {"court_order": True, "held": True}
                self.report.issue(
                    "held_for_review", f"adult {ref}: court order in the MIS; held for review"
                )
        # The details of the adults the file changes, read now: a handful on a nightly import.
        for chunk in _batches(sorted(changing), 500):
            for pk, *current in Adult.objects.filter(pk__in=chunk).values_list(
                "pk", *DETAIL_FIELDS
            ):
                st = changing[pk]
                wanted = (st.title, st.forename, st.surname, st.email, st.mobile)
                changes = self.plan.adult_updates.setdefault(pk, {})
                changes.update(
                    {
                        f: new
                        for f, old, new in zip(DETAIL_FIELDS, current, wanted, strict=True)
                        if old != new
                    }
                )
        for ref, changes in self.plan.adult_updates.items():
            if changes:
                who = _who_of(stated[ref]) if ref in stated else f"adult {ref}"
                self.report.add("update", "adult", who, fields=sorted(changes))
        self.plan.adult_updates = {
            ref: changes for ref, changes in self.plan.adult_updates.items() if changes
        }

    def _who(self, contact: ContactRecord, student_label: str) -> Callable[[], str]:
        return lambda: self._contact_label(contact, student_label)

    def _adult_who(self, adult_id: int, student_label: str) -> Callable[[], str]:
        return lambda: self._adult_label(adult_id, student_label)

    def _contact_label(self, contact: ContactRecord, student_label: str) -> str:
        return f"{clean_text(contact.forename)} {clean_text(contact.surname)}, contact of {student_label}"

    def _adult_label(self, adult_id: int, student_label: str) -> str:
        names = Adult.objects.filter(pk=adult_id).values_list("forename", "surname").first()
        forename, surname = names or ("?", "?")
        return f"{forename} {surname}, contact of {student_label}"


def build_plan(
    school: School,
    header: FileHeader,
    members: Iterable[MemberRecord],
    options: ImportOptions,
    *,
    progress: Callable[[int], None] | None = None,
) -> Plan:
    """Read every record and decide everything; writes nothing."""
    relation = check_school(school, header, options)
    planner = Planner(school, header, load_register(school), options, relation)
    if relation == "transfer-in":
        planner.report.reasons[
            "file: a transfer-in (this school is the destination): adds and updates only"
        ] += 1
    elif relation == "forced":
        planner.report.reasons[
            "file: another school's, imported anyway: adds and updates only"
        ] += 1
    for count, record in enumerate(members, 1):
        planner.add(record)
        if progress is not None and count % 200 == 0:
            progress(count)
    planner.finish_contacts()
    planner.finish_adults()
    planner.finish_members()
    plan = planner.plan
    guard = settings.HOMELINK_LEAVER_GUARD
    if plan.leaver_share > guard and not options.confirm_leavers:
        raise LeaverGuardStop(plan)
    return plan


class LeaverGuardStop(ImportRefused):
    """A whole-roll import would mark more than the guard's share of current students as left."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        super().__init__(
            f"this import would mark {plan.leaving_students} of {plan.current_students} current "
            f"students ({plan.leaver_share:.0%}) as left, more than "
            f"{settings.HOMELINK_LEAVER_GUARD:.0%}. Was only part of the school exported? "
            "Nothing was changed.",
            cli_hint="Run again with --confirm-leavers if this is right, or with --update-only "
            "to add and update without marking anyone left.",
        )
