"""The CTF reader: the quirks of real SIMS exports, on small fictional fixtures written for these
tests (data/README.md), and hostile and broken files.

Expected values were read off the fixture XML by eye, not produced by the parser. The same
readings of the real SIMS samples are the conformance tier, in test_corpus.py.
"""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
import time
import tracemalloc
from pathlib import Path

import pytest

from homelink.mis.formats.ctf import open_ctf, upn_check_letter
from homelink.mis.phones import pick_mobile
from homelink.mis.records import (
    ContactRecord,
    Format,
    MemberRecord,
    MisFormatError,
    ParsedFile,
    PhoneRecord,
    Role,
)

REPO = Path(__file__).resolve().parents[3]
DATA = Path(__file__).parent / "data"
# Each fixture is named for the quirk it carries; data/README.md lists them all.
TRANSFER = "ctf_transfer_contacts_out_of_order.xml"
NO_RELATIONSHIP = "ctf_missing_relationship_and_short_mobile.xml"
PARTIAL = "ctf_partial_no_contacts.xml"
SPACED = "ctf_spaced_and_local_numbers.xml"


def H(number: str) -> PhoneRecord:
    return PhoneRecord("H", number)


def M(number: str) -> PhoneRecord:
    return PhoneRecord("M", number)


def W(number: str) -> PhoneRecord:
    return PhoneRecord("W", number)


def read(path: Path) -> tuple[ParsedFile, list[MemberRecord]]:
    parsed = open_ctf(path)
    return parsed, list(parsed.members)


def parse_bytes(data: bytes) -> tuple[ParsedFile, list[MemberRecord]]:
    parsed = open_ctf(io.BytesIO(data))
    return parsed, list(parsed.members)


def contact_summary(contact: ContactRecord) -> tuple[object, ...]:
    return (
        contact.priority,
        contact.title,
        contact.forename,
        contact.surname,
        contact.relationship,
        contact.parental_responsibility,
        contact.email,
        contact.phones,
        contact.court_order,
    )


HEADER = (
    "<Header><DocumentName>Common Transfer File</DocumentName><CTFversion>19.0</CTFversion>"
    "<DocumentQualifier>full</DocumentQualifier><SourceSchool><LEA>838</LEA><Estab>4512</Estab>"
    "<URN>100001</URN><SchoolName>Example Academy</SchoolName></SourceSchool>"
    "<DestSchool><LEA>838</LEA><Estab>4512</Estab></DestSchool></Header>"
)
# A UPN with the right check letter, so tests about other things see no UPN note.
GOOD_UPN = upn_check_letter("?838451224001") + "838451224001"


def ctf(pupils: str, header: str = HEADER) -> bytes:
    return (
        f'<?xml version="1.0" encoding="utf-8"?>\n<CTfile>\n{header}\n'
        f"<CTFpupilData>\n{pupils}\n</CTFpupilData>\n</CTfile>\n"
    ).encode()


def pupil(contacts: str = "", extra: str = "", upn: str = GOOD_UPN) -> str:
    return (
        f"<Pupil><UPN>{upn}</UPN><Surname>Test</Surname><Forename>Pat</Forename>"
        f"<BasicDetails><NCyearActual>7</NCyearActual></BasicDetails>{extra}"
        f"<Contacts>{contacts}</Contacts></Pupil>"
    )


# --- SIMS quirks, on fixtures written for these tests (data/README.md) ---------------------------
# The same tests against the real SIMS samples are in test_corpus.py (the conformance tier).


def test_transfer_header() -> None:
    parsed, members = read(DATA / TRANSFER)
    header = parsed.header
    assert header.format == Format.CTF
    assert header.version == "19.0"
    assert header.qualifier == "full"
    assert header.carries_contacts is True
    assert (header.source_la, header.source_estab, header.source_urn) == ("838", "3299", "100201")
    assert header.source_name == "Hollowmere St Anne's CE VA Primary"
    # A transfer is written for the destination, whose URN SIMS fills with X's.
    assert (header.dest_la, header.dest_estab, header.dest_urn) == ("838", "4512", "XXXXXX")
    assert [m.mis_id for m in members] == ["K838329919001", "A838329919002"]


def test_transfer_first_pupil_contacts_come_out_in_order_priority() -> None:
    _, members = read(DATA / TRANSFER)
    alfie = members[0]
    assert (alfie.forename, alfie.surname, alfie.year) == ("Alfie", "Marchbank", "6")
    assert alfie.role == Role.STUDENT
    assert alfie.former_ids == ()
    assert alfie.reg_group is None
    assert alfie.email == ""
    assert alfie.phones == (H("07700 900201"), H("07700 90020"))
    assert alfie.where == "Pupil 1 (line 23)"
    # The file lists Order 3, 4, 2, 1.
    assert [contact_summary(c) for c in alfie.contacts or ()] == [
        (
            1,
            "Mrs",
            "Kerry",
            "Marchbank",
            "PAM",
            True,
            "kerry19Marchbank@example.org",
            (H("07700900219"), M("07700900220")),
            False,
        ),
        (
            2,
            "Mr",
            "Gareth",
            "Marchbank",
            "PAF",
            True,
            "Gareth.Marchbank@example.org",
            (H("07700900216"), M("07700900217"), M("07700900218")),
            False,
        ),
        (
            3,
            "Mr",
            "Dennis",
            "Marchbank",
            "OTH",
            False,
            "",
            (H("07700 900211"), M("07700900212")),
            False,
        ),
        (
            4,
            "Ms",
            "Brenda",
            "Pollard",
            "OTH",
            False,
            "",
            (H("07700900213"), H("07700900214"), M("07700900215")),
            False,
        ),
    ]
    # "Contact N" is the contact's place in the file, where a person would look for it.
    assert [c.where for c in alfie.contacts or ()] == [
        "Pupil 1 (UPN K838329919001), Contact 4",
        "Pupil 1 (UPN K838329919001), Contact 3",
        "Pupil 1 (UPN K838329919001), Contact 1",
        "Pupil 1 (UPN K838329919001), Contact 2",
    ]


def test_transfer_second_pupil_has_a_former_upn_and_wrong_check_letters() -> None:
    parsed, members = read(DATA / TRANSFER)
    poppy = members[1]
    assert (poppy.mis_id, poppy.forename, poppy.surname, poppy.year) == (
        "A838329919002",
        "Poppy",
        "Fairweather",
        "6",
    )
    assert poppy.former_ids == ("M83832991801G",)
    assert poppy.phones == (H("07700900231"), M("07700900232"))
    assert poppy.email == ""
    assert poppy.where == "Pupil 2 (line 193)"
    assert [contact_summary(c) for c in poppy.contacts or ()] == [
        (
            1,
            "Mrs",
            "Hannah",
            "Fairweather",
            "PAM",
            True,
            "Fairweather629@example.org",
            (H("07700900237"), M("07700900238")),
            False,
        ),
        (
            2,
            "Mr",
            "Stuart",
            "Fairweather",
            "PAF",
            True,
            "stuartFairweather195@example.org",
            (H("07700900235"), M("07700900236")),
            False,
        ),
        (
            3,
            "Mrs",
            "Irene",
            "Holloway",
            "OTH",
            False,
            "iHolloway78@example.org",
            (H("07700900233"), M("07700900234")),
            False,
        ),
    ]
    # Real files fail the check letter: warned about, never rejected. Alfie's is right.
    assert parsed.notes == [
        "Pupil 2 (line 193): UPN A838329919002 has the wrong check letter (expected Z)",
        "Pupil 2 (line 193): former UPN M83832991801G has the wrong check letter (expected H)",
    ]


def test_contacts_without_relationship_and_a_destination_without_urn() -> None:
    parsed, members = read(DATA / NO_RELATIONSHIP)
    assert parsed.header.source_urn == "100301"
    assert parsed.header.source_name == "Wyndham Vale Academy"
    assert parsed.header.dest_urn == ""  # DestSchool has no URN in this file
    (jordan,) = members
    assert (jordan.mis_id, jordan.forename, jordan.surname, jordan.year) == (
        "R933429906011",
        "Jordan",
        "Ellery",
        "11",
    )
    assert jordan.phones == ()  # a full file whose pupil has no <Phones>: none, not "unknown"
    assert jordan.email == ""
    # The file lists Order 3, 1, 2, 4; Orders 3 and 4 have no <Relationship>.
    assert [contact_summary(c) for c in jordan.contacts or ()] == [
        (
            1,
            "Mr",
            "Graham",
            "Ellery",
            "PAF",
            True,
            "ge7hgkjh@example.org",
            (M("07700 900301"),),
            False,
        ),
        (
            2,
            "Mrs",
            "Nadia",
            "Ellery",
            "PAM",
            True,
            "nEllery@example.org",
            (M("07700 900302"),),
            False,
        ),
        (3, "Mrs", "Lorna", "Pike", "", False, "", (M("07700 900303"),), False),
        (4, "Mr", "Victor", "Osei", "", False, "", (M("07700 90030"),), False),
    ]
    assert parsed.notes == []  # R933429906011 has the right check letter


def test_partial_file_carries_no_contacts() -> None:
    parsed, members = read(DATA / PARTIAL)
    assert parsed.header.qualifier == "partial"
    assert parsed.header.carries_contacts is False
    assert parsed.header.source_name == "Brook Lane Prim. Sch."
    (rory,) = members
    assert (rory.mis_id, rory.forename, rory.surname, rory.year) == (
        "F933328119004",
        "Rory",
        "Blackwood",
        "6",
    )
    # None: "this file says nothing", which is not the same as "no contacts".
    assert rory.contacts is None
    assert rory.phones is None
    assert rory.email is None


def test_spaced_and_local_numbers() -> None:
    parsed, members = read(DATA / SPACED)
    assert (parsed.header.source_la, parsed.header.source_estab) == ("706", "2099")
    (jasper,) = members
    assert (jasper.forename, jasper.surname, jasper.year) == ("Jasper", "Ogier", "6")
    assert jasper.email == "jOgier2@example.org"  # a pupil-level <Email>
    assert jasper.phones == (H("900501"), M("07700 900502"))
    assert [contact_summary(c) for c in jasper.contacts or ()] == [
        (
            1,
            "Dr",
            "Lucy",
            "Ogier",
            "PAM",
            True,
            "lucy.ogier@example.org",
            (H("900511"), M("07700 900512"), W("900513")),
            False,
        ),
        (
            2,
            "Mrs",
            "Marion",
            "Le Page",
            "REL",
            False,
            "",
            (H("900521"), M("07700 900 52"), M("07700900522")),
            False,
        ),
        (3, "Mr", "Colin", "Brehaut", "REL", False, "", (H("900531"), M("07700 900 532")), False),
    ]


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        (
            TRANSFER,
            [
                ("Kerry", "+447700900220"),
                ("Gareth", "+447700900217"),  # the first of his two M numbers
                ("Dennis", "+447700900212"),
                ("Brenda", "+447700900215"),
                ("Hannah", "+447700900238"),
                ("Stuart", "+447700900236"),
                ("Irene", "+447700900234"),
            ],
        ),
        (
            NO_RELATIONSHIP,
            [
                ("Graham", "+447700900301"),
                ("Nadia", "+447700900302"),
                ("Lorna", "+447700900303"),
                ("Victor", ""),  # 07700 90030 is a digit short
            ],
        ),
        (
            SPACED,
            [
                ("Lucy", "+447700900512"),
                # 07700 900 52 (not a mobile, typed M) comes first; the real mobile is the second.
                ("Marion", "+447700900522"),
                ("Colin", "+447700900532"),
            ],
        ),
    ],
)
def test_mobile_chosen_for_each_contact(fixture: str, expected: list[tuple[str, str]]) -> None:
    _, members = read(DATA / fixture)
    chosen = [
        (c.forename, pick_mobile(c.phones, "GB").mobile) for m in members for c in m.contacts or ()
    ]
    assert chosen == expected


def test_mobile_problems_are_reported_for_a_non_mobile_typed_m_and_a_short_number() -> None:
    _, (jasper,) = read(DATA / SPACED)
    marion = (jasper.contacts or ())[1]
    assert [number for number, _ in pick_mobile(marion.phones, "GB").problems] == ["07700 900 52"]
    _, (jordan,) = read(DATA / NO_RELATIONSHIP)
    victor = (jordan.contacts or ())[3]
    assert [number for number, _ in pick_mobile(victor.phones, "GB").problems] == ["07700 90030"]


def test_a_file_opens_from_a_binary_stream() -> None:
    parsed, members = parse_bytes((DATA / NO_RELATIONSHIP).read_bytes())
    assert parsed.header.source_urn == "100301"
    assert [m.mis_id for m in members] == ["R933429906011"]


# --- hostile XML ---------------------------------------------------------------------------------

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE CTfile [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<CTfile>HEADER<CTFpupilData><Pupil><UPN>X</UPN><Surname>&lol9;</Surname></Pupil></CTFpupilData></CTfile>
"""

HOSTILE = {
    "internal entity": (
        '<?xml version="1.0"?>\n<!DOCTYPE CTfile [<!ENTITY name "Injected">]>\n'
        "<CTfile>HEADER<CTFpupilData><Pupil><UPN>X</UPN><Surname>&name;</Surname></Pupil>"
        "</CTFpupilData></CTfile>"
    ),
    "external entity": (
        '<?xml version="1.0"?>\n<!DOCTYPE CTfile [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
        "<CTfile>HEADER<CTFpupilData><Pupil><UPN>X</UPN><Surname>&xxe;</Surname></Pupil>"
        "</CTFpupilData></CTfile>"
    ),
    "external DTD": (
        '<?xml version="1.0"?>\n<!DOCTYPE CTfile SYSTEM "http://127.0.0.1:9/ctf.dtd">\n'
        "<CTfile>HEADER</CTfile>"
    ),
    "billion laughs": BILLION_LAUGHS,
    "parameter entities": (
        '<?xml version="1.0"?>\n<!DOCTYPE CTfile [\n'
        ' <!ENTITY % file SYSTEM "file:///etc/passwd">\n'
        " <!ENTITY % wrap \"<!ENTITY leak '%file;'>\">\n %wrap;\n]>\n"
        "<CTfile>HEADER<CTFpupilData><Pupil><UPN>&leak;</UPN></Pupil></CTFpupilData></CTfile>"
    ),
    "lower-case doctype after a comment": (
        '<?xml version="1.0"?>\n<!-- exported <CTfile> -->\n<!doctype CTfile [<!ENTITY a "b">]>\n'
        "<CTfile>HEADER</CTfile>"
    ),
    "doctype after a byte-order mark": (
        '\ufeff<!DOCTYPE CTfile [<!ENTITY a "b">]><CTfile>HEADER</CTfile>'
    ),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_documents_with_a_doctype_are_refused_before_expansion(name: str) -> None:
    data = HOSTILE[name].replace("HEADER", HEADER).encode()
    started = time.perf_counter()
    with pytest.raises(MisFormatError) as caught:
        parse_bytes(data)
    assert time.perf_counter() - started < 1.0
    assert "declares a DOCTYPE" in caught.value.message
    assert "refused" in caught.value.message
    assert caught.value.where.startswith("line ")


def test_undefined_entity_without_a_doctype_is_an_error_naming_its_line() -> None:
    data = ctf(pupil().replace("<Surname>Test</Surname>", "\n<Surname>&xxe;</Surname>"))
    with pytest.raises(MisFormatError) as caught:
        parse_bytes(data)
    assert caught.value.where == "line 6"
    assert "Entity 'xxe' not defined" in caught.value.message


# --- broken files --------------------------------------------------------------------------------


def test_malformed_xml_names_the_line() -> None:
    data = ctf("<Pupil>\n<UPN>A</UPN>\n</Pupl>")
    with pytest.raises(MisFormatError) as caught:
        parse_bytes(data)
    # Line 1 declaration, 2 CTfile, 3 Header, 4 CTFpupilData, 5 Pupil, 6 UPN, 7 the bad tag.
    assert caught.value.where == "line 7"
    assert "line 7" in caught.value.message
    assert "not well-formed XML" in caught.value.message
    assert "line 7" in str(caught.value)


def test_truncated_file_names_the_line() -> None:
    data = ctf(pupil())[:-40]
    with pytest.raises(MisFormatError) as caught:
        parse_bytes(data)
    assert "not well-formed XML" in caught.value.message
    assert caught.value.where.startswith("line ")


def test_file_that_is_not_utf8_and_says_nothing_else_is_refused() -> None:
    data = ctf(pupil()).replace(
        b"<Surname>Test</Surname>", "<Surname>Renée</Surname>".encode("latin-1")
    )
    with pytest.raises(MisFormatError) as caught:
        parse_bytes(data)
    assert "not valid UTF-8" in caught.value.message


def test_file_declaring_another_encoding_is_read_in_it() -> None:
    text = ctf(pupil()).decode().replace("utf-8", "ISO-8859-1").replace("Test", "Renée")
    _, (member,) = parse_bytes(text.encode("latin-1"))
    assert member.surname == "Renée"


def test_utf16_file_is_refused() -> None:
    with pytest.raises(MisFormatError, match="UTF-16"):
        parse_bytes(ctf(pupil()).decode().encode("utf-16"))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"UPN,Forename,Surname\nA1,Pat,Test\n", "does not start with XML"),
        (b"<html><body>Not a CTF</body></html>", "not <CTfile>"),
        (b"<CTfile><CTFpupilData></CTFpupilData></CTfile>", "<Header> is missing"),
        (b"<CTfile/>", "<Header> is missing"),
    ],
)
def test_files_that_are_not_a_ctf_are_refused_on_opening(data: bytes, message: str) -> None:
    with pytest.raises(MisFormatError, match=message):
        open_ctf(io.BytesIO(data))


def test_document_qualifier_must_be_full_or_partial() -> None:
    header = HEADER.replace(">full<", ">everything<")
    with pytest.raises(MisFormatError, match="DocumentQualifier"):
        open_ctf(io.BytesIO(ctf(pupil(), header=header)))


def test_pupil_without_upn_fails_while_iterating_and_says_which_pupil() -> None:
    data = ctf(pupil() + "\n" + pupil(upn=""))
    parsed = open_ctf(io.BytesIO(data))
    members = parsed.members
    first = next(members)
    assert first.mis_id == GOOD_UPN
    with pytest.raises(MisFormatError) as caught:
        next(members)
    assert caught.value.where == "Pupil 2 (line 6)"
    assert "<UPN>" in caught.value.message


def test_missing_file_is_a_format_error(tmp_path: Path) -> None:
    with pytest.raises(MisFormatError, match="cannot open"):
        open_ctf(tmp_path / "nope.xml")


# --- tolerance -----------------------------------------------------------------------------------


def test_element_names_are_matched_whatever_their_case() -> None:
    data = (
        b'<?xml version="1.0"?>\n<ctfile><HEADER><CTFVersion>19.0</CTFVersion>'
        b"<documentqualifier>FULL</documentqualifier><SOURCESCHOOL><lea>838</lea>"
        b"<ESTAB>4512</ESTAB><Urn>100001</Urn></SOURCESCHOOL></HEADER>\n<CtfPupilData>"
        b"<PUPIL><upn> a838451224001 </upn><SURNAME>Test</SURNAME><forename>Pat</forename>"
        b"<basicdetails><NCYearActual>R</NCYearActual></basicdetails>"
        b"<CONTACTS><contact><ORDER>1</ORDER><forename>Sam</forename><SURNAME>Test</SURNAME>"
        b"<RESPONSIBILITY>TRUE</RESPONSIBILITY><relationship>pam</relationship>"
        b"<phones><PHONE><telephonetype>m</telephonetype><PHONENO>07700 900001</PHONENO></PHONE>"
        b"</phones><EMAIL>sam@example.org</EMAIL></contact></CONTACTS></PUPIL>"
        b"</CtfPupilData></ctfile>"
    )
    parsed, (member,) = parse_bytes(data)
    assert parsed.header.version == "19.0"
    assert parsed.header.qualifier == "full"
    assert parsed.header.source_urn == "100001"
    assert member.mis_id == "A838451224001"
    assert member.year == "R"
    (contact,) = member.contacts or ()
    assert contact_summary(contact) == (
        1,
        "",
        "Sam",
        "Test",
        "PAM",
        True,
        "sam@example.org",
        (M("07700 900001"),),
        False,
    )


def test_a_namespace_is_tolerated() -> None:
    data = ctf(pupil()).replace(b"<CTfile>", b'<CTfile xmlns="urn:example:ctf">')
    parsed, (member,) = parse_bytes(data)
    assert parsed.header.source_urn == "100001"
    assert member.mis_id == GOOD_UPN


def test_padding_is_stripped_and_names_collapse_inner_spaces() -> None:
    extra = "<Phones><Phone><PhoneNo>  0113 496 0001  </PhoneNo></Phone></Phones>"
    contacts = (
        "<Contact><Order> 1 </Order><Title> Mrs </Title><Forename>  Mary    Ann </Forename>"
        "<Surname> Smith-Jones </Surname><Email> mary@example.org </Email></Contact>"
    )
    data = ctf(
        pupil(contacts, extra=extra).replace(
            "<Forename>Pat</Forename>", "<Forename>   Pat  </Forename>"
        )
    )
    _, (member,) = parse_bytes(data)
    assert member.forename == "Pat"
    # No TelephoneType means a home number.
    assert member.phones == (H("0113 496 0001"),)
    (contact,) = member.contacts or ()
    assert (contact.priority, contact.title, contact.forename, contact.surname, contact.email) == (
        1,
        "Mrs",
        "Mary Ann",
        "Smith-Jones",
        "mary@example.org",
    )
    # Absent Responsibility and Relationship.
    assert contact.parental_responsibility is False
    assert contact.relationship == ""


def test_several_former_upns_are_kept_and_the_year_may_be_absent() -> None:
    body = (
        f"<Pupil><UPN>{GOOD_UPN}</UPN><Surname>Test</Surname><Forename>Pat</Forename>"
        "<BasicDetails><FormerUPN>x123456789012</FormerUPN><FormerUPN>Y12345678901A</FormerUPN>"
        f"<FormerUPN>{GOOD_UPN}</FormerUPN><FormerUPN> </FormerUPN></BasicDetails></Pupil>"
    )
    parsed, (member,) = parse_bytes(ctf(body))
    assert member.former_ids == ("X123456789012", "Y12345678901A")
    assert member.year is None
    assert member.contacts == ()
    assert member.email == ""
    assert len(parsed.notes) == 2
    assert all("former UPN" in note for note in parsed.notes)


def test_court_order_is_read_from_supp_info() -> None:
    contacts = "".join(
        f"<Contact><Order>{i}</Order><Forename>C{i}</Forename><Surname>Test</Surname>"
        f"<SuppInfo><SuppID>SIMS</SuppID><CourtOrder>{flag}</CourtOrder></SuppInfo></Contact>"
        for i, flag in enumerate(["Y", "y", "true", "N", "false", ""], start=1)
    )
    _, (member,) = parse_bytes(ctf(pupil(contacts)))
    assert [c.court_order for c in member.contacts or ()] == [True, True, True, False, False, False]


def test_order_quirks_sort_ties_in_file_order_and_unordered_last() -> None:
    def contact(name: str, order: str | None) -> str:
        order_xml = f"<Order>{order}</Order>" if order is not None else ""
        return f"<Contact>{order_xml}<Forename>{name}</Forename><Surname>Test</Surname></Contact>"

    contacts = (
        contact("NoOrder", None)
        + contact("Two", "2")
        + contact("Junk", "first")
        + contact("OneA", "1")
        + contact("OneB", "1")
    )
    parsed, (member,) = parse_bytes(ctf(pupil(contacts)))
    assert [(c.forename, c.priority) for c in member.contacts or ()] == [
        ("OneA", 1),
        ("OneB", 1),
        ("Two", 2),
        ("NoOrder", None),
        ("Junk", None),
    ]
    where = f"Pupil 1 (UPN {GOOD_UPN})"
    assert parsed.notes == [
        f"{where}, Contact 1 has no <Order>: it has no priority",
        f"{where}, Contact 3: <Order> 'first' is not a whole number: no priority",
        f"{where}: 2 contacts share <Order> 1",
    ]


def test_an_order_out_of_a_links_range_is_no_priority() -> None:
    def contact(name: str, order: str) -> str:
        return (
            f"<Contact><Order>{order}</Order><Forename>{name}</Forename>"
            "<Surname>Test</Surname></Contact>"
        )

    contacts = (
        contact("Big", "40000")
        + contact("Most", "2147483647")
        + contact("Huge", "2147483648")
        + contact("Negative", "-1")
    )
    parsed, (member,) = parse_bytes(ctf(pupil(contacts)))
    assert [(c.forename, c.priority) for c in member.contacts or ()] == [
        ("Big", 40000),
        ("Most", 2_147_483_647),
        ("Huge", None),
        ("Negative", None),
    ]
    where = f"Pupil 1 (UPN {GOOD_UPN})"
    assert parsed.notes == [
        f"{where}, Contact 3: <Order> 2147483648 is out of range (0 to 2,147,483,647): no priority",
        f"{where}, Contact 4: <Order> -1 is out of range (0 to 2,147,483,647): no priority",
    ]


def test_wrong_or_odd_upn_is_noted_not_rejected() -> None:
    wrong = ("B" if GOOD_UPN[0] != "B" else "C") + GOOD_UPN[1:]
    parsed, members = parse_bytes(ctf(pupil(upn=wrong) + pupil(upn="12345")))
    assert [m.mis_id for m in members] == [wrong, "12345"]
    assert parsed.notes == [
        f"Pupil 1 (line 5): UPN {wrong} has the wrong check letter (expected {GOOD_UPN[0]})",
        "Pupil 2 (line 5): UPN 12345 does not look like a UPN (a letter, 11 digits, then a digit"
        " or letter)",
    ]


def test_upn_check_letter_matches_the_dfe_algorithm() -> None:
    # Worked by hand: 8*2+0*3+1*4+2*5+0*6+9*7+8*8+0*9+9*10+0*11+6*12+9*13 = 436; 436 % 23 = 22.
    assert upn_check_letter("Z801209809069") == "Z"
    assert upn_check_letter("G335311012004") == "G"


def test_contacts_in_a_partial_file_are_ignored_and_noted() -> None:
    header = HEADER.replace(">full<", ">Partial<")
    contacts = "<Contact><Order>1</Order><Forename>Sam</Forename><Surname>Test</Surname></Contact>"
    parsed, (member,) = parse_bytes(ctf(pupil(contacts), header=header))
    assert parsed.header.qualifier == "partial"
    assert member.contacts is None
    assert member.phones is None
    assert parsed.notes == ["the file is partial, so the contacts and phones it holds were ignored"]


def test_nameless_contact_and_numberless_phone_are_skipped_with_a_note() -> None:
    contacts = (
        "<Contact><Order>1</Order><Forename> </Forename></Contact>"
        "<Contact><Order>2</Order><Forename>Sam</Forename><Surname>Test</Surname>"
        "<Phones><Phone><TelephoneType>M</TelephoneType><PhoneNo/></Phone></Phones></Contact>"
    )
    parsed, (member,) = parse_bytes(ctf(pupil(contacts)))
    assert [(c.forename, c.phones) for c in member.contacts or ()] == [("Sam", ())]
    assert len(parsed.notes) == 2
    assert "Contact 1" in parsed.notes[0]
    assert "has no name" in parsed.notes[0]
    assert "no number" in parsed.notes[1]


def test_skipped_blocks_do_not_leak_into_records() -> None:
    # Attendance holds its own <Email>-like and <Phones> children in some vendors' files: they
    # must not be mistaken for the pupil's.
    extra = (
        "<Attendance><YearData><Year>2024</Year><Phones><Phone><PhoneNo>07700 900999</PhoneNo>"
        "</Phone></Phones></YearData></Attendance>"
    )
    _, (member,) = parse_bytes(ctf(pupil(extra=extra)))
    assert member.phones == ()


def test_pupil_elements_are_read_whatever_their_case_or_namespace_prefix() -> None:
    # The parser reports only Pupil elements to Python, so every spelling must get through.
    upns = [upn_check_letter(f"?8384512240{n:02d}") + f"8384512240{n:02d}" for n in range(5)]
    body = "".join(
        pupil(upn=upn).replace("<Pupil>", f"<{tag}>").replace("</Pupil>", f"</{tag}>")
        for upn, tag in zip(upns, ["PUPIL", "pupil", "pUpIl", "Pupil", "c:Pupil"], strict=True)
    )
    data = ctf(body).replace(b"<CTfile>", b'<CTfile xmlns:c="urn:example:ctf">')
    parsed, members = parse_bytes(data)
    assert [m.mis_id for m in members] == upns
    assert parsed.notes == []


def test_a_spelling_first_seen_deep_in_a_big_file_is_read(tmp_path: Path) -> None:
    # Far past the first chunk the file was read in.
    path = tmp_path / "late.xml"
    write_big_ctf(path, 600)
    late = f"<PUPIL><UPN>{GOOD_UPN}</UPN><Surname>Late</Surname><Forename>Pat</Forename></PUPIL>"
    path.write_bytes(
        path.read_bytes().replace(b"</CTFpupilData>", late.encode() + b"</CTFpupilData>")
    )
    assert path.stat().st_size > 512 * 1024
    _, members = read(path)
    assert len(members) == 601
    assert (members[-1].surname, members[-1].where) == ("Late", "Pupil 601 (line 606)")


def test_only_pupils_in_ctfpupildata_after_the_header_are_read() -> None:
    header = HEADER.replace(
        "</Header>", f"<CTFpupilData>{pupil(upn='A00000000000A')}</CTFpupilData></Header>"
    )
    stray = f"<Leavers>{pupil(upn='B00000000000B')}</Leavers>"
    data = ctf(pupil()).replace(b"</CTfile>", stray.encode() + b"</CTfile>")
    data = data.replace(HEADER.encode(), header.encode())
    parsed, members = parse_bytes(data)
    assert [m.mis_id for m in members] == [GOOD_UPN]
    assert parsed.notes == []


@pytest.mark.parametrize(
    ("body", "noted"),
    [
        ("", True),
        ("<Leavers><Pupil><UPN>X</UPN></Pupil></Leavers>", True),
        ("<CTFpupilData/>", False),
        ("<Other><ctfPUPILdata/></Other>", False),
    ],
)
def test_a_file_without_ctfpupildata_is_noted(body: str, noted: bool) -> None:
    data = f'<?xml version="1.0"?>\n<CTfile>{HEADER}{body}</CTfile>\n'.encode()
    parsed, members = parse_bytes(data)
    assert members == []
    note = "the file has no <CTFpupilData>: it lists no pupils"
    assert parsed.notes == ([note] if noted else [])


def test_header_pupil_data_does_not_count_as_the_files() -> None:
    header = HEADER.replace("</Header>", "<CTFpupilData/></Header>")
    data = f'<?xml version="1.0"?>\n<CTfile>{header}</CTfile>\n'.encode()
    parsed, _ = parse_bytes(data)
    assert parsed.notes == ["the file has no <CTFpupilData>: it lists no pupils"]


# --- streaming -----------------------------------------------------------------------------------

_HISTORY = (
    "<Attendance>"
    + "".join(
        f"<YearData><Year>{y}</Year><LEA>838</LEA><Estab>4512</Estab>"
        "<SessionsPossible>380</SessionsPossible><SessionsAttended>370</SessionsAttended>"
        "</YearData>"
        for y in range(2020, 2025)
    )
    + "</Attendance><StageAssessments><KeyStage><Stage>KS2</Stage>"
    + "".join(
        f"<StageAssessment><Year>2020</Year><Subject>S{i}</Subject><Result>EXS</Result>"
        "</StageAssessment>"
        for i in range(4)
    )
    + "</KeyStage></StageAssessments>"
)


def write_big_ctf(path: Path, pupils: int, *, history: bool = True) -> None:
    with path.open("wb") as out:
        out.write(ctf("").split(b"</CTFpupilData>")[0])
        for n in range(pupils):
            body = f"83845122{n:04d}"
            upn = upn_check_letter("?" + body) + body
            contacts = "".join(
                f"<Contact><Order>{k}</Order><Forename>Parent{k}</Forename><Surname>S{n}</Surname>"
                f"<Responsibility>true</Responsibility><Phones><Phone><TelephoneType>M"
                f"</TelephoneType><PhoneNo>07700 9{n % 100000:05d}</PhoneNo></Phone></Phones>"
                f"<Email>p{k}.{n}@example.org</Email></Contact>"
                for k in (1, 2, 3)
            )
            extra = _HISTORY if history else ""
            out.write((pupil(contacts, extra=extra, upn=upn) + "\n").encode())
        out.write(b"</CTFpupilData>\n</CTfile>\n")


@pytest.fixture(scope="module")
def big_files(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    folder = tmp_path_factory.mktemp("ctf")
    files = {}
    for count in (500, 5000):
        # Without the history blocks, to keep tracemalloc's slow tracing short; the tree test
        # below reads them.
        files[count] = folder / f"pupils_{count}.xml"
        write_big_ctf(files[count], count, history=False)
    files[-5000] = folder / "pupils_5000_with_history.xml"
    write_big_ctf(files[-5000], 5000)
    return files


def python_peak(path: Path, *, keep: bool) -> tuple[int, int]:
    tracemalloc.start()
    try:
        parsed = open_ctf(path)
        kept = []
        count = 0
        for member in parsed.members:
            count += 1
            if keep:
                kept.append(member)
        return count, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_parsing_many_pupils_keeps_no_python_memory_per_pupil(big_files: dict[int, Path]) -> None:
    count_small, peak_small = python_peak(big_files[500], keep=False)
    count_big, peak_big = python_peak(big_files[5000], keep=False)
    assert (count_small, count_big) == (500, 5000)
    assert peak_big < 3 * peak_small
    # The comparison can fail: had the parser kept its records (as this caller does), 5,000 of
    # them would have cost ten times what 500 cost, far past the bound above.
    _, kept_small = python_peak(big_files[500], keep=True)
    assert 10 * (kept_small - peak_small) > 3 * peak_small


_RSS_SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from lxml import etree
    from homelink.mis.formats.ctf import open_ctf
    mode, path = sys.argv[1], Path(sys.argv[2])
    if mode == "stream":
        assert sum(1 for _ in open_ctf(path).members) > 0
    elif mode == "tree":
        tree = etree.parse(str(path))
        assert len(tree.getroot()) > 0
    # VmHWM, not ru_maxrss: the latter survives exec and reports the parent's peak.
    status = Path("/proc/self/status").read_text()
    print(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))
    """
)


def max_rss_kb(mode: str, path: Path) -> int:
    done = subprocess.run(
        [sys.executable, "-c", _RSS_SCRIPT, mode, str(path)],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    return int(done.stdout.strip())


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux's /proc")
def test_the_xml_tree_is_freed_as_pupils_are_read(big_files: dict[int, Path]) -> None:
    # libxml2's tree lives outside Python's allocator, so tracemalloc cannot see it: compare the
    # process's peak memory against a baseline and against holding the whole tree.
    path = big_files[-5000]
    baseline = max_rss_kb("none", path)
    streamed = max_rss_kb("stream", path) - baseline
    whole_tree = max_rss_kb("tree", path) - baseline
    assert whole_tree > 20_000  # the file is big enough for the comparison to mean something
    assert streamed < whole_tree / 5


def test_pupil_without_a_legal_surname_is_an_error() -> None:
    data = ctf(pupil().replace("<Surname>Test</Surname>", "<Surname>  </Surname>"))
    with pytest.raises(MisFormatError) as caught:
        parse_bytes(data)
    assert caught.value.where == "Pupil 1 (line 5)"
    assert caught.value.message == f"the <Pupil> (UPN {GOOD_UPN}) has no <Surname>"


def test_the_reader_says_how_much_of_the_file_it_has_read(tmp_path: Path) -> None:
    from homelink.mis.generate import generate_ctf

    path = tmp_path / "big.xml"
    generate_ctf(path, pupils=400, seed=3)
    parsed = open_ctf(path)
    assert parsed.fraction_read is not None
    seen = [parsed.fraction_read() for _ in parsed.members]
    assert 0 < seen[0] < 0.5
    assert seen == sorted(seen)
    assert parsed.fraction_read() == 1.0
