"""Records and imports for the engine's tests: the same service the CLI calls, minus the file."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from homelink.mis.records import (
    ContactRecord,
    FileHeader,
    Format,
    MemberRecord,
    ParsedFile,
    PhoneRecord,
    Role,
)
from homelink.mis.services import ImportOutcome, import_parsed
from homelink.register.models import Adult, Link, Member
from homelink.schools.models import School


def contact(
    priority: int | None,
    forename: str,
    surname: str,
    *,
    email: str = "",
    mobile: str = "",
    phones: tuple[PhoneRecord, ...] | None = None,
    relationship: str = "PAM",
    responsibility: bool = True,
    court_order: bool = False,
) -> ContactRecord:
    return ContactRecord(
        priority=priority,
        forename=forename,
        surname=surname,
        relationship=relationship,
        parental_responsibility=responsibility,
        email=email,
        phones=phones if phones is not None else ((PhoneRecord("M", mobile),) if mobile else ()),
        court_order=court_order,
    )


def pupil(
    upn: str,
    forename: str = "Pupil",
    surname: str = "Example",
    *contacts: ContactRecord,
    year: str = "7",
    former: tuple[str, ...] = (),
    email: str | None = "",
    mobile: str = "",
    carries_contacts: bool = True,
) -> MemberRecord:
    return MemberRecord(
        mis_id=upn,
        forename=forename,
        surname=surname,
        former_ids=former,
        year=year,
        email=email,
        phones=(PhoneRecord("M", mobile),) if mobile else (),
        contacts=tuple(contacts) if carries_contacts else None,
    )


def staff(
    mis_id: str, forename: str, surname: str, role: Role = Role.TEACHER, email: str = ""
) -> MemberRecord:
    return MemberRecord(
        mis_id=mis_id, forename=forename, surname=surname, role=role, email=email, phones=()
    )


def own_ctf(school: School, **kw: Any) -> FileHeader:
    """The school's own full CTF export: a whole-roll file."""
    values: dict[str, Any] = {"format": Format.CTF, "qualifier": "full", "source_urn": school.urn}
    values.update(kw)
    return FileHeader(**values)


def run_import(
    school: School, records: list[MemberRecord], header: FileHeader | None = None, **options: Any
) -> ImportOutcome:
    head = header or own_ctf(school)
    return import_parsed(
        school=school,
        opener=lambda: ParsedFile(head, iter(records)),
        file_format=head.format,
        file_name="test",
        via="test",
        **options,
    )


def links_of(school: School, upn: str) -> list[tuple[str, str, int | None, bool]]:
    """(adult forename, source, priority, prime) for one student, in priority order."""
    student = Member.objects.get(school=school, mis_id=upn)
    return [
        (link.adult.forename, link.source, link.priority, link.prime)
        for link in Link.objects.filter(student=student)
        .select_related("adult")
        .order_by("priority", "adult__forename")
    ]


def adult(school: School, forename: str) -> Adult:
    return Adult.objects.get(school=school, forename=forename)


def build_roll(school: School) -> School:
    """A school to message, for the console's message tests and the data protection tests.
    Year 7: Amy Smith (7A; Mary and Dan), Jo Jones (7B; Jill), Kit Kay (7A; nobody).
    Year 8: Ben Smith (Amy's brother). Year 9: Lou Brown (Zoë, whose name is not GSM-7).
    A teacher. 1,000 SMS credits."""
    school.sms_credits = 1000
    school.save()
    mary = contact(1, "Mary", "Smith", email="mary@example.org", mobile="07700900001")
    dan = contact(1, "Dan", "Smith", mobile="07700900002", responsibility=False)
    jill = contact(1, "Jill", "Jones", email="jill@example.org", mobile="07700900003")
    zoe = contact(1, "Zo\u00eb", "Brown", mobile="07700900004")
    run_import(
        school,
        [
            replace(pupil("A1", "Amy", "Smith", mary, dan, year="7"), reg_group="7A"),
            replace(pupil("B1", "Jo", "Jones", jill, year="7"), reg_group="7B"),
            replace(pupil("C1", "Kit", "Kay", year="7"), reg_group="7A"),
            replace(pupil("A2", "Ben", "Smith", mary, dan, year="8"), reg_group="8B"),
            replace(pupil("D1", "Lou", "Brown", zoe, year="9"), reg_group="9C"),
            staff("S1", "Tess", "Teach", Role.TEACHER, email="tess@example.org"),
        ],
    )
    return school
