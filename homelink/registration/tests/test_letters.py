"""Security letters: one page per student, each with a live code for that student."""

from __future__ import annotations

import datetime as dt
import io
import re
from dataclasses import replace
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.utils import timezone
from pypdf import PdfReader

from homelink.audit.models import AuditEvent
from homelink.mis.tests.factories import contact, pupil, run_import
from homelink.register.models import Adult, Member
from homelink.register.services import person_mark_registered
from homelink.registration.letters import NoStudents, letters_issue, use_by_label
from homelink.registration.models import LetterBatch, SecurityCode
from homelink.registration.services import code_lookup
from homelink.schools.models import School

pytestmark = pytest.mark.django_db

CODE = re.compile(r"\b[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}\b")

# (UPN, forename, surname, year, registration group), deliberately not in letter order.
ROLL = [
    ("A100000000001", "Zoe", "Adams", "7", "7B"),
    ("A100000000002", "Ben", "Carter", "7", "7A"),
    ("A100000000003", "Amy", "Carter", "7", "7A"),
    ("A100000000004", "Tom", "Baker", "7", "7A"),
    ("A100000000005", "Eve", "Young", "10", "10A"),
    ("A100000000006", "Max", "abbott", "7", "7A"),  # lower case sorts among the rest
]
LETTER_ORDER = ["Max abbott", "Tom Baker", "Amy Carter", "Ben Carter", "Zoe Adams", "Eve Young"]


@pytest.fixture
def roll(school: School) -> School:
    run_import(
        school,
        [
            replace(
                pupil(upn, forename, surname, contact(1, "Parent", f"Of {forename}"), year=year),
                reg_group=group,
            )
            for upn, forename, surname, year, group in ROLL
        ],
    )
    return school


def pages(pdf: bytes) -> list[str]:
    """Each page's text, whitespace collapsed so that wrapped lines read as one."""
    return [" ".join(page.extract_text().split()) for page in PdfReader(io.BytesIO(pdf)).pages]


def code_on(text: str) -> str:
    [code] = CODE.findall(text)
    return code


def names(pdf: bytes) -> list[str]:
    return [
        re.search(r"To the parent or carer of (.+?) \(", text).group(1)  # type: ignore[union-attr]
        for text in pages(pdf)
    ]


def test_a_page_per_current_student_in_group_then_surname_then_forename_order(
    roll: School,
) -> None:
    issued = letters_issue(school=roll, actor="test")
    assert issued.count == 6
    assert names(issued.pdf) == LETTER_ORDER


def test_each_page_names_the_student_and_carries_a_live_code_for_that_student(
    roll: School,
) -> None:
    issued = letters_issue(school=roll, actor="test")
    seen = set()
    for text in pages(issued.pdf):
        code = code_on(text)
        found = code_lookup(raw=code)
        assert found is not None
        student = found.member
        label = f"Year {student.year}, {student.reg_group}"
        assert f"To the parent or carer of {student.forename} {student.surname} ({label})" in text
        assert f"link yourself to {student.forename}" in text
        assert roll.name in text
        seen.add(student.pk)
    assert len(seen) == 6


def test_letters_carry_the_address_steps_expiry_and_data_protection(roll: School) -> None:
    roll.code_expiry_days = 30
    roll.save()
    now = timezone.now()
    with override_settings(HOMELINK_PUBLIC_URL="https://homelink.example.org/"):
        issued = letters_issue(school=roll, actor="test", now=now)
    use_by = use_by_label(now + dt.timedelta(days=30))
    for text in pages(issued.pdf):
        assert "https://homelink.example.org/register/" in text
        assert "create an account with your email address" in text
        assert "Confirm your email address" in text
        assert "Enter the code above" in text
        assert f"Use this code by {use_by}." in text
        assert "SMS and email about school administration" in text
        assert "homelink processes your details on the school's behalf" in text
        assert "opt out at any time: on your account page, by replying STOP" in text
        assert "contacting the school office" in text


def test_the_default_address_is_the_development_server(roll: School) -> None:
    with override_settings():
        from django.conf import settings

        if hasattr(settings, "HOMELINK_PUBLIC_URL"):
            delattr(settings, "HOMELINK_PUBLIC_URL")
        issued = letters_issue(school=roll, actor="test", year="10")
    assert "http://127.0.0.1:8000/register/" in pages(issued.pdf)[0]


def test_blank_year_and_group_are_left_out(school: School) -> None:
    run_import(school, [pupil("A100000000009", "Kit", "Lee", year="")])
    issued = letters_issue(school=school, actor="test")
    [text] = pages(issued.pdf)
    assert "To the parent or carer of Kit Lee " in text
    assert "Kit Lee (" not in text


def test_a_long_name_wraps_onto_the_page(school: School) -> None:
    forename = "Alexandra-Marie Josephine Wilhelmina"
    surname = "Featherstonehaugh-Cholmondeley-Montgomery-Smythe"
    run_import(school, [replace(pupil("A100000000009", forename, surname), reg_group="7A")])
    pdf = letters_issue(school=school, actor="test").pdf
    [text] = pages(pdf)
    assert f"{forename} {surname} (Year 7, 7A)" in text
    # Wrapped at a space, not run off the edge of the page.
    raw = PdfReader(io.BytesIO(pdf)).pages[0].extract_text()
    assert "Wilhelmina\nFeatherstonehaugh" in raw


# Choosing the students --------------------------------------------------------------------------


def test_filter_by_year(roll: School) -> None:
    assert names(letters_issue(school=roll, year="7", actor="test").pdf) == LETTER_ORDER[:5]
    assert names(letters_issue(school=roll, year="Year 10", actor="test").pdf) == ["Eve Young"]


def test_filter_by_registration_group(roll: School) -> None:
    issued = letters_issue(school=roll, reg_group="7a", actor="test")
    assert names(issued.pdf) == LETTER_ORDER[:4]
    assert issued.batch.filter == {"year": None, "reg_group": "7a", "unregistered_only": False}


def test_unregistered_only_leaves_out_students_with_a_registered_adult(roll: School) -> None:
    person_mark_registered(person=Adult.objects.get(surname="Of Amy"), actor="test")
    # An adult who is linked but not registered does not count.
    names_out = names(letters_issue(school=roll, unregistered_only=True, actor="test").pdf)
    assert names_out == [name for name in LETTER_ORDER if name != "Amy Carter"]


def test_students_who_left_and_adult_members_get_no_letter(roll: School) -> None:
    Member.objects.filter(forename="Tom").update(status=Member.Status.LEFT)
    assert "Tom Baker" not in names(letters_issue(school=roll, actor="test").pdf)


def test_nobody_matching_is_an_error_and_issues_nothing(roll: School) -> None:
    with pytest.raises(NoStudents, match="no current students in year 12"):
        letters_issue(school=roll, year="12", actor="test")
    assert not SecurityCode.objects.exists()
    assert not LetterBatch.objects.exists()


# Issuing ----------------------------------------------------------------------------------------


def test_the_batch_records_who_what_and_how_many_without_codes(roll: School) -> None:
    issued = letters_issue(school=roll, year="7", actor="staff:4")
    batch = LetterBatch.objects.get()
    assert (batch.issued_by, batch.count, batch.filter["year"]) == ("staff:4", 5, "7")
    assert batch == issued.batch
    assert SecurityCode.objects.filter(letter_batch=batch).count() == 5
    event = AuditEvent.objects.get(action="letters.issued")
    assert event.detail == {"count": 5, "year": "7", "reg_group": None, "unregistered_only": False}


def test_two_issues_give_a_student_two_live_codes(roll: School) -> None:
    first = code_on(pages(letters_issue(school=roll, year="10", actor="test").pdf)[0])
    second = code_on(pages(letters_issue(school=roll, year="10", actor="test").pdf)[0])
    assert first != second
    found = [code_lookup(raw=first), code_lookup(raw=second)]
    assert all(code is not None for code in found)
    assert {code.member.forename for code in found if code} == {"Eve"}


def test_a_failed_drawing_revokes_the_batch(roll: School, monkeypatch) -> None:
    def broken(**kwargs: object) -> bytes:
        raise RuntimeError("printer on fire")

    monkeypatch.setattr("homelink.registration.letters.render_letters", broken)
    with pytest.raises(RuntimeError):
        letters_issue(school=roll, actor="test")
    assert SecurityCode.objects.count() == 6
    assert not SecurityCode.objects.live(timezone.now()).exists()


# The command ------------------------------------------------------------------------------------


def letters_command(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("letters", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_the_command_writes_a_pdf_and_never_prints_codes(roll: School, tmp_path: Path) -> None:
    target = tmp_path / "letters.pdf"
    out, err = letters_command("--school", roll.urn, "--reg-group", "7A", "--out", str(target))
    pdf = target.read_bytes()
    assert pdf.startswith(b"%PDF-")
    texts = pages(pdf)
    assert len(texts) == 4
    assert f"Wrote 4 letters for {roll.name} to {target}" in out
    for text in texts:
        code = code_on(text)
        assert code_lookup(raw=code) is not None
        for form in (code, code.replace("-", "")):
            assert form not in out
            assert form not in err
    # Private to its owner: every page carries a live code.
    assert target.stat().st_mode & 0o077 == 0
    assert not list(tmp_path.glob(".*.tmp"))


def test_the_command_refuses_an_unknown_school(db: None, tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="no school with URN 999999"):
        letters_command("--school", "999999", "--out", str(tmp_path / "x.pdf"))


def test_the_command_refuses_when_nobody_matches(roll: School, tmp_path: Path) -> None:
    target = tmp_path / "letters.pdf"
    with pytest.raises(CommandError, match="no current students in registration group 9Z"):
        letters_command("--school", roll.urn, "--reg-group", "9Z", "--out", str(target))
    assert not target.exists()
    assert not SecurityCode.objects.exists()


def test_the_command_refuses_a_missing_folder_before_issuing(roll: School, tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="no such folder"):
        letters_command("--school", roll.urn, "--out", str(tmp_path / "nope" / "letters.pdf"))
    assert not SecurityCode.objects.exists()
