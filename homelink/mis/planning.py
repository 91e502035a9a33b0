"""Members, links and adults' details (product.md, "The import rules", rules 1 to 6, 8 and 9).

:class:`Planner` walks the file's records against the register as read once
(:mod:`homelink.mis.snapshot`) and decides every create, update, removal and skip with its
reason, writing nothing:

- members: rule 1 (details from the file unless registered), rule 4 (opted out stays out) and
  rule 6's leavers (missing from a whole-roll export: left, never deleted);
- links: rules 2 and 3 (priority 1 becomes prime for a student with none; lower priorities when
  the school imports them), rule 5 (web and manual links and staff's primes are left alone) and
  rule 6 (imported links follow the file; removals come before rule 2);
- adults' details: rules 1, 4 and 6 (the MIS owns an imported adult's details until they
  register or opt out) and rule 9 (a court order holds the adult for review);

and rule 8 follows: an unchanged file plans nothing. Which adult each contact is, is rule 7's
(:mod:`homelink.mis.identity`); what a file may change at all, the guards'
(:mod:`homelink.mis.guards`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import lru_cache
from sys import intern
from typing import Any

from homelink.mis.guards import ImportOptions, scope_of
from homelink.mis.identity import AdultIdentity, Resolved, contact_label, contact_who
from homelink.mis.phones import pick_mobile
from homelink.mis.plan import MEMBER_CREATE, Plan, Ref
from homelink.mis.records import FileHeader, MemberRecord
from homelink.mis.snapshot import (
    DETAIL_FIELDS,
    AdultState,
    MemberState,
    Register,
    batches,
    details_digest,
)
from homelink.mis.tombstones import ErasedContacts
from homelink.register.identity import clean_text, normalise_email
from homelink.register.models import Adult, Member, Source
from homelink.schools.models import School

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


@dataclass(slots=True)
class Statement:
    """An adult's details as the file states them under one student (never changed once made:
    not frozen only because a frozen dataclass is slow to make, and a big file makes one for
    every contact)."""

    index: int
    title: str
    forename: str
    surname: str
    #: ``name_key`` of the names: what rule 7 compares, and what the register stores.
    key: str
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


@lru_cache(maxsize=4096)
def cleaned(text: str) -> str:
    """``clean_text``, interned and remembered: a school's names, titles and years repeat."""
    return intern(clean_text(text))


_SAID_BITS = 64
_SAID_MASK = (1 << _SAID_BITS) - 1


def _said(statement: Statement) -> int:
    """A digest of the email and mobile a statement gives (conflicting statements differ)."""
    return hash((statement.email, statement.mobile)) & _SAID_MASK


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
        scope = scope_of(header, options, relation)
        self.plan = Plan(
            school_id=school.pk,
            header=header,
            students_whole_roll=scope.students_whole_roll,
            staff_whole_roll=scope.staff_whole_roll,
            links_removable=scope.links_removable,
        )
        self.report = self.plan.report
        self._new_refs = itertools.count(-1, -1)
        self._seen_members: set[Ref] = set()
        #: MIS ids the plan gives members (new, renamed or kept): one member each.
        self._seen_ids: set[str] = set()
        # What the file says about each adult the plan keeps or links: the statement under the
        # first student in file order wins, whatever order the rules meet them in.
        self._statements: dict[Ref, Statement] = {}
        #: Existing adult → the file position of its winning statement and a digest of the email
        #: and mobile it states (``_said``), as one int: there is one for each adult of a big
        #: register, and a pair of ints in a tuple takes three times the memory.
        self._firsts: dict[Ref, int] = {}
        self._conflicts: set[Ref] = set()
        #: Adults the file flags with a court order under any student (rule 9 wins over order).
        self._court: set[Ref] = set()
        # Students whose new contacts share a name with an adult already in the register wait
        # until every statement about existing adults is known.
        self._deferred: list[tuple[int, Ref, MemberRecord, str, list[Resolved]]] = []
        self._index = 0
        #: Rule 7: which adult each contact is.
        self.identity = AdultIdentity(
            register, self.report, self.region, self._statements, self._new_refs
        )
        #: People erased at their request: never imported again until staff lift it.
        self.erased = ErasedContacts.load(school)

    # -- members ------------------------------------------------------------------------------

    def add(self, record: MemberRecord) -> None:
        state = self._find_member(record)
        kind = "student" if record.is_student else "staff"
        label = f"{cleaned(record.forename)} {cleaned(record.surname)} ({record.mis_id})"
        if (
            state is not None and state.id in self._seen_members
        ) or record.mis_id in self._seen_ids:
            self.report.add("skip", kind, label, "listed twice in the file")
            self.report.issue("duplicate_member", f"{label} is listed twice", where=record.where)
            return
        seen_id = record.mis_id
        if state is not None and state.mis_id == seen_id:
            seen_id = state.mis_id  # the register's own string: the file's are then freed
        self._seen_ids.add(seen_id)
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
            "forename": cleaned(record.forename),
            "surname": cleaned(record.surname),
            "role": record.role.value,
        }
        if record.year is not None:
            values["year"] = cleaned(record.year)
        if record.reg_group is not None:
            values["reg_group"] = cleaned(record.reg_group)
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
        resolved = self.identity.within(student, record, label)
        resolved = self.erased.drop(resolved, record.mis_id, label, self.report)
        self._check_priorities(record, label)
        pending = [item for item in resolved if item.ref is None]
        if self.identity.needs_existing(pending):
            self._deferred.append((self._index, student, record, label, resolved))
            return
        self.identity.across(pending, label)
        self._plan_links(student, record, label, resolved)

    def finish_contacts(self) -> None:
        """Resolve the deferred students against the details existing adults will have."""
        if not self._deferred:
            return
        # What the deferred students themselves say about the adults they already have counts too.
        for index, _student, record, label, resolved in self._deferred:
            self._index = index
            for item in resolved:
                if item.ref is not None and item.ref > 0:
                    self._state(item.ref, item, record, label)
        self.identity.know_existing(
            self.school,
            (item for *_, resolved in self._deferred for item in resolved if item.ref is None),
            self._takes_details,
        )
        for index, student, record, label, resolved in self._deferred:
            self._index = index  # statements rank by the student's place in the file
            self.identity.across([item for item in resolved if item.ref is None], label)
            self._plan_links(student, record, label, resolved)
        self._deferred = []

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
                    contact_label(item.contact, label),
                    "listed twice for this student",
                )
                continue
            wanted[item.ref] = item

        # A name this student's file lists but that fits several of its adults: those links are
        # still in the MIS (which one is not known), so none is removed and their prime stands.
        unclear = {item.key for item in resolved if item.ambiguous}
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
                who = contact_who(contact, label)
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
                    contact_who(contact, label),
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
            who = contact_who(contact, label)
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
        index = self._index
        # Interned: a school's first names, surnames and titles repeat a great deal.
        title = cleaned(contact.title)
        forename = cleaned(contact.forename)
        surname = cleaned(contact.surname)
        email, mobile = item.email, item.mobile
        said = hash((email, mobile)) & _SAID_MASK  # as _said() of the statement
        if contact.court_order:
            self._court.add(ref)
        if ref < 0:
            known_by = self.identity.stating(ref)
            held = self._statements.get(ref)
            first = (held.index, _said(held)) if held is not None else None
        else:
            packed = self._firsts.get(ref)
            first = (packed >> _SAID_BITS, packed & _SAID_MASK) if packed is not None else None
        if first is not None:
            if first[1] != said and ref not in self._conflicts:
                self._conflicts.add(ref)
                self.report.issue(
                    "conflicting_details",
                    f"{forename} {surname}, contact of {label}: the file gives this adult different details under another student; the first is kept",
                    student=record.mis_id,
                    where=contact.where,
                )
            if first[0] <= index:
                return
        if ref > 0:
            self._firsts[ref] = index << _SAID_BITS | said
            adult = self.register.adults[ref]
            if adult.court_order == contact.court_order and adult.details == details_digest(
                (title, forename, surname, email, mobile)
            ):
                # What the register already says: nothing to write, nothing to hold (and on a
                # nightly import, most adults: no statement is made for them).
                self._statements.pop(ref, None)
                return
        self._statements[ref] = Statement(
            index=index,
            title=title,
            forename=forename,
            surname=surname,
            key=item.key,
            email=email,
            mobile=mobile,
            court_order=contact.court_order,
            mis_id=contact.mis_id,
            student=record.mis_id,
            student_label=label,
            where=record.where,
        )
        if ref < 0:
            self.identity.restated(ref, item.key, known_by, (email, mobile))

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
                    st.key,
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
        for chunk in batches(sorted(changing), 500):
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

    def _adult_who(self, adult_id: int, student_label: str) -> Callable[[], str]:
        return lambda: self._adult_label(adult_id, student_label)

    def _adult_label(self, adult_id: int, student_label: str) -> str:
        names = Adult.objects.filter(pk=adult_id).values_list("forename", "surname").first()
        forename, surname = names or ("?", "?")
        return f"{forename} {surname}, contact of {student_label}"
