"""The conformance tier: the readers and the import on the real MIS sample files.

The files are real SIMS CTF exports and OneRoster fixtures from other projects (GPL, described in
shared/samples/SOURCES.md), so they are not kept in this repository: CI lays ``shared/`` beside the
clone, or ``HOMELINK_SHARED`` names the folder that holds ``samples/``. Every test here uses the
``samples`` fixture, which puts it in the tier (marker ``corpus``): where the folder is missing
the whole tier is skipped with one line saying where to put it, and under .ci/run
(``HOMELINK_REQUIRE_CORPUS``) it fails instead. Run the tier alone with ``pytest -m corpus``.

The same quirks are covered on every machine by fictional fixtures (data/README.md) in
test_ctf.py, test_oneroster.py and test_cli.py. Expected values here were read off the sample
files by eye, not produced by the parser.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from homelink.mis.formats.oneroster import open_oneroster
from homelink.mis.phones import pick_mobile
from homelink.mis.records import ContactRecord, Format, MemberRecord, PhoneRecord, Role
from homelink.mis.tests.test_cli import export, homelink
from homelink.mis.tests.test_ctf import H, M, W, contact_summary, parse_bytes, read
from homelink.mis.tests.test_oneroster import _read, _records, _zip_folder
from homelink.register.models import Member
from homelink.schools.models import School

pytestmark = pytest.mark.corpus

CTF_SAMPLES = (
    "gryphon_y12.xml",
    "gryphon_y7_2_students.xml",
    "gryphon_y7_partial.xml",
    "gryphon_y7_spaced_numbers.xml",
)
ONEROSTER_SAMPLES = (
    "moodle_v1p1_Test_full_data_set",
    "moodle_v1p2_full_dataset",
    "moodle_v1p2_oneroster_test_data",
)


# --- CTF: the real SIMS samples ------------------------------------------------------------------


def test_two_students_header(samples: Path) -> None:
    parsed, members = read(samples / "ctf" / "gryphon_y7_2_students.xml")
    header = parsed.header
    assert header.format == Format.CTF
    assert header.version == "19.0"
    assert header.qualifier == "full"
    assert header.carries_contacts is True
    assert (header.source_la, header.source_estab, header.source_urn) == ("838", "3321", "113799")
    assert header.source_name == "Stickland's CE VA Primary"
    assert (header.dest_la, header.dest_estab, header.dest_urn) == ("838", "4512", "XXXXXX")
    assert [m.mis_id for m in members] == ["G335311012004", "U865346313703"]


def test_two_students_first_pupil_contacts_come_out_in_order_priority(samples: Path) -> None:
    _, members = read(samples / "ctf" / "gryphon_y7_2_students.xml")
    lionel = members[0]
    assert (lionel.forename, lionel.surname, lionel.year) == ("Lionel", "Richie", "6")
    assert lionel.role == Role.STUDENT
    assert lionel.former_ids == ()
    assert lionel.reg_group is None
    assert lionel.email == ""
    assert lionel.phones == (H("01922 682702"), H("01935 83011"))
    assert lionel.where == "Pupil 1 (line 23)"
    # The file lists Order 3, 4, 2, 1.
    assert [contact_summary(c) for c in lionel.contacts or ()] == [
        (
            1,
            "Mrs",
            "Jeanie",
            "Richie",
            "PAM",
            True,
            "jean19Richie@yahoo.com",
            (H("01922683670"), H("0193583581"), M("07702417987")),
            False,
        ),
        (
            2,
            "Mr",
            "Mac",
            "Richie",
            "PAF",
            True,
            "Mac.Richie@britishgas.co.uk",
            (H("0193583981"), M("07517586993"), M("07979561943")),
            False,
        ),
        (
            3,
            "Mr",
            "Curvel",
            "Richie",
            "OTH",
            False,
            "",
            (H("01935 86711"), M("07936489854")),
            False,
        ),
        (
            4,
            "Ms",
            "Marjery",
            "Flange",
            "OTH",
            False,
            "",
            (H("01922739628"), H("0193583011"), M("07909182885")),
            False,
        ),
    ]
    # "Contact N" is the contact's place in the file, where a person would look for it.
    assert [c.where for c in lionel.contacts or ()] == [
        "Pupil 1 (UPN G335311012004), Contact 4",
        "Pupil 1 (UPN G335311012004), Contact 3",
        "Pupil 1 (UPN G335311012004), Contact 1",
        "Pupil 1 (UPN G335311012004), Contact 2",
    ]


def test_two_students_second_pupil(samples: Path) -> None:
    parsed, members = read(samples / "ctf" / "gryphon_y7_2_students.xml")
    sandy = members[1]
    assert (sandy.mis_id, sandy.forename, sandy.surname, sandy.year) == (
        "U865346313703",
        "Sandy",
        "Newman",
        "6",
    )
    assert sandy.former_ids == ("M86534630235G",)
    assert sandy.phones == (H("0193583563"), M("07503789696"))
    assert sandy.email == ""
    assert sandy.where == "Pupil 2 (line 259)"
    assert [contact_summary(c) for c in sandy.contacts or ()] == [
        (
            1,
            "Mrs",
            "Clare",
            "Newman",
            "PAM",
            True,
            "Newman629@btinternet.com",
            (H("0193583984"), M("07503732176")),
            False,
        ),
        (
            2,
            "Mr",
            "Chris",
            "Newman",
            "PAF",
            True,
            "chrisNewman195@btinternet.com",
            (H("0193583547"), M("07896493883")),
            False,
        ),
        (
            3,
            "Mrs",
            "Kathleen",
            "Moffat",
            "OTH",
            False,
            "kMoffat78@yahoo.com",
            (H("01935836439"), M("07582799867")),
            False,
        ),
    ]
    # Real files fail the check letter: warned about, never rejected. Lionel's is right.
    assert parsed.notes == [
        "Pupil 2 (line 259): UPN U865346313703 has the wrong check letter (expected R)",
        "Pupil 2 (line 259): former UPN M86534630235G has the wrong check letter (expected F)",
    ]


def test_y12_contacts_without_relationship(samples: Path) -> None:
    parsed, members = read(samples / "ctf" / "gryphon_y12.xml")
    assert parsed.header.source_urn == "136294"
    assert parsed.header.source_name == "Huish Episcopi Academy"
    assert parsed.header.dest_urn == ""  # DestSchool has no URN in this file
    (tom,) = members
    assert (tom.mis_id, tom.forename, tom.surname, tom.year) == (
        "Z801209809069",
        "Tom",
        "Waits",
        "11",
    )
    assert tom.phones == ()
    assert tom.email == ""
    assert [contact_summary(c) for c in tom.contacts or ()] == [
        (
            1,
            "Mr",
            "Joseph",
            "Waits",
            "PAF",
            True,
            "jk7hgkjh@yahoo.co.uk",
            (M("07788 178715"),),
            False,
        ),
        (
            2,
            "Mrs",
            "Faith",
            "Waits",
            "PAM",
            True,
            "fcWaits@yahoo.co.uk",
            (M("07742 491894"),),
            False,
        ),
        (3, "Mrs", "Sammy", "Samberg", "", False, "", (M("07718 751986"),), False),
        (4, "Mr", "Nathan", "Namatati", "", False, "", (M("07749 21789"),), False),
    ]
    assert parsed.notes == []  # Z801209809069 has the right check letter


def test_partial_file_carries_no_contacts(samples: Path) -> None:
    parsed, members = read(samples / "ctf" / "gryphon_y7_partial.xml")
    assert parsed.header.qualifier == "partial"
    assert parsed.header.carries_contacts is False
    assert parsed.header.source_name == "Lil Old Prim. School"
    (mick,) = members
    assert (mick.mis_id, mick.forename, mick.surname, mick.year) == (
        "J933207636549",
        "Mick",
        "Jagger",
        "6",
    )
    # None: "this file says nothing", which is not the same as "no contacts".
    assert mick.contacts is None
    assert mick.phones is None
    assert mick.email is None


def test_spaced_numbers_sample(samples: Path) -> None:
    parsed, members = read(samples / "ctf" / "gryphon_y7_spaced_numbers.xml")
    assert (parsed.header.source_la, parsed.header.source_estab) == ("706", "2010")
    (jarvis,) = members
    assert (jarvis.forename, jarvis.surname, jarvis.year) == ("Jarvis", "Cocker", "6")
    assert jarvis.email == "sCocker2@hssd.gov.gg"
    assert jarvis.phones == (H("265722"), M("07344 756736"))
    assert [contact_summary(c) for c in jarvis.contacts or ()] == [
        (
            1,
            "Dr",
            "Lucy",
            "Cocker",
            "PAM",
            True,
            "lucy.falla@cwgsy.net",
            (H("234981"), M("07874 376894"), W("776241")),
            False,
        ),
        (
            2,
            "Mrs",
            "Flappy",
            "Paddle",
            "REL",
            False,
            "",
            (H("232300"), M("07689 415 547"), M("07234515547")),
            False,
        ),
        (3, "Mr", "Mick", "Ronson", "REL", False, "", (H("238700"), M("07546 157 201")), False),
    ]


@pytest.mark.parametrize(
    ("sample", "expected"),
    [
        (
            "gryphon_y7_2_students.xml",
            [
                ("Jeanie", "+447702417987"),
                ("Mac", "+447517586993"),  # the first of his two M numbers
                ("Curvel", "+447936489854"),
                ("Marjery", "+447909182885"),
                ("Clare", "+447503732176"),
                ("Chris", "+447896493883"),
                ("Kathleen", "+447582799867"),
            ],
        ),
        (
            "gryphon_y12.xml",
            [
                ("Joseph", "+447788178715"),
                ("Faith", "+447742491894"),
                ("Sammy", "+447718751986"),
                ("Nathan", ""),  # 07749 21789 is a digit short
            ],
        ),
        (
            "gryphon_y7_spaced_numbers.xml",
            [
                ("Lucy", "+447874376894"),
                # 07689 415 547 (a pager, typed M) comes first; the real mobile is the second.
                ("Flappy", "+447234515547"),
                ("Mick", "+447546157201"),
            ],
        ),
    ],
)
def test_mobile_chosen_for_each_sample_contact(
    samples: Path, sample: str, expected: list[tuple[str, str]]
) -> None:
    _, members = read(samples / "ctf" / sample)
    chosen = [
        (c.forename, pick_mobile(c.phones, "GB").mobile) for m in members for c in m.contacts or ()
    ]
    assert chosen == expected


def test_mobile_problems_are_reported_for_the_sample_pager_and_short_number(samples: Path) -> None:
    _, (jarvis,) = read(samples / "ctf" / "gryphon_y7_spaced_numbers.xml")
    flappy = (jarvis.contacts or ())[1]
    assert [number for number, _ in pick_mobile(flappy.phones, "GB").problems] == ["07689 415 547"]
    _, (tom,) = read(samples / "ctf" / "gryphon_y12.xml")
    nathan = (tom.contacts or ())[3]
    assert [number for number, _ in pick_mobile(nathan.phones, "GB").problems] == ["07749 21789"]


def test_samples_open_from_a_binary_stream(samples: Path) -> None:
    data = (samples / "ctf" / "gryphon_y12.xml").read_bytes()
    parsed, members = parse_bytes(data)
    assert parsed.header.source_urn == "136294"
    assert [m.mis_id for m in members] == ["Z801209809069"]


# --- OneRoster: the real moodle samples ---------------------------------------------------------


@pytest.fixture
def v1p1(samples: Path) -> Path:
    return samples / "oneroster" / "moodle_v1p1_Test_full_data_set"


def test_v1p1_header(v1p1: Path) -> None:
    parsed, _ = _read(v1p1)
    assert parsed.header.format == Format.ONEROSTER
    assert parsed.header.version == "1.1"
    assert parsed.header.qualifier == "bulk"
    assert parsed.header.org_ids == ("org-sch-222-456",)
    assert parsed.header.carries_contacts
    assert parsed.header.carries_students
    assert parsed.header.carries_staff


def test_v1p1_teachers_and_students(v1p1: Path) -> None:
    _, members = _read(v1p1)
    assert {k: m.role for k, m in members.items()} == {
        "usr-222-123456": Role.TEACHER,  # John Doe
        "usr-222-987654": Role.TEACHER,  # Jim Smith
        "usr-222-66778899": Role.STUDENT,  # Mary Jones
        "usr-222-1234561232": Role.STUDENT,  # mmichel Jones
        "usr-222-567891": Role.STUDENT,  # Anna Brown
    }
    # Thomas Jones is a parent: a contact, never a member.
    assert "usr-222-1234561" not in members
    john = members["usr-222-123456"]
    assert (john.forename, john.surname, john.email) == ("John", "Doe", "john.doe@myschool.com")
    assert john.phones == (PhoneRecord("M", "6037778888"), PhoneRecord("H", "6032221111"))
    assert john.contacts is None
    anna = members["usr-222-567891"]
    assert (anna.admission_no, anna.year, anna.reg_group) == ("anna.brown", "11", None)


def test_v1p1_contacts_come_from_the_parent_side_only(v1p1: Path) -> None:
    parsed, members = _read(v1p1)
    # Mary's own row names teacher John Doe; Thomas Jones's (parent) row names Mary.
    assert members["usr-222-66778899"].contacts == (
        ContactRecord(
            priority=1,
            forename="Thomas",
            surname="Jones",
            relationship="parent",
            parental_responsibility=True,
            email="thomas.jones@testemail.com",
            phones=(PhoneRecord("M", "6039876543"), PhoneRecord("H", "6039876543")),
            mis_id="usr-222-1234561",
            where="users.csv line 4",
        ),
    )
    # mmichel and Anna name only teachers: no contacts (and the file does carry contacts).
    assert members["usr-222-1234561232"].contacts == ()
    assert members["usr-222-567891"].contacts == ()
    notes = "\n".join(parsed.notes)
    assert "Mary Jones) names teacher usr-222-123456 (John Doe) as an agent: ignored" in notes
    assert "mmichel Jones) names teacher usr-222-123456 (John Doe)" in notes
    assert "Anna Brown) names teacher usr-222-987654 (Jim Smith)" in notes
    assert "known only from the parent's or guardian's agentSourcedIds" in notes
    # enrollments.csv without classes.csv cannot give registration groups: say so.
    assert "need both classes.csv and enrollments.csv" in notes


@pytest.fixture
def v1p2(samples: Path) -> Path:
    return samples / "oneroster" / "moodle_v1p2_full_dataset"


def test_v1p2_full_dataset(v1p2: Path) -> None:
    parsed, members = _read(v1p2)
    assert (parsed.header.version, parsed.header.qualifier) == ("1.2", "bulk")
    assert parsed.header.org_ids == ("org-sch-222-456",)
    assert {k: m.role for k, m in members.items()} == {
        "usr-222-123456": Role.TEACHER,  # John Doe: primary teacher, secondary guardian
        "usr-222-987654": Role.TEACHER,
        "usr-222-66778899": Role.STUDENT,
        "usr-222-1234561232": Role.STUDENT,
        "usr-222-567891": Role.STUDENT,
        # Thomas Jones only has a secondary siteAdministrator role in 1.2.
        "usr-222-1234561": Role.OTHER,
    }
    # Nobody here is a parent, guardian or relative by primary role: the file says nothing
    # about contacts, so it must not clear anyone's links.
    assert not parsed.header.carries_contacts
    assert all(m.contacts is None for m in members.values())
    mary = members["usr-222-66778899"]
    assert (mary.forename, mary.surname, mary.year, mary.email) == (
        "Mary",
        "Jones",
        "12",
        "mary.jones@myschool.com",
    )
    notes = "\n".join(parsed.notes)
    # Header typos, one note each.
    assert notes.count("'dataLastModified' is not a OneRoster column") == 1
    for typo in ("prefferedGivenName", "prefferedMiddleName", "prefferedFamilyName"):
        assert notes.count(f"users.csv: column {typo!r} is not a OneRoster column") == 1
    assert "usr-222-123456 has primary role teacher and secondary role guardian" in notes
    assert "Mary Jones) names teacher usr-222-123456 (John Doe) as an agent: ignored" in notes
    assert "Anna Brown) names teacher usr-222-987654 (Jim Smith)" in notes
    assert "names student(s) usr-222-66778899 (Mary Jones) as agents: ignored" in notes
    assert "no parents, guardians or relatives" in notes


def test_v1p2_delta_with_one_student(samples: Path) -> None:
    parsed, members = _read(samples / "oneroster" / "moodle_v1p2_oneroster_test_data")
    assert (parsed.header.version, parsed.header.qualifier) == ("1.2", "delta")
    assert parsed.header.org_ids == ("ORG_1",)  # from roles.csv: no orgs.csv, no primary org
    assert not parsed.header.carries_staff
    assert list(members.values()) == [
        MemberRecord(
            mis_id="USER_0",
            forename="Bruce",
            surname="Wayne",
            role=Role.STUDENT,
            admission_no="bruce.wayne",
            email="",
            phones=(),
            contacts=None,
            where="users.csv line 2",
        )
    ]


def test_zip_gives_the_same_records(v1p1: Path, v1p2: Path, tmp_path: Path) -> None:
    for folder in (v1p1, v1p2):
        flat = _zip_folder(folder, tmp_path / f"{folder.name}.zip")
        nested = _zip_folder(folder, tmp_path / f"{folder.name}-nested.zip", prefix="export")
        assert _records(flat) == _records(folder)
        assert _records(nested) == _records(folder)
        assert open_oneroster(nested).header == open_oneroster(folder).header


# --- the import, end to end ----------------------------------------------------------------------


def test_importing_a_real_sims_transfer_file_and_exporting_the_register(
    school: School, samples: Path
) -> None:
    path = samples / "ctf" / "gryphon_y7_2_students.xml"
    summary = json.loads(homelink("import", "--school", school.urn, str(path), "--json"))
    assert summary["status"] == "applied"
    assert summary["students"]["created"] == 2
    assert summary["links"]["created"] == 2  # the two priority-1 mothers; lower priorities off
    assert not summary["whole_roll"], "a transfer-in never marks anyone left"
    students = {m["mis_id"]: m for m in export(school.urn)["members"]}
    assert set(students) == {"G335311012004", "U865346313703"}
    lionel = students["G335311012004"]
    assert (lionel["forename"], lionel["surname"], lionel["kind"], lionel["status"]) == (
        "Lionel",
        "Richie",
        "student",
        "current",
    )
    assert [
        (x["forename"], x["mobile"], x["email"], x["prime"], x["priority"], x["source"])
        for x in lionel["links"]
    ] == [("Jeanie", "+447702417987", "jean19richie@yahoo.com", True, 1, "import")]
    sandy = students["U865346313703"]
    assert [
        (x["forename"], x["mobile"], x["email"], x["relationship"]) for x in sandy["links"]
    ] == [("Clare", "+447503732176", "newman629@btinternet.com", "mother")]


def test_adult_ids_are_stable_across_reimports_of_a_real_file(
    school: School, samples: Path
) -> None:
    homelink("school", "set", school.urn, "--import-lower-priority", "on")
    path = samples / "ctf" / "gryphon_y7_2_students.xml"
    homelink("import", "--school", school.urn, str(path))
    first = export(school.urn)
    again = json.loads(homelink("import", "--school", school.urn, str(path), "--json"))
    assert again["adults"] == {"created": 0, "updated": 0, "skipped": 0}
    assert again["links"] == {"created": 0, "updated": 0, "removed": 0, "skipped": 0}
    assert export(school.urn) == first
    links = {m["mis_id"]: len(m["links"]) for m in first["members"]}
    assert links == {"G335311012004": 4, "U865346313703": 3}


def test_a_real_oneroster_folder_imports_and_records_the_org(school: School, samples: Path) -> None:
    folder = samples / "oneroster" / "moodle_v1p1_Test_full_data_set"
    summary = json.loads(homelink("import", "--school", school.urn, str(folder), "--json"))
    assert summary["status"] == "applied"
    assert summary["format"] == "oneroster"
    school.refresh_from_db()
    assert school.oneroster_org_id == "org-sch-222-456"
    assert Member.objects.filter(kind="student").exists()
    assert Member.objects.filter(kind="adult", role="teacher").exists()


@pytest.mark.parametrize(
    "sample",
    [f"ctf/{name}" for name in CTF_SAMPLES] + [f"oneroster/{name}" for name in ONEROSTER_SAMPLES],
)
def test_every_sample_previews_without_an_error(school: School, samples: Path, sample: str) -> None:
    """Each real file goes through the whole import (read, plan, preview) as a data manager
    would run it; all of them are transfers to, or rosters for, the `school` fixture."""
    out = homelink("import", "--school", school.urn, str(samples / sample), "--dry-run", "--json")
    summary = json.loads(out)
    assert summary["status"] == "preview"
    assert not Member.objects.exists()


def test_the_corpus_is_what_this_tier_reads(samples: Path) -> None:
    """A sample renamed or dropped from shared/ fails here, by name, not as a missing file."""
    assert sorted(p.name for p in (samples / "ctf").glob("*.xml")) == sorted(CTF_SAMPLES)
    assert sorted(p.name for p in (samples / "oneroster").iterdir() if p.is_dir()) == sorted(
        ONEROSTER_SAMPLES
    )
