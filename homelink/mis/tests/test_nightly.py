"""What makes a nightly re-import cheap must change nothing it decides (issue 12).

The CTF reader leaves the white space between elements to libxml2 to drop; the register is read
straight into compact rows; the cyclic garbage collector is kept off the register while the
file is planned; and an existing adult the file states as the register already has it gets no
statement. Each is checked here against the plain way of doing the same thing.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from homelink.mis.formats import ctf as ctf_module
from homelink.mis.formats.ctf import open_ctf
from homelink.mis.generate import generate_ctf
from homelink.mis.guards import ImportOptions
from homelink.mis.records import MemberRecord, MisFormatError
from homelink.mis.rules import build_plan
from homelink.mis.snapshot import (
    ADULT_FIELDS,
    DETAIL_FIELDS,
    LINK_FIELDS,
    MEMBER_FIELDS,
    details_digest,
    load_register,
)
from homelink.mis.tests.factories import contact, own_ctf, pupil, run_import
from homelink.register.models import Adult, Link, Member, Source
from homelink.register.services import (
    adult_create,
    link_add,
    link_set_prime,
    person_mark_registered,
    person_opt_out,
)
from homelink.schools.models import School

# --- the reader ----------------------------------------------------------------------------------


def _plain_parser(tag: tuple[str, ...] | None = None) -> Any:
    """The reader's parser as it was: every blank text node built, IDs collected."""
    return etree.XMLPullParser(
        events=("end",),
        tag=tag,
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


def _read(path: Path) -> tuple[list[MemberRecord], list[str], Any]:
    parsed = open_ctf(path)
    records = list(parsed.members)
    return records, parsed.notes, parsed.header


QUIRKS = """<?xml version="1.0" encoding="utf-8"?>
<!-- a comment before the root -->
<CTfile>
  <Header><DocumentName>Common Transfer File</DocumentName><CTFversion> 19.0 </CTFversion>
    <DocumentQualifier>
      full
    </DocumentQualifier>
    <SourceSchool> <LEA>838</LEA> <Estab>4512</Estab> <URN>100001</URN>
      <SchoolName>  Example   <!-- c -->  Academy </SchoolName></SourceSchool>
    <DestSchool><LEA>838</LEA><Estab>4512</Estab></DestSchool></Header>
  <CTFpupilData>
    <Pupil>
      <UPN> A838451224001 </UPN>
      <Surname>  O'Brien <!-- a comment --> Smith </Surname>
      <Forename><![CDATA[ Zoë ]]>  <!-- c -->  Ann</Forename>
      <BasicDetails>
        <NCyearActual>&#32;7&#32;</NCyearActual>
        <FormerUPN>   </FormerUPN>
      </BasicDetails>
      <Email>
      </Email>
      <Phones>
        <Phone> <TelephoneType> M </TelephoneType> <PhoneNo> 07700 900 001 </PhoneNo> </Phone>
        <Phone><TelephoneType/><PhoneNo>  <!-- none --> </PhoneNo></Phone>
      </Phones>
      <Contacts>
        <Contact>
          <Order> 1 </Order>
          <Title><![CDATA[Mrs]]></Title>
          <Surname>Smith&#160;Jones</Surname>
          <Forename>  Mary   Ann  </Forename>
          <Relationship> PAM </Relationship>
          <Responsibility>
            true
          </Responsibility>
          <Email> mary@example.org </Email>
          <Email></Email>
          <Phones><Phone><TelephoneType>M</TelephoneType><PhoneNo>07700900002</PhoneNo></Phone>
          </Phones>
          <SuppInfo> <CourtOrder> N </CourtOrder> </SuppInfo>
        </Contact>
        <Contact>
          <Order>2</Order><Surname>Smith</Surname><Forename><?pi x?> John </Forename>
          <Email>  </Email>
          <SuppInfo><CourtOrder>Y</CourtOrder></SuppInfo>
        </Contact>
        <Contact><Order>x</Order><Surname>   </Surname><Forename> </Forename></Contact>
      </Contacts>
    </Pupil>
    <Pupil><UPN>B838451224001</UPN><Surname>Lee</Surname><Forename>Kim</Forename></Pupil>
  </CTFpupilData>
</CTfile>
"""


@pytest.mark.parametrize("source", ["generated", "quirks"])
def test_the_reader_reads_what_it_read_with_every_blank_text_node_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    path = tmp_path / "file.xml"
    if source == "generated":
        generate_ctf(path, pupils=60, seed=7)
    else:
        path.write_text(QUIRKS, encoding="utf-8")
    lean = _read(path)
    monkeypatch.setattr(ctf_module, "_new_parser", _plain_parser)
    plain = _read(path)
    assert lean == plain
    assert len(lean[0]) == (60 if source == "generated" else 2)


# --- the register as the planner reads it ---------------------------------------------------------


def _reference(school: School) -> dict[str, Any]:
    """The register as the ORM gives it, in the planner's terms."""
    members = {
        m.mis_id: tuple(getattr(m, f) for f in MEMBER_FIELDS)
        for m in Member.objects.filter(school=school)
    }
    adults = {
        a.pk: (
            *(getattr(a, f) for f in ADULT_FIELDS),
            details_digest(tuple(getattr(a, f) for f in DETAIL_FIELDS)),
        )
        for a in Adult.objects.filter(school=school)
    }
    links: dict[int, list[tuple[Any, ...]]] = {}
    for link in Link.objects.filter(school=school).order_by("pk"):
        links.setdefault(link.student_id, []).append(tuple(getattr(link, f) for f in LINK_FIELDS))
    return {"members": members, "adults": adults, "links": links}


@pytest.mark.django_db
def test_the_register_is_read_as_the_database_holds_it(school: School) -> None:
    school.import_lower_priority = True
    school.save()
    run_import(
        school,
        [
            pupil(
                "A100000000001",
                "Sam",
                "Smith",
                contact(1, "Mary", "Smith", email="mary@example.org", mobile="07700 900001"),
                contact(2, "John", "Smith", email="john@example.org", relationship="PAF"),
                mobile="07700 900011",
                former=("A100000000091",),
            ),
            pupil(
                "A100000000002",
                "Ann",
                "Bell",
                contact(1, "Mary", "Smith", email="mary@example.org", mobile="07700 900001"),
                contact(1, "Zoë", "O'Brien", mobile="07700 900003", court_order=True),
                year="9",
            ),
        ],
    )
    # People and staff change the register between imports.
    mary = Adult.objects.get(forename="Mary")
    john = Adult.objects.get(forename="John")
    sam = Member.objects.get(mis_id="A100000000001")
    person_opt_out(person=john, opted_out=True, actor="test", requested_by_person=True)
    person_mark_registered(person=mary, actor="test")
    person_mark_registered(person=sam, actor="test")
    link_set_prime(
        link=Link.objects.get(adult=john, student=sam), prime=True, by="manual", actor="test"
    )
    aunt = adult_create(school=school, forename="Jo", surname="Bell", actor="test")
    link_add(student=sam, adult=aunt, source=Source.MANUAL, actor="test", relationship="aunt")
    Member.objects.filter(pk=sam.pk).update(admission_no="ADM1", status=Member.Status.LEFT)

    register = load_register(school)
    reference = _reference(school)
    assert {k: tuple(v) for k, v in register.members.items()} == reference["members"]
    assert {k: tuple(v) for k, v in register.adults.items()} == reference["adults"]
    assert {
        student: sorted(tuple(link) for link in links) for student, links in register.links.items()
    } == {student: sorted(links) for student, links in reference["links"].items()}
    assert register.by_former == {"A100000000091": register.members["A100000000001"]}
    assert register.by_admission == {"ADM1": register.members["A100000000001"]}
    assert register.by_adult_mis_id == {}
    # Text that repeats across a school is held once.
    for state in register.members.values():
        assert state.forename is sys.intern(state.forename)
        assert state.status is sys.intern(state.status)
    for links in register.links.values():
        for link in links:
            assert link.relationship is sys.intern(link.relationship)
            # The adult's own id object, not one per link.
            assert link.adult_id is register.adults[link.adult_id].id


# --- the garbage collector --------------------------------------------------------------------------


@pytest.fixture
def collector() -> Iterator[None]:
    assert gc.isenabled()
    frozen = gc.get_freeze_count()
    yield
    assert gc.isenabled()
    assert gc.get_freeze_count() == frozen


@pytest.mark.django_db
@pytest.mark.usefixtures("collector")
def test_planning_leaves_the_collector_as_it_found_it(school: School) -> None:
    run_import(school, [pupil("A100000000001", "Sam", "Smith", contact(1, "Mary", "Smith"))])
    plan = build_plan(
        school, own_ctf(school), iter([pupil("A100000000001", "Sam", "Smith")]), ImportOptions()
    )
    assert plan.report.counts["student_unchanged"] == 1


@pytest.mark.django_db
@pytest.mark.usefixtures("collector")
def test_a_bad_file_leaves_the_collector_as_it_found_it(school: School) -> None:
    def members() -> Iterator[MemberRecord]:
        yield pupil("A100000000001", "Sam", "Smith")
        raise MisFormatError("the <Pupil> has no <UPN>", "Pupil 2")

    with pytest.raises(MisFormatError):
        build_plan(school, own_ctf(school), members(), ImportOptions())


# --- statements -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_adult_stated_as_the_register_has_it_changes_only_where_the_file_does(
    school: School,
) -> None:
    """Three siblings; the mother is stated first as the register has her, then differently:
    no update, one conflict. The father's details changed in the file: his first statement
    wins, and it is written."""
    mum = contact(1, "Mary", "Smith", email="mary@example.org", mobile="07700 900001")
    dad = contact(2, "John", "Smith", email="john@example.org", relationship="PAF")
    school.import_lower_priority = True
    school.save()
    kids = ["A100000000001", "A100000000002", "A100000000003"]
    run_import(school, [pupil(upn, "Kid", f"Smith{i}", mum, dad) for i, upn in enumerate(kids)])
    moved = contact(1, "Mary", "Smith", email="mary@example.org", mobile="07700 900009")
    new_dad = contact(2, "John", "Smith", email="john.new@example.org", relationship="PAF")
    other_dad = contact(2, "John", "Smith", email="john@example.org", relationship="PAF")
    outcome = run_import(
        school,
        [
            pupil(kids[0], "Kid", "Smith0", mum, new_dad),
            pupil(kids[1], "Kid", "Smith1", moved, other_dad),
            pupil(kids[2], "Kid", "Smith2", mum, new_dad),
        ],
    )
    assert outcome.summary["data_issues"]["conflicting_details"] == 2
    assert outcome.summary["adults"]["updated"] == 1
    assert set(Adult.objects.values_list("forename", "email", "mobile")) == {
        ("Mary", "mary@example.org", "+447700900001"),
        ("John", "john.new@example.org", ""),
    }
