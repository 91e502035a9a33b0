"""Mapped CSV reader: both presets, custom mappings, and the untidy files schools really send."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from homelink.mis.formats.csv_mapped import PRESETS, Mapping, load_mapping, open_csv
from homelink.mis.records import (
    ContactRecord,
    Format,
    MemberRecord,
    MisFormatError,
    PhoneRecord,
    Role,
)

DATA = Path(__file__).parent / "data"

CONTACTS_HEADER = (
    "Student ID,Forename,Surname,Contact Priority,Parental responsibility,Title,"
    "Contact Forename,Contact Surname,Email,Mobile\n"
)


def _write(tmp_path: Path, text: str, encoding: str = "utf-8", name: str = "in.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


# --------------------------------------------------------------------------- members


def test_members_preset() -> None:
    parsed = open_csv(DATA / "members.csv")
    assert parsed.header.format == Format.CSV
    assert parsed.header.qualifier == ""
    assert not parsed.header.carries_contacts
    assert parsed.header.carries_students
    assert parsed.header.carries_staff
    members = list(parsed.members)
    # Keyed by UPN when there is one, else the admission number; padding trimmed.
    assert members[0] == MemberRecord(
        mis_id="A123456789012",
        forename="Amira",
        surname="Khan",
        role=Role.STUDENT,
        admission_no="1001",
        year="7",
        reg_group="7K",
        email="",
        phones=(),
        contacts=None,
        where="line 2",
    )
    assert (members[1].mis_id, members[1].admission_no, members[1].reg_group) == (
        "1002",
        "1002",
        "1B",
    )
    assert [(m.mis_id, m.role) for m in members[2:]] == [
        ("T01", Role.TEACHER),
        ("S01", Role.SUPPORT),  # a role name, not an id
        ("G01", Role.GOVERNOR),
        ("B01", Role.BOARD),
        ("X01", Role.OTHER),
    ]
    tom = members[2]
    assert (tom.email, tom.phones, tom.year, tom.reg_group) == (
        "tom.reed@school.example.org",
        (PhoneRecord("M", "07700 900201"),),
        None,
        None,
    )
    assert members[4].where == "line 7"  # the blank line 6 is skipped but still counted


def test_staff_only_members_file_does_not_carry_students(tmp_path: Path) -> None:
    path = _write(tmp_path, "Staff ID,First name,Last name,Role\nT1,Tom,Reed,Teacher\n")
    parsed = open_csv(path)
    assert not parsed.header.carries_students
    assert parsed.header.carries_staff
    assert [m.role for m in parsed.members] == [Role.TEACHER]


def test_members_unknown_role_is_skipped_with_note(tmp_path: Path) -> None:
    path = _write(tmp_path, "Adno,Forename,Surname,Role ID\n1,Ann,Lee,9\n2,Bo,Lee,1\n")
    parsed = open_csv(path)
    assert [m.mis_id for m in parsed.members] == ["2"]
    assert parsed.notes == ["line 2: role '9' is not a role id (1-6) or name: row skipped"]


def test_members_without_role_column_are_students(tmp_path: Path) -> None:
    path = _write(tmp_path, "UPN,Forename,Surname,Form\nA1,Ann,Lee,7K\n")
    parsed = open_csv(path)
    assert parsed.header.carries_students
    assert not parsed.header.carries_staff
    (ann,) = parsed.members
    assert (ann.mis_id, ann.admission_no, ann.reg_group, ann.email, ann.phones) == (
        "A1",
        "",
        "7K",
        None,  # no email column: the file says nothing
        None,
    )
    assert any("no role column" in n for n in parsed.notes)


# --------------------------------------------------------------------------- contacts


def test_contacts_preset_groups_unsorted_rows() -> None:
    parsed = open_csv(DATA / "contacts.csv")
    assert parsed.header.carries_contacts
    assert not parsed.header.carries_staff
    members = list(parsed.members)
    # Students in order of first appearance; each student's contacts in priority order.
    assert [(m.mis_id, m.forename, m.surname) for m in members] == [
        ("1002", "Ben", "Okafor"),
        ("1001", "Amira", "Khan"),
        ("1003", "Cara", "Diaz"),
    ]
    ben, amira, cara = members
    assert ben.contacts == (
        ContactRecord(
            priority=1,
            forename="Grace",
            surname="Okafor",
            title="Ms",
            parental_responsibility=True,
            email="grace.okafor@example.org",
            phones=(PhoneRecord("M", "07700 900103"),),
            where="line 5",
        ),
        ContactRecord(
            priority=2,
            forename="Nana",
            surname="Okafor",
            title="Mrs",
            parental_responsibility=False,
            phones=(PhoneRecord("M", "07700 900104"),),
            where="line 2",
        ),
    )
    assert [
        (c.priority, c.forename, c.parental_responsibility, c.phones) for c in amira.contacts or ()
    ] == [
        (1, "Sara", True, (PhoneRecord("M", "07700 900101"),)),
        (None, "Omar", True, ()),  # priority "two"
    ]
    assert cara.contacts == ()  # a row with blank contact columns: a student without contacts
    assert parsed.notes == ["line 6: contact priority 'two' is not a whole number: no priority"]


def test_a_contact_priority_out_of_a_links_range_is_no_priority(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "UPN,Forename,Surname,Priority,Contact Forename,Contact Surname\n"
        "A1,Ann,Lee,40000,Ria,Lee\n"
        "A1,Ann,Lee,2147483648,Raj,Lee\n",
    )
    parsed = open_csv(path)
    (ann,) = parsed.members
    assert [(c.forename, c.priority) for c in ann.contacts or ()] == [
        ("Ria", 40000),
        ("Raj", None),
    ]
    assert (
        "line 3: contact priority 2147483648 is out of range (0 to 2,147,483,647): no priority"
        in parsed.notes
    )


def test_contacts_optional_columns(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "UPN,Adno,Forename,Surname,Year,Reg group,Priority,Responsibility,Title,"
        "Contact Forename,Contact Surname,Contact Email,Contact Mobile,Relationship,Court order\n"
        "A1,11,Ann,Lee,3,3B,1,maybe,Mrs,Ria,Lee,ria@example.org,07700900111,PAM,Y\n"
        "A1,11,Ann,Lee,3,3B,,0,Mr,Raj,Lee,,,PAF,N\n",
    )
    (ann,) = open_csv(path).members
    assert (ann.mis_id, ann.admission_no, ann.year, ann.reg_group) == ("A1", "11", "3", "3B")
    ria, raj = ann.contacts or ()
    assert (ria.relationship, ria.court_order, ria.parental_responsibility) == ("PAM", True, False)
    assert (raj.priority, raj.relationship, raj.court_order) == (None, "PAF", False)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("yes", True),
        ("Y", True),
        ("TRUE", True),
        ("1", True),
        ("no", False),
        ("n", False),
        ("false", False),
        ("0", False),
        ("", False),
    ],
)
def test_responsibility_values(tmp_path: Path, raw: str, expected: bool) -> None:
    path = _write(tmp_path, CONTACTS_HEADER + f"1,Ann,Lee,1,{raw},,Ria,Lee,,\n")
    parsed = open_csv(path)
    (ann,) = parsed.members
    assert (ann.contacts or ())[0].parental_responsibility is expected
    assert parsed.notes == []


# --------------------------------------------------------------------------- mappings


def test_custom_mapping_file() -> None:
    mapping = load_mapping(DATA / "custom_mapping.json")
    assert mapping.layout == "members"
    parsed = open_csv(DATA / "custom_members.csv", mapping)
    members = list(parsed.members)
    assert [(m.mis_id, m.forename, m.surname, m.reg_group, m.role) for m in members] == [
        ("P-1", "Amira", "Khan", "7K", Role.STUDENT),
        ("P-2", "Tom", "Reed", None, Role.TEACHER),
    ]
    assert parsed.notes == []  # "Notes" is mapped to ignore: no note about it


def test_mapping_with_unknown_field_lists_the_valid_ones(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"layout": "members", "columns": {"Ref": "pupil_ref"}}))
    with pytest.raises(MisFormatError) as err:
        load_mapping(path)
    assert "'pupil_ref'" in err.value.message
    assert "upn, admission_no, forename, surname, reg_group, year, role, email, mobile" in (
        err.value.message
    )


def test_mapping_needs_names_and_an_id(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"layout": "contacts", "columns": {"Ref": "upn"}}))
    with pytest.raises(MisFormatError, match="forename, surname, contact_forename"):
        load_mapping(path)
    with pytest.raises(MisFormatError, match="layout 'staff'"):
        Mapping.build("staff", {})


def test_mapping_that_does_not_fit_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "Id,Name\n1,Ann\n")
    with pytest.raises(MisFormatError, match="needs columns for forename, surname"):
        open_csv(path, PRESETS["members"])


def test_unmapped_columns_are_noted(tmp_path: Path) -> None:
    path = _write(tmp_path, "Adno,Forename,Surname,Shoe size\n1,Ann,Lee,5\n")
    parsed = open_csv(path)
    assert "in.csv: column 'Shoe size' is not in the members mapping: ignored" in parsed.notes


def test_detection_failure_lists_headers(tmp_path: Path) -> None:
    path = _write(tmp_path, "Name,Class\nAnn,7K\n")
    with pytest.raises(MisFormatError) as err:
        open_csv(path)
    assert "Headers found: 'Name', 'Class'" in err.value.message
    assert err.value.where == "in.csv line 1"


def test_two_columns_for_one_field(tmp_path: Path) -> None:
    path = _write(
        tmp_path, "Adno,Forename,Surname,Email,Email address\n1,Ann,Lee,a@x.org,b@x.org\n"
    )
    with pytest.raises(MisFormatError, match="'Email' and 'Email address' both give email"):
        open_csv(path)


# --------------------------------------------------------------------------- robustness


def test_cp1252_file_is_read_and_noted(tmp_path: Path) -> None:
    path = _write(tmp_path, CONTACTS_HEADER + "1,Zoë,Brontë,1,yes,Ms,Siân,Brontë,,\n", "cp1252")
    parsed = open_csv(path)
    (zoe,) = parsed.members
    assert (zoe.forename, zoe.surname) == ("Zoë", "Brontë")
    assert (zoe.contacts or ())[0].forename == "Siân"
    assert "in.csv: not valid UTF-8, read as Windows-1252 (cp1252)" in parsed.notes


def test_utf8_bom(tmp_path: Path) -> None:
    path = _write(tmp_path, "UPN,Forename,Surname,Role ID\nA1,Zoë,Lee,1\n", "utf-8-sig")
    parsed = open_csv(path)
    (zoe,) = parsed.members
    assert (zoe.mis_id, zoe.forename) == ("A1", "Zoë")
    assert parsed.notes == []


def test_semicolon_and_tab_delimiters(tmp_path: Path) -> None:
    for delimiter in ";\t":
        text = CONTACTS_HEADER.replace(",", delimiter)
        text += delimiter.join(["1", "Ann", "Lee", "1", "yes", "Mrs", "Ria", "Lee", "r@x.org", ""])
        (ann,) = open_csv(_write(tmp_path, text + "\n")).members
        assert [(c.forename, c.email) for c in ann.contacts or ()] == [("Ria", "r@x.org")]


def test_ragged_row_names_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "Adno,Forename,Surname\n1,Ann,Lee\n\n2,Bo,Lee,extra\n")
    with pytest.raises(MisFormatError) as err:
        open_csv(path)  # found at open, before any record is produced
    assert err.value.where == "in.csv line 4"
    short = _write(tmp_path, "Adno,Forename,Surname\n1,Ann\n", name="short.csv")
    with pytest.raises(MisFormatError, match=r"short\.csv line 2"):
        open_csv(short)


def test_trailing_blank_cells_are_not_ragged(tmp_path: Path) -> None:
    path = _write(tmp_path, "Adno,Forename,Surname,,\n1,Ann,Lee,,,\n")
    assert [m.forename for m in open_csv(path).members] == ["Ann"]


def test_binary_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "photo.csv"
    path.write_bytes(b"Adno,Forename\n\x00\x01\x02\xff")
    with pytest.raises(MisFormatError, match="not a CSV file"):
        open_csv(path)
    xlsx = tmp_path / "export.csv"
    xlsx.write_bytes(b"PK\x03\x04rest-of-a-workbook")
    with pytest.raises(MisFormatError, match="Excel workbook"):
        open_csv(xlsx)


def test_oversize_field_names_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "Adno,Forename,Surname\n1,Ann,Lee\n2,Bo," + "x" * 10_001 + "\n")
    with pytest.raises(MisFormatError) as err:
        open_csv(path)
    assert err.value.where == "in.csv line 3"


def test_unclosed_quote_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, 'Adno,Forename,Surname\n1,"Ann,Lee\n' + "2,Bo,Lee\n" * 20_000)
    with pytest.raises(MisFormatError, match="line 2"):
        open_csv(path)
