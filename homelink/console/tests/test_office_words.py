"""The console says things in the office's words: no command-line advice, no internal codes.

A file of another school gets a console choice ("Import it into … anyway"), never "--force",
and says plainly when it names no destination (never "URN ?"). Every kind of data issue has a
title and a line of what to do (mis/issues.py), and the pages that show data issues (the
dashboard, an import's preview and its applied run, the history) show no code.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import reverse

from homelink.audit.models import AuditEvent
from homelink.mis import rules
from homelink.mis.issues import ISSUE_KINDS, issue_title, reason_label
from homelink.mis.models import ImportRun
from homelink.mis.records import PhoneRecord
from homelink.mis.tests.factories import contact, pupil, run_import
from homelink.register import selectors
from homelink.register.models import Member
from homelink.schools.models import School

# An upload's task is queued once its request commits (mis/runs.py): these tests commit as a
# request does, and the immediate backend then runs the task where the worker would.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _immediate_tasks_and_media(settings, tmp_path: Path) -> None:
    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}
    settings.MEDIA_ROOT = tmp_path / "media"


def ctf(*, source: str, dest: str = "", qualifier: str = "full") -> bytes:
    """A small SIMS-shaped CTF: ``source`` and ``dest`` are (LEA, Estab, URN) XML fragments."""
    return f"""<?xml version="1.0" encoding="utf-8"?>
<CTfile><Header><DocumentName>Common Transfer File</DocumentName><CTFversion>19.0</CTFversion>
<DateTime>2024-04-30T07:24:22</DateTime><DocumentQualifier>{qualifier}</DocumentQualifier>
<SupplierID>SIMS</SupplierID>{source}{dest}</Header>
<CTFpupilData><Pupil><UPN>F933328119004</UPN><Surname>Blackwood</Surname><Forename>Rory</Forename>
<DOB>2013-06-07</DOB><Gender>M</Gender><BasicDetails><NCyearActual>6</NCyearActual></BasicDetails>
<Contacts><Contact><Order>1</Order><Title>Mrs</Title><Surname>Blackwood</Surname>
<Forename>Ann</Forename><Relationship>PAM</Relationship><Responsibility>true</Responsibility>
<Phones><Phone><TelephoneType>M</TelephoneType><PhoneNo>07700 900401</PhoneNo></Phone></Phones>
<Email>ann.blackwood@example.org</Email></Contact></Contacts></Pupil></CTFpupilData></CTfile>
""".encode()


ELSEWHERE = (
    "<SourceSchool><LEA>933</LEA><Estab>3281</Estab><URN>100401</URN>"
    "<SchoolName>Brook Lane Prim. Sch.</SchoolName><AcademicYear>2023</AcademicYear></SourceSchool>"
)
NO_SOURCE_NAME = "<SourceSchool><LEA>933</LEA><Estab>3281</Estab><URN>XXXXXX</URN></SourceSchool>"
THIRD_SCHOOL = "<DestSchool><LEA>111</LEA><Estab>2222</Estab><URN>XXXXXX</URN></DestSchool>"


def url(name: str, school: School, run: ImportRun | None = None) -> str:
    kwargs: dict[str, Any] = {"urn": school.urn}
    if run is not None:
        kwargs["run_id"] = run.pk
    return reverse(f"console:{name}", kwargs=kwargs)


def latest(school: School) -> ImportRun:
    return ImportRun.objects.filter(school=school).latest("pk")


class _Text(HTMLParser):
    """The words a person reads on a page: text outside tags, less scripts and styles."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        self._skip += tag in ("script", "style")

    def handle_endtag(self, tag: str) -> None:
        self._skip -= tag in ("script", "style")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def visible_text(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    return " ".join(" ".join(parser.parts).split())


#: Codes as a page printed them before, underscores spaced ("3 priority1 tie"). Case matters:
#: the plain titles are capitalised sentences.
SPACED_CODES = [
    "priority1 tie",
    "no priority1",
    "not mobile",
    "invalid email",
    "ambiguous match",
    "conflicting details",
    "duplicate member",
    "web not in mis",
    "likely duplicate",
    "shared email",
]
#: A stored code: lower-case words joined by underscores.
SNAKE = re.compile(r"\b[a-z][a-z0-9]*_[a-z0-9_]+\b")


def assert_in_office_words(html: str, page: str) -> None:
    text = visible_text(html)
    assert "--" not in text, f"{page} gives command-line advice"
    assert "URN ?" not in text and "(DfE )" not in text, page
    found = SNAKE.search(text)
    assert found is None, f"{page} shows the code {found.group() if found else ''!r}"
    for code in SPACED_CODES:
        assert not re.search(rf"\b{code}\b", text), f"{page} shows the code {code!r}"


# --- another school's file ------------------------------------------------------------------


def test_another_schools_file_offers_a_console_choice_and_never_says_force(client, school, admin_a):
    client.force_login(admin_a)
    response = client.post(
        url("imports", school),
        {"file": SimpleUploadedFile("brook.xml", ctf(source=ELSEWHERE))},
        follow=True,
    )
    refused = latest(school)
    assert refused.status == ImportRun.Status.FAILED
    assert refused.options["another_school"] is True
    page = response.content.decode()
    text = visible_text(page)
    assert "--force" not in page
    assert "URN ?" not in text and "(DfE )" not in text
    assert "written by Brook Lane Prim. Sch. (URN 100401, DfE number 933/3281)" in text
    assert "does not name the school it is for" in text
    assert "Import it into Example Academy anyway" in text
    assert "never marks anyone as left" in text
    assert Member.objects.filter(school=school).count() == 0
    assert_in_office_words(page, "a refused file")

    # Without the tick box: refused, nothing queued.
    response = client.post(url("import_force", school, refused), follow=True)
    assert latest(school) == refused
    assert "Tick the box" in response.content.decode()

    response = client.post(
        url("import_force", school, refused), {"confirm_other_school": "1"}, follow=True
    )
    preview = latest(school)
    assert preview.status == ImportRun.Status.PREVIEW
    assert preview.options["force"] is True and preview.options["dry_run"] is True
    page = response.content.decode()
    assert "another school's file imported anyway" in visible_text(page)
    assert "imported anyway: adds and updates only" in visible_text(page)
    assert "--force" not in page
    assert AuditEvent.objects.filter(action="import.forced").exists()
    refused.refresh_from_db()
    assert refused.followed_by_id is not None
    assert "see its preview" in client.get(url("import_run", school, refused)).content.decode()

    client.post(url("import_apply", school, preview))
    applied = latest(school)
    assert applied.status == ImportRun.Status.APPLIED
    assert applied.options["force"] is True
    assert applied.summary["whole_roll"] is False
    assert Member.objects.filter(school=school, mis_id="F933328119004").exists()


def test_a_file_for_a_third_school_says_who_wrote_it_and_for_whom(client, school, admin_a):
    client.force_login(admin_a)
    response = client.post(
        url("imports", school),
        {"file": SimpleUploadedFile("x.xml", ctf(source=NO_SOURCE_NAME, dest=THIRD_SCHOOL))},
        follow=True,
    )
    text = visible_text(response.content.decode())
    assert "written by the school with DfE number 933/3281" in text
    assert "for the school with DfE number 111/2222" in text
    assert "neither is Example Academy (URN 100001, DfE number 838/4512)" in text
    assert "URN ?" not in text and "XXXXXX" not in text


def test_a_viewer_cannot_import_another_schools_file_anyway(client, school, admin_a, viewer_a):
    client.force_login(admin_a)
    client.post(
        url("imports", school), {"file": SimpleUploadedFile("b.xml", ctf(source=ELSEWHERE))}
    )
    refused = latest(school)
    client.force_login(viewer_a)
    page = client.get(url("import_run", school, refused)).content.decode()
    assert "Import it into" not in page
    assert "An administrator can import it anyway" in page
    response = client.post(url("import_force", school, refused), {"confirm_other_school": "1"})
    assert response.status_code == 403
    assert latest(school) == refused


def test_discarding_another_schools_file_deletes_it(client, school, admin_a):
    client.force_login(admin_a)
    client.post(
        url("imports", school), {"file": SimpleUploadedFile("b.xml", ctf(source=ELSEWHERE))}
    )
    refused = latest(school)
    assert refused.upload
    client.post(url("import_discard", school, refused))
    refused.refresh_from_db()
    assert refused.status == ImportRun.Status.DISCARDED and not refused.upload
    response = client.post(url("import_force", school, refused), {"confirm_other_school": "1"})
    assert response.status_code == 303
    assert latest(school) == refused


def test_the_command_line_still_names_its_option(school, tmp_path):
    path = tmp_path / "brook.xml"
    path.write_bytes(ctf(source=ELSEWHERE))
    with pytest.raises(CommandError) as refused:
        call_command("import_file", str(path), school=school.urn)
    assert "Use --force if this is really meant." in str(refused.value)
    assert "does not name the school it is for" in str(refused.value)
    assert "Nothing was changed." in str(refused.value)


# --- data issues in plain English -----------------------------------------------------------


def recorded_codes() -> set[str]:
    """Every data-issue code the importer and the dashboard can record, read from their source
    (the dashboard's lists: register/selectors.py, and mis/selectors.py with the rest of mis/)."""
    codes: set[str] = set()
    mis = Path(str(rules.__file__)).parent
    for path in (*sorted(mis.glob("*.py")), Path(str(selectors.__file__))):
        source = path.read_text()
        codes |= set(re.findall(r"\.issue\(\s*\"(\w+)\"", source))
        codes |= set(re.findall(r"_group\(\s*\"(\w+)\"", source))
        codes |= set(re.findall(r"IssueGroup\(\s*\"(\w+)\"", source))
    return codes


def test_every_known_code_has_a_title_and_advice():
    codes = recorded_codes()
    assert {"not_mobile", "priority1_tie", "no_details", "unreachable", "last_import"} <= codes
    for code in codes:
        assert code in ISSUE_KINDS, f"data issue {code!r} has no title in mis/issues.py"
    for code, kind in ISSUE_KINDS.items():
        assert kind.title and kind.advice, code
        for words in (kind.title, kind.advice):
            assert not SNAKE.search(words), f"{code}: {words!r}"
    assert issue_title("a_code_from_the_future") == "Another data issue"


def test_reasons_are_worded_for_the_office():
    assert reason_label("link skip: listed twice for this student") == (
        "Links skipped: listed twice for this student"
    )
    assert reason_label("student left: not in this whole-roll export") == (
        "Students marked as left: not in this whole-roll export"
    )
    assert reason_label("file: a transfer-in (this school is the destination): adds and") == (
        "The file: a transfer-in (this school is the destination): adds and"
    )


def a_file_full_of_issues(school: School) -> list[Any]:
    pager = (PhoneRecord("M", "07689 415 547"),)
    return [
        pupil(
            "A00000000001",
            "Tied",
            "Student",
            contact(1, "Mum", "Student", email="not-an-email", phones=pager),
            contact(1, "Dad", "Student", mobile="07700 900002"),
        ),
        pupil("A00000000002", "No", "First", contact(2, "Only", "Second", mobile="07700 900003")),
        pupil(
            "A00000000003",
            "Held",
            "Child",
            contact(1, "Court", "Order", mobile="07700 900004", court_order=True),
        ),
        pupil("A00000000004", "Blank", "Kid", contact(1, "Blank", "Parent")),
        pupil("A00000000004", "Blank", "Kid", contact(1, "Blank", "Parent")),
        pupil("A00000000005", "Sib", "One", contact(1, "Pat", "Same", email="pat@x.example")),
        pupil(
            "A00000000006",
            "Sib",
            "Two",
            contact(1, "Pat", "Same", email="pat@x.example", mobile="07700 900009"),
        ),
    ]


def test_pages_showing_data_issues_show_no_internal_code(client, school, admin_a):
    applied = run_import(school, a_file_full_of_issues(school))
    preview = run_import(school, a_file_full_of_issues(school), dry_run=True)
    kinds = set(applied.summary["data_issues"])
    assert {"not_mobile", "invalid_email", "priority1_tie", "no_priority1"} <= kinds
    assert {"held_for_review", "no_details", "duplicate_member"} <= kinds

    client.force_login(admin_a)
    pages = {
        "the dashboard": reverse("console:dashboard", kwargs={"urn": school.urn}),
        "the applied import": url("import_run", school, applied.run),
        "the preview": url("import_run", school, preview.run),
        "the import history": url("imports", school),
    }
    shown = {
        "the dashboard": kinds,
        "the applied import": kinds,
        "the preview": set(preview.summary["data_issues"]),
    }
    for name, address in pages.items():
        response = client.get(address)
        assert response.status_code == 200, name
        html = response.content.decode()
        assert_in_office_words(html, name)
        text = visible_text(html)
        for code in shown.get(name, set()):
            assert ISSUE_KINDS[code].title in text, f"{name}: no title for {code}"
        if name != "the import history":
            assert "What to do:" in text
            assert ISSUE_KINDS["priority1_tie"].advice in text, name


def test_the_imports_page_says_which_sims_export_to_make(client, school, viewer_a):
    client.force_login(viewer_a)
    text = visible_text(client.get(url("imports", school)).content.decode())
    menu = " \N{SINGLE RIGHT-POINTING ANGLE QUOTATION MARK} ".join(
        ["Routines", "Data Out", "CTF", "Export CTF"]
    )
    assert menu in text
    assert "The whole school" in text and "Pupils joining you" in text
    assert "transfer CTF" in text
