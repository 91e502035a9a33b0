"""Subject access: what the export holds for an adult and for a member, what it leaves out
(a co-parent, a sibling's other contact, staff), and the one-calendar-month due date."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from homelink.audit.models import AuditEvent
from homelink.privacy.models import SubjectAccessRequest
from homelink.privacy.sar import due_date, open_requests, sar_complete, sar_export, sar_log
from homelink.privacy.tests.sar_world import (
    CORA,
    OFFICE_EMAIL,
    PAT_EMAIL,
    PAT_MOBILE,
    STAN,
    Family,
    build_family,
    code_hashes,
    export_json,
    leaks,
    pdf_text,
    zip_files,
)
from homelink.schools.models import School


@pytest.fixture
def family(school: School) -> Family:
    return build_family(school)


# --- due dates -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("received", "due"),
    [
        (dt.date(2025, 1, 31), dt.date(2025, 2, 28)),  # no 31 February: its last day
        (dt.date(2024, 1, 31), dt.date(2024, 2, 29)),  # a leap year
        (dt.date(2024, 1, 30), dt.date(2024, 2, 29)),
        (dt.date(2025, 1, 28), dt.date(2025, 2, 28)),
        (dt.date(2025, 3, 31), dt.date(2025, 4, 30)),
        (dt.date(2025, 4, 30), dt.date(2025, 5, 30)),  # the same day, not the month's end
        (dt.date(2025, 3, 15), dt.date(2025, 4, 15)),
        (dt.date(2025, 12, 15), dt.date(2026, 1, 15)),  # into the next year
        (dt.date(2025, 12, 31), dt.date(2026, 1, 31)),
    ],
)
def test_due_date_is_one_calendar_month_later(received: dt.date, due: dt.date) -> None:
    assert due_date(received) == due


def test_a_logged_request_takes_its_due_date_from_the_day_received(family: Family) -> None:
    request = sar_log(
        school=family.school, actor="cli", adult=family.pat, received_on=dt.date(2024, 1, 31)
    )
    request.refresh_from_db()
    assert (request.received_on, request.due_on) == (dt.date(2024, 1, 31), dt.date(2024, 2, 29))
    today = sar_log(school=family.school, actor="cli", member=family.ada)
    assert today.received_on == timezone.localdate()
    assert today.due_on == due_date(timezone.localdate())
    assert AuditEvent.objects.filter(
        action="privacy.sar_logged", object_type="adult", object_id=str(family.pat.pk)
    ).exists()


def test_a_request_cannot_be_received_in_the_future_nor_name_two_people(family: Family) -> None:
    tomorrow = timezone.localdate() + dt.timedelta(days=1)
    with pytest.raises(ValidationError):
        sar_log(school=family.school, actor="cli", adult=family.pat, received_on=tomorrow)
    with pytest.raises(ValidationError):
        sar_log(school=family.school, actor="cli", adult=family.pat, member=family.ada)
    with pytest.raises(ValidationError):
        sar_log(school=family.school, actor="cli")
    assert not SubjectAccessRequest.objects.exists()


def test_another_schools_person_is_refused(family: Family) -> None:
    other = School.objects.create(urn="100009", name="Other", la_code="838", estab="4999")
    with pytest.raises(ValidationError):
        sar_log(school=other, actor="cli", adult=family.pat)
    assert not SubjectAccessRequest.objects.exists()


def test_open_until_marked_complete(family: Family) -> None:
    request = sar_log(school=family.school, actor="cli", adult=family.pat)
    assert list(open_requests(family.school)) == [request]
    sar_complete(request=request, actor=family.admin)
    assert list(open_requests(family.school)) == []
    with pytest.raises(ValidationError):
        sar_complete(request=request, actor=family.admin)
    assert AuditEvent.objects.filter(action="privacy.sar_completed").count() == 1


# --- the adult's export --------------------------------------------------------------------------


def _adult_export(family: Family) -> bytes:
    request = sar_log(school=family.school, actor="cli", adult=family.pat)
    return sar_export(request=request, actor=family.admin, via="console").content


def test_the_zip_holds_subject_json_and_a_readable_pdf(family: Family) -> None:
    content = _adult_export(family)
    files = zip_files(content)
    assert sorted(files) == ["subject.json", "subject.pdf"]
    assert files["subject.pdf"].startswith(b"%PDF")
    text = pdf_text(files["subject.pdf"])
    assert "Pat Quinlan" in text
    assert PAT_EMAIL in text
    assert "Ada" in text and "Bea" in text


def test_the_adults_export_holds_everything_about_them(family: Family) -> None:
    data = export_json(_adult_export(family))
    subject = data["subject"]
    assert (subject["forename"], subject["surname"]) == ("Pat", "Quinlan")
    assert (subject["email"], subject["mobile"]) == (PAT_EMAIL, PAT_MOBILE)
    assert subject["opted_out"] is True
    # Their links name the students: the relationship is theirs.
    students = sorted(link["student"]["forename"] for link in data["links"])
    assert students == ["Ada", "Bea"]
    assert all("relationship" in link and "prime" in link for link in data["links"])
    # The account, without its password.
    assert data["account"]["email"] == PAT_EMAIL
    assert data["account"]["email_confirmed"] is True
    assert data["preferences"] == {"email_off": False, "sms_off": True}
    assert data["opt_outs"]["opted_out"] is True
    # Every copy sent to them, with its status, greeting them (never the co-parent).
    statuses = sorted(m["status"] for m in data["messages"])
    assert statuses == ["bounced", "delivered"]
    for sent in data["messages"]:
        assert sent["body"] == "Dear Pat Quinlan, the trip for Ada and Bea is on Friday."
        assert sent["to"] == PAT_EMAIL
        assert sent["sent_at"] and sent["status_at"]
    # Their reply, not the co-parent's.
    assert [r["text"] for r in data["replies"]] == ["Pat says thank you"]
    # Audit events about them, the staff named by role.
    actions = [e["action"] for e in data["audit"]]
    assert "person.opted_out" in actions
    assert "privacy.sar_downloaded" in actions
    opted = next(e for e in data["audit"] if e["action"] == "person.opted_out")
    assert opted["by"] == "school staff (administrator)"
    assert actions.count("person.opted_out") == 1  # the co-parent's opt-out is not theirs
    assert len(data["access_requests"]) == 1
    assert data["request"]["due_on"] == due_date(timezone.localdate()).isoformat()


def test_the_adults_export_leaves_out_the_co_parent_the_siblings_contacts_and_staff(
    family: Family,
) -> None:
    content = _adult_export(family)
    assert leaks(content, ["Pat", PAT_EMAIL]) == ["Pat", PAT_EMAIL], "the scan finds nothing"
    assert leaks(content, CORA) == []
    assert leaks(content, STAN) == []
    assert leaks(content, [OFFICE_EMAIL, "office.admin", "Grace", "Hopper"]) == []
    # Nor anything secret: the password's hash, a letter's code hash.
    password = family.account.password
    assert password and leaks(content, [password, password.split("$")[-1]]) == []
    assert leaks(content, code_hashes(family.ada)) == []


def test_the_pdf_text_holds_what_the_json_holds(family: Family) -> None:
    files = zip_files(_adult_export(family))
    text = "".join(pdf_text(files["subject.pdf"]).split())
    data = json.loads(files["subject.json"])
    for value in (
        data["subject"]["mobile"],
        data["messages"][0]["body"],
        data["replies"][0]["text"],
    ):
        assert "".join(value.split()) in text
    due = dt.date.fromisoformat(data["request"]["due_on"])
    assert f"{due.day}{due:%b%Y}" in text, "the due date, as people read it"


# --- the member's export -------------------------------------------------------------------------


def test_the_students_export_holds_their_record_letters_and_links_but_no_adult(
    family: Family,
) -> None:
    request = sar_log(school=family.school, actor="cli", member=family.ada)
    content = sar_export(request=request, actor="cli", via="cli").content
    data = export_json(content)
    assert data["subject"]["forename"] == "Ada"
    assert data["subject"]["mis_id"] == family.ada.mis_id
    assert len(data["links"]) == 2
    assert {link["relationship"] for link in data["links"]} == {"mother"}
    assert len(data["letters"]) == 1
    assert data["letters"][0]["state"] == "works"
    assert set(data["letters"][0]) == {"issued_at", "expires_at", "revoked_at", "state"}
    assert "privacy.sar_downloaded" in [e["action"] for e in data["audit"]]
    assert "codes.issued" in [e["action"] for e in data["audit"]] or data["letters"]
    # Their parents are people in their own right: neither is named or reachable from it.
    assert leaks(content, ["Ada", "Lovelace"]) == ["Ada", "Lovelace"]
    assert leaks(content, ("Pat", "Quinlan", PAT_EMAIL, PAT_MOBILE)) == []
    assert leaks(content, CORA) == []
    assert leaks(content, STAN) == []
    assert leaks(content, code_hashes(family.ada)) == []


def test_a_staff_members_export(family: Family) -> None:
    request = sar_log(school=family.school, actor="cli", member=family.teacher)
    data = export_json(sar_export(request=request, actor="cli", via="cli").content)
    assert data["subject"]["forename"] == "Grace"
    assert data["subject"]["email"] == "grace@a.example"
    assert data["links"] == []
    assert data["messages"] == []


def test_the_download_is_audited_without_personal_values(family: Family) -> None:
    request = sar_log(school=family.school, actor="cli", adult=family.pat)
    sar_export(request=request, actor=family.admin, via="console")
    event = AuditEvent.objects.get(action="privacy.sar_downloaded")
    assert (event.object_type, event.object_id) == ("adult", str(family.pat.pk))
    assert event.actor_id == family.admin.pk
    stored = json.dumps(event.detail)
    for value in ("Pat", "Quinlan", PAT_EMAIL, PAT_MOBILE):
        assert value not in stored
