"""Which file, and what it may change (product.md, "The import rules": the part before the
numbered rules).

A CTF is this school's own export or a transfer to it, or it is refused unless forced. Only the
school's own whole-roll export marks students as left or removes imported links; a transfer-in,
a partial CTF, a OneRoster delta and an *update only* import add and update, never remove. And a
whole-roll import that would mark more than the leavers guard's share of current students as
left stops and asks first (the classic mistake is exporting one year group).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from homelink.mis.plan import Plan
from homelink.mis.records import FileHeader, Format
from homelink.schools.models import School


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


@dataclass(frozen=True, slots=True)
class Scope:
    """What an import of one file may change beyond adding and updating."""

    #: Students (staff) missing from the file are marked as left: the file is the whole roll.
    students_whole_roll: bool
    staff_whole_roll: bool
    #: Imported links whose contact is not in the file are removed.
    links_removable: bool


def scope_of(header: FileHeader, options: ImportOptions, relation: str) -> Scope:
    """Only the school's own full export, not run as *update only*, may remove anything; and
    only what the file carries (a staff-only file says nothing about students)."""
    qualifier = header.qualifier.lower()
    adds_only = (
        options.update_only
        or relation != "own"
        or (header.format == Format.CTF and qualifier != "full")
        or (header.format == Format.ONEROSTER and qualifier == "delta")
    )
    return Scope(
        students_whole_roll=not adds_only and header.carries_students,
        staff_whole_roll=not adds_only and header.carries_staff,
        links_removable=not adds_only and header.carries_contacts,
    )


def check_leavers(plan: Plan, options: ImportOptions) -> None:
    """The leavers guard: raises :class:`LeaverGuardStop` unless the import was confirmed."""
    if plan.leaver_share > settings.HOMELINK_LEAVER_GUARD and not options.confirm_leavers:
        raise LeaverGuardStop(plan)


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
