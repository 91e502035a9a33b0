"""Who is the same adult (product.md, "The import rules", rule 7).

Within one student, across imports: the same student (UPN, or former UPN) and the same normalised
name. Across siblings: the same normalised name *and* a shared email or mobile; names alone never
merge two adults. Ambiguous matches are shown in the preview, not guessed.

Adults are looked up by name and detail together (:class:`DetailIndex`), so a contact costs the
same whether its name is rare or shared by hundreds of adults who are not the same person (a
trust- or LA-wide export). The details an adult is known by are those this import leaves it:
what the file states about it under the first student in file order (the planner's statements,
:mod:`homelink.mis.planning`), or the register's for an adult the file says nothing about or
may not change.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from sys import intern
from typing import Protocol

from homelink.mis.phones import pick_mobile
from homelink.mis.plan import Ref, Report
from homelink.mis.records import ContactRecord, MemberRecord
from homelink.mis.snapshot import AdultState, Register, batches
from homelink.register.identity import clean_text, name_key, normalise_email
from homelink.register.models import Adult
from homelink.schools.models import School


@lru_cache(maxsize=4096)
def key_of_name(forename: str, surname: str) -> str:
    """``name_key``, interned and remembered: a school's names repeat (siblings' parents, near
    each other in a file, most of all)."""
    return intern(name_key(forename, surname))


def contact_label(contact: ContactRecord, student_label: str) -> str:
    return (
        f"{clean_text(contact.forename)} {clean_text(contact.surname)}, contact of {student_label}"
    )


def contact_who(contact: ContactRecord, student_label: str) -> Callable[[], str]:
    """The preview's label for a contact, made only if the preview shows it."""
    return lambda: contact_label(contact, student_label)


@dataclass(slots=True)
class Resolved:
    """One contact of one student and the adult it is (``ref``), once known."""

    contact: ContactRecord
    #: The contact's normalised name (``name_key``), interned: names repeat across a school.
    key: str
    email: str
    mobile: str
    ref: Ref | None = None
    ambiguous: bool = False


class Stated(Protocol):
    """What the file states an adult's name key and details are (the planner's statement)."""

    @property
    def key(self) -> str: ...

    @property
    def email(self) -> str: ...

    @property
    def mobile(self) -> str: ...


class DetailIndex:
    """Rule 7's lookup: the adults known by an email or mobile, under one name.

    Most details belong to one adult (a bare ref), a couple's shared email to two (a list,
    whose names are compared). A detail shared by many adults (a placeholder address a school
    types for every contact without one) is split by name, so a lookup never walks more than
    ``CROWDED`` adults, however common the name or the detail. Keyed by the detail strings the
    statements already hold, the index costs little more than one dict entry per detail.
    """

    CROWDED = 8

    def __init__(self, key_of: Callable[[Ref], str]) -> None:
        self._key_of = key_of
        self._refs: dict[str, Ref | list[Ref] | dict[str, list[Ref]]] = {}

    def add(self, ref: Ref, key: str, details: Iterable[str]) -> None:
        for detail in dict.fromkeys(details):
            if not detail:
                continue
            known = self._refs.get(detail)
            if known is None:
                self._refs[detail] = ref
            elif isinstance(known, int):
                self._refs[detail] = [known, ref]
            elif isinstance(known, list):
                known.append(ref)
                if len(known) > self.CROWDED:
                    by_name: dict[str, list[Ref]] = {}
                    for other in known:
                        name = key if other == ref else self._key_of(other)
                        by_name.setdefault(name, []).append(other)
                    self._refs[detail] = by_name
            else:
                known.setdefault(key, []).append(ref)

    def remove(self, ref: Ref, key: str, details: Iterable[str]) -> None:
        for detail in dict.fromkeys(details):
            if not detail:
                continue
            known = self._refs[detail]
            if isinstance(known, int):
                del self._refs[detail]
            elif isinstance(known, list):
                known.remove(ref)
                if len(known) == 1:
                    self._refs[detail] = known[0]
            else:
                named = known[key]
                named.remove(ref)
                if not named:
                    del known[key]

    def move(self, ref: Ref, key: str, old: Iterable[str], new: Iterable[str]) -> None:
        self.remove(ref, key, old)
        self.add(ref, key, new)

    def find(self, key: str, detail: str) -> list[Ref]:
        """The adults named ``key`` and known by ``detail``."""
        known = self._refs.get(detail)
        if known is None:
            return []
        if isinstance(known, int):
            return [known] if self._key_of(known) == key else []
        if isinstance(known, list):
            return [ref for ref in known if self._key_of(ref) == key]
        return known.get(key, [])


class AdultIdentity:
    """Places each contact of a file: an adult of the register, one the plan makes, or none
    (ambiguous). Shares the planner's register, report, statements and planned refs."""

    def __init__(
        self,
        register: Register,
        report: Report,
        region: str,
        statements: Mapping[Ref, Stated],
        new_refs: Iterator[Ref],
    ) -> None:
        self.register = register
        self.report = report
        self.region = region
        self._statements = statements
        self._new_refs = new_refs
        # New adults join as they are planned; existing adults join once the whole file is
        # read, with the details this import leaves them (see know_existing).
        self._index = DetailIndex(self.key_of)
        #: New adults no statement is made for yet: (email, mobile, name key) they are known by.
        self._pending: dict[Ref, tuple[str, str, str]] = {}
        self._existing_names = {adult.name_key for adult in register.adults.values()}

    def within(self, student: Ref, record: MemberRecord, label: str) -> list[Resolved]:
        """Rule 7 within one student: the same student and the same normalised name is the same
        adult. Contacts it cannot place keep ``ref=None`` for :meth:`across`."""
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
            key = key_of_name(contact.forename, contact.surname)
            who = contact_who(contact, label)
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
            item = Resolved(contact, key, email, choice.mobile)
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

    def across(self, pending: list[Resolved], label: str) -> None:
        """Rule 7 across siblings: the same name and a shared email or mobile; names alone never
        merge. Anything else is a new adult; more than one candidate is shown, not guessed."""
        for item in pending:
            if item.ambiguous:
                continue
            candidates: list[Ref] = []
            for detail in (item.email, item.mobile):
                if detail:
                    for ref in self._index.find(item.key, detail):
                        if ref not in candidates:
                            candidates.append(ref)
            if len(candidates) > 1:
                item.ambiguous = True
                who = contact_who(item.contact, label)
                self.report.add(
                    "skip", "adult", who, "ambiguous: several adults match this name and details"
                )
                self.report.issue(
                    "ambiguous_match",
                    f"{who()}: {len(candidates)} adults share this name and an email or mobile",
                    where=item.contact.where,
                )
            elif candidates:
                item.ref = candidates[0]
            else:
                item.ref = next(self._new_refs)
                # Until a link needs it (and its statement is made), the adult is known by this.
                self._pending[item.ref] = (item.email, item.mobile, item.key)
                self._index.add(item.ref, item.key, (item.email, item.mobile))

    def needs_existing(self, pending: Iterable[Resolved]) -> bool:
        """Whether a contact could be an adult already in the register: then its student waits
        for :meth:`know_existing`, when the details the import leaves each adult are known."""
        return any(item.key in self._existing_names for item in pending)

    def know_existing(
        self,
        school: School,
        pending: Iterable[Resolved],
        takes_details: Callable[[AdultState], bool],
    ) -> None:
        """Make the existing adults that ``pending`` contacts could be matchable.

        Only the adults known by one of their details, under one of their names, are read. An
        adult is known by the details this import leaves it (``takes_details``: the MIS owns
        them); one whose details the file may not change (opted out, registered) also by what
        the file now says: it is still the same person under their new MIS details.
        """
        keys: set[str] = set()
        details: set[str] = set()
        for item in pending:
            keys.add(item.key)
            details.update(d for d in (item.email, item.mobile) if d)
        done: set[int] = set()
        unsettled: list[int] = []
        for ref, statement in self._statements.items():
            adult = self.register.adults.get(ref) if ref > 0 else None
            if adult is None or adult.name_key not in keys:
                continue
            done.add(ref)
            if takes_details(adult):
                self._index.add(ref, adult.name_key, (statement.email, statement.mobile))
            else:
                unsettled.append(ref)
        for chunk in batches(sorted(unsettled), 500):
            for adult_id, email, mobile in Adult.objects.filter(pk__in=chunk).values_list(
                "id", "email", "mobile"
            ):
                statement = self._statements[adult_id]
                self._index.add(
                    adult_id,
                    self.register.adults[adult_id].name_key,
                    (email, mobile, statement.email, statement.mobile),
                )
        # One query a field, each served by its (school, field) index: SQLite plans an OR of
        # the two as a scan of the school's adults.
        for chunk in batches(sorted(details), 500):
            rows = itertools.chain(
                Adult.objects.filter(school=school, email__in=chunk).values_list(
                    "id", "name_key", "email", "mobile"
                ),
                Adult.objects.filter(school=school, mobile__in=chunk).values_list(
                    "id", "name_key", "email", "mobile"
                ),
            )
            for adult_id, key, email, mobile in rows:
                adult = self.register.adults.get(adult_id)
                if adult is None:
                    continue  # made after the register was read: not this import's to match
                if adult_id in done or key not in keys:
                    continue
                done.add(adult_id)
                self._index.add(adult_id, adult.name_key, (email, mobile))

    def key_of(self, ref: Ref) -> str:
        """The name key of an adult in the index."""
        if ref > 0:
            return self.register.adults[ref].name_key
        statement = self._statements.get(ref)
        return statement.key if statement is not None else self._pending[ref][2]

    def stating(self, ref: Ref) -> tuple[str, str]:
        """A statement is being made about the new adult ``ref``: the email and mobile it is
        known by until then (its winning statement's, or the contact's that made it)."""
        statement = self._statements.get(ref)
        if statement is not None:
            return statement.email, statement.mobile
        email, mobile, _ = self._pending.pop(ref)
        return email, mobile

    def restated(self, ref: Ref, key: str, was: tuple[str, str], now: tuple[str, str]) -> None:
        """The new adult ``ref`` is now known by ``now``: an earlier student in the file states
        other details for it than it was known by."""
        if was != now:
            self._index.move(ref, key, was, now)
