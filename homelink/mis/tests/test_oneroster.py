"""OneRoster reader, on small fictional fixtures written for these tests (data/README.md): the
quirks of the real moodle samples (read by hand: see the expectations below), and what the samples
lack (homerooms, links from both sides, zips). The same readings of the real samples are the
conformance tier, in test_corpus.py."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest

from homelink.mis.formats.oneroster import open_oneroster
from homelink.mis.records import (
    ContactRecord,
    Format,
    MemberRecord,
    MisFormatError,
    ParsedFile,
    PhoneRecord,
    Role,
)

DATA = Path(__file__).parent / "data"


def _read(source: Path) -> tuple[ParsedFile, dict[str, MemberRecord]]:
    parsed = open_oneroster(source)
    members = {m.mis_id: m for m in parsed.members}
    return parsed, members


def _zip_folder(folder: Path, target: Path, prefix: str = "") -> Path:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        if prefix:
            zf.writestr(prefix + "/", b"")  # a directory entry, as zip tools write them
        for path in sorted(folder.iterdir()):
            zf.write(path, f"{prefix}/{path.name}" if prefix else path.name)
    return target


# --------------------------------------------------------------------------- 1.1: parent side
# Fixtures written for these tests, each named for the quirk it carries (data/README.md). The same
# readings of the real moodle samples are the conformance tier, in test_corpus.py.

V1P1 = DATA / "oneroster_v1p1_links_from_the_parent_side"
V1P2 = DATA / "oneroster_v1p2_guardian_role_on_a_teacher"


def test_v1p1_header() -> None:
    parsed, _ = _read(V1P1)
    assert parsed.header.format == Format.ONEROSTER
    assert parsed.header.version == "1.1"
    assert parsed.header.qualifier == "bulk"
    assert parsed.header.org_ids == ("org-dept-7",)  # orgs.csv, though it is a department
    assert parsed.header.carries_contacts
    assert parsed.header.carries_students
    assert parsed.header.carries_staff


def test_v1p1_teachers_and_students() -> None:
    _, members = _read(V1P1)
    assert {k: m.role for k, m in members.items()} == {
        "tch-101": Role.TEACHER,  # Helen Garside
        "tch-102": Role.TEACHER,  # Owen Pritchard
        "stu-201": Role.STUDENT,  # Ruby Kaur (a row with no status or date)
        "stu-202": Role.STUDENT,  # ella Kaur
        "stu-203": Role.STUDENT,  # Noah Fenwick
    }
    # Daniel Kaur is a parent: a contact, never a member.
    assert "par-301" not in members
    helen = members["tch-101"]
    assert (helen.forename, helen.surname, helen.email) == (
        "Helen",
        "Garside",
        "helen.garside@example.org",
    )
    assert helen.phones == (PhoneRecord("M", "07700900401"), PhoneRecord("H", "07700 900402"))
    assert helen.contacts is None
    noah = members["stu-203"]
    assert (noah.admission_no, noah.year, noah.reg_group) == ("noah.fenwick", "11", None)


def test_v1p1_contacts_come_from_the_parent_side_only() -> None:
    parsed, members = _read(V1P1)
    # Ruby's own row names teacher Helen Garside; Daniel Kaur's (parent) row names Ruby.
    assert members["stu-201"].contacts == (
        ContactRecord(
            priority=1,
            forename="Daniel",
            surname="Kaur",
            relationship="parent",
            parental_responsibility=True,
            email="daniel.kaur@example.org",
            phones=(PhoneRecord("M", "07700900421"), PhoneRecord("H", "07700900421")),
            mis_id="par-301",
            where="users.csv line 4",
        ),
    )
    # ella and Noah name only teachers: no contacts (and the file does carry contacts).
    assert members["stu-202"].contacts == ()
    assert members["stu-203"].contacts == ()
    notes = "\n".join(parsed.notes)
    assert "Ruby Kaur) names teacher tch-101 (Helen Garside) as an agent: ignored" in notes
    assert "ella Kaur) names teacher tch-101 (Helen Garside)" in notes
    assert "Noah Fenwick) names teacher tch-102 (Owen Pritchard)" in notes
    assert "known only from the parent's or guardian's agentSourcedIds" in notes
    # enrollments.csv without classes.csv cannot give registration groups: say so.
    assert "need both classes.csv and enrollments.csv" in notes


# --------------------------------------------------------------------------- 1.2


def test_v1p2_guardian_role_on_a_teacher() -> None:
    parsed, members = _read(V1P2)
    assert (parsed.header.version, parsed.header.qualifier) == ("1.2", "bulk")
    assert parsed.header.org_ids == ("org-sch-7",)
    assert {k: m.role for k, m in members.items()} == {
        "tch-101": Role.TEACHER,  # Helen Garside: primary teacher, secondary guardian
        "tch-102": Role.TEACHER,
        "stu-201": Role.STUDENT,
        "stu-203": Role.STUDENT,
        # Daniel Kaur only has a secondary siteAdministrator role in roles.csv.
        "par-301": Role.OTHER,
    }
    # Nobody here is a parent, guardian or relative by primary role: the file says nothing
    # about contacts, so it must not clear anyone's links.
    assert not parsed.header.carries_contacts
    assert all(m.contacts is None for m in members.values())
    ruby = members["stu-201"]
    assert (ruby.forename, ruby.surname, ruby.year, ruby.email) == (
        "Ruby",
        "Kaur",
        "12",
        "ruby.kaur@example.org",
    )
    notes = "\n".join(parsed.notes)
    assert "tch-101 has primary role teacher and secondary role guardian" in notes
    assert "Ruby Kaur) names teacher tch-101 (Helen Garside) as an agent: ignored" in notes
    assert "Noah Fenwick) names teacher tch-102 (Owen Pritchard)" in notes
    assert "names student(s) stu-201 (Ruby Kaur) as agents: ignored" in notes
    assert "no parents, guardians or relatives" in notes


def test_v1p2_header_typos_are_ignored_with_one_note_each() -> None:
    parsed, members = _read(DATA / "oneroster_v1p2_typo_headers")
    assert (parsed.header.version, parsed.header.qualifier) == ("1.2", "bulk")
    notes = "\n".join(parsed.notes)
    assert notes.count("'dataLastModified' is not a OneRoster column") == 1
    for typo in ("prefferedGivenName", "prefferedMiddleName", "prefferedFamilyName"):
        assert notes.count(f"users.csv: column {typo!r} is not a OneRoster column") == 1
    # The rest of each row still reads: the parent, from roles.csv, is Ruby's contact.
    ruby = members["stu-201"]
    assert (ruby.forename, ruby.surname, ruby.year) == ("Ruby", "Kaur", "12")
    assert [(c.mis_id, c.relationship, c.priority) for c in ruby.contacts or ()] == [
        ("par-301", "parent", 1)
    ]


def test_v1p2_delta_with_one_student_and_the_org_only_in_roles() -> None:
    parsed, members = _read(DATA / "oneroster_v1p2_delta_org_only_in_roles")
    assert (parsed.header.version, parsed.header.qualifier) == ("1.2", "delta")
    assert parsed.header.org_ids == ("ORG_7",)  # from roles.csv: no orgs.csv, no primary org
    assert not parsed.header.carries_staff
    assert list(members.values()) == [
        MemberRecord(
            mis_id="USER_1",
            forename="Ivy",
            surname="Quill",
            role=Role.STUDENT,
            admission_no="ivy.quill",
            email="",
            phones=(),
            contacts=None,
            where="users.csv line 2",
        )
    ]


# --------------------------------------------------------------------------- zips


def _records(source: Path) -> tuple[list[MemberRecord], list[str]]:
    parsed = open_oneroster(source)
    return list(parsed.members), parsed.notes


def test_zip_gives_the_same_records(tmp_path: Path) -> None:
    for folder in (V1P1, V1P2):
        flat = _zip_folder(folder, tmp_path / f"{folder.name}.zip")
        nested = _zip_folder(folder, tmp_path / f"{folder.name}-nested.zip", prefix="export")
        assert _records(flat) == _records(folder)
        assert _records(nested) == _records(folder)
        assert open_oneroster(nested).header == open_oneroster(folder).header


def test_zip_with_parent_path_is_refused(tmp_path: Path) -> None:
    target = _zip_folder(V1P1, tmp_path / "evil.zip")
    with zipfile.ZipFile(target, "a") as zf:
        zf.writestr("../outside.csv", b"x")
    with pytest.raises(MisFormatError, match=r"unsafe path"):
        open_oneroster(target)


def test_zip_with_absolute_path_is_refused(tmp_path: Path) -> None:
    target = _zip_folder(V1P1, tmp_path / "evil.zip")
    with zipfile.ZipFile(target, "a") as zf:
        zf.writestr(zipfile.ZipInfo("/etc/users.csv"), b"x")
    with pytest.raises(MisFormatError, match=r"unsafe path"):
        open_oneroster(target)


def test_zip_bomb_is_refused(tmp_path: Path) -> None:
    target = _zip_folder(V1P1, tmp_path / "bomb.zip")
    block = b"0" * 2**20
    with (
        zipfile.ZipFile(target, "a", zipfile.ZIP_DEFLATED) as zf,
        zf.open("padding.csv", "w") as fh,
    ):
        for _ in range(201):
            fh.write(block)
    assert target.stat().st_size < 2**20  # small on disk, 201 MB unpacked
    with pytest.raises(MisFormatError, match=r"200 MB"):
        open_oneroster(target)


def test_not_a_zip(tmp_path: Path) -> None:
    target = tmp_path / "users.zip"
    target.write_text("sourcedId,givenName\n")
    with pytest.raises(MisFormatError, match="not a zip"):
        open_oneroster(target)


# --------------------------------------------------------------------------- fixtures


def test_homerooms_and_links_from_both_sides() -> None:
    parsed, members = _read(DATA / "oneroster_homerooms")
    assert parsed.header.carries_contacts
    amira, ben = members["stu-1"], members["stu-2"]
    assert (amira.year, amira.reg_group) == ("R", "Form R Kestrel")  # KG -> R; title
    assert (ben.year, ben.reg_group) == ("1", "1B")  # "01" -> "1"; empty title -> classCode
    assert members["tch-1"].reg_group is None  # only student enrolments give reg groups
    assert amira.admission_no == "ADM001"

    def summary(m: MemberRecord) -> list[tuple[int | None, str, str, bool, str, tuple[str, ...]]]:
        return [
            (
                c.priority,
                c.mis_id,
                c.relationship,
                c.parental_responsibility,
                c.email,
                tuple(p.kind + p.number for p in c.phones),
            )
            for c in m.contacts or ()
        ]

    # Amira's own list is "par-2, par-1"; Grace (par-3) names Amira only from her side.
    assert summary(amira) == [
        (1, "par-2", "guardian", True, "omar.khan@example.org", ("M07700900102",)),
        (
            2,
            "par-1",
            "parent",
            True,
            "sara.khan@example.org",
            ("M07700 900101", "H01632 960001"),
        ),
        (3, "par-3", "parent", True, "grace.okafor@example.org", ("M07700 900103",)),
    ]
    # Ben's list is "par-3,tch-1,ghost-9": the teacher and the unknown id are dropped;
    # Nana (relative) names Ben only from her side.
    assert summary(ben) == [
        (1, "par-3", "parent", True, "grace.okafor@example.org", ("M07700 900103",)),
        (2, "rel-1", "relative", False, "", ("M07700 900104",)),
    ]
    assert [c.forename + " " + c.surname for c in ben.contacts or ()] == [
        "Grace Okafor",
        "Nana Okafor",
    ]
    assert members["aide-1"].role == Role.SUPPORT
    assert "old-1" not in members
    assert set(members) == {"stu-1", "stu-2", "tch-1", "aide-1"}
    notes = "\n".join(parsed.notes)
    assert "old-1 has status tobedeleted: skipped" in notes
    assert "Ben Okafor) names teacher tch-1 (Tom Reed) as an agent: ignored" in notes
    assert "names agent ghost-9, who is not in users.csv" in notes
    assert "2 contact link(s) are known only from the parent's" in notes
    assert (
        "enabledUser false kept (a disabled login says nothing about the person): aide-1" in notes
    )


def test_delta_keeps_the_place_of_an_absent_agent(tmp_path: Path) -> None:
    folder = tmp_path / "roster"
    shutil.copytree(DATA / "oneroster_homerooms", folder)
    manifest = folder / "manifest.csv"
    manifest.write_text(manifest.read_text().replace("file.users,bulk", "file.users,delta"))
    users = folder / "users.csv"
    users.write_text("".join(ln for ln in users.read_text().splitlines(True) if ln[:6] != "par-2,"))
    parsed, members = _read(folder)
    assert parsed.header.qualifier == "delta"
    # Omar (par-2, first in Amira's list) is not in the delta: Sara stays priority 2.
    assert [(c.priority, c.mis_id) for c in members["stu-1"].contacts or ()] == [
        (2, "par-1"),
        (3, "par-3"),
    ]
    assert any("par-2, who is not in this delta" in n for n in parsed.notes)


def test_no_manifest_is_bulk_and_version_inferred(tmp_path: Path) -> None:
    folder = tmp_path / "roster"
    shutil.copytree(DATA / "oneroster_homerooms", folder)
    (folder / "manifest.csv").unlink()
    parsed = open_oneroster(folder)
    assert (parsed.header.version, parsed.header.qualifier) == ("1.1", "bulk")
    assert any("no manifest.csv" in n for n in parsed.notes)


def test_missing_required_column_names_file_and_line(tmp_path: Path) -> None:
    folder = tmp_path / "roster"
    folder.mkdir()
    (folder / "users.csv").write_text("sourcedId,role,givenName\nu1,student,Ann\n")
    with pytest.raises(MisFormatError) as err:
        open_oneroster(folder)
    assert err.value.where == "users.csv line 1"
    assert "familyName" in err.value.message


def test_headers_are_tolerant(tmp_path: Path) -> None:
    folder = tmp_path / "roster"
    folder.mkdir()
    (folder / "users.csv").write_bytes(
        b"\xef\xbb\xbf SourcedID ,ROLE,givenname,FamilyName,Agent_SourcedIds,metadata.house\r\n"
        b"s1,Student,Ann,Lee,p1,Red\r\np1,Parent,Bea,Lee,,\r\n"
    )
    parsed, members = _read(folder)
    assert [(c.forename, c.priority) for c in members["s1"].contacts or ()] == [("Bea", 1)]
    assert not any("metadata.house" in n for n in parsed.notes)
    assert any("no manifest.csv" in n for n in parsed.notes)
