"""The letters page: choose a set of current students, download their letters as one PDF."""

from __future__ import annotations

import io

import pytest
from django.urls import reverse
from pypdf import PdfReader

from homelink.audit.models import AuditEvent
from homelink.register.models import Adult, Member
from homelink.registration.models import LetterBatch, SecurityCode


def letters_url(world) -> str:
    return reverse("console:letters", kwargs={"urn": world.school.urn})


def pdf_text(data: bytes) -> tuple[int, str]:
    reader = PdfReader(io.BytesIO(data))
    return len(reader.pages), "\n".join(page.extract_text() for page in reader.pages)


@pytest.fixture
def signed_in(client, admin_a):
    client.force_login(admin_a)
    return client


def test_the_page_offers_the_years_and_groups_of_current_students(signed_in, world_a):
    Member.objects.create(
        school=world_a.school,
        kind=Member.Kind.STUDENT,
        mis_id="GONE",
        forename="Old",
        surname="Boy",
        year="11",
        reg_group="11Z",
        status=Member.Status.LEFT,
    )
    response = signed_in.get(letters_url(world_a))
    html = response.content.decode()
    assert response.status_code == 200
    assert '<option value="8">8</option>' in html
    assert '<option value="7A">7A</option>' in html
    assert "11Z" not in html and 'value="11"' not in html  # left students
    assert "does not revoke" in html
    assert 'name="csrfmiddlewaretoken"' in html
    for label in ("Year", "Registration group", "Only students with no registered adult"):
        assert label in html


def test_a_registration_group(signed_in, world_a, admin_a):
    response = signed_in.post(letters_url(world_a), {"reg_group": "7A"})
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    disposition = response["Content-Disposition"]
    assert disposition.startswith("attachment; ")
    assert 'filename="letters-100001-group-7a-' in disposition and disposition.endswith('.pdf"')
    pages, text = pdf_text(response.content)
    assert pages == 1
    assert "Ada Lovelace" in text and "Alan Turing" not in text
    batch = LetterBatch.objects.get(school=world_a.school)
    assert batch.count == 1 and batch.issued_by == f"user:{admin_a.pk}"
    assert AuditEvent.objects.filter(action="letters.issued", object_id=str(batch.pk)).exists()
    # Printing does not revoke earlier letters.
    assert SecurityCode.objects.get(pk=world_a.code.pk).revoked_at is None


def test_a_year(signed_in, world_a):
    response = signed_in.post(letters_url(world_a), {"year": "8"})
    assert 'filename="letters-100001-year-8-' in response["Content-Disposition"]
    pages, text = pdf_text(response.content)
    assert pages == 1 and "Alan Turing" in text and "Ada Lovelace" not in text


def test_students_with_no_registered_adult(signed_in, world_a):
    Adult.objects.filter(pk=world_a.adult.pk).update(registered=True)  # linked to Ada
    response = signed_in.post(letters_url(world_a), {"unregistered_only": "on"})
    assert "-unregistered-" in response["Content-Disposition"]
    pages, text = pdf_text(response.content)
    assert pages == 1 and "Alan Turing" in text and "Ada Lovelace" not in text


def test_everyone(signed_in, world_a):
    response = signed_in.post(letters_url(world_a), {})
    pages, text = pdf_text(response.content)
    assert pages == 2 and "Ada Lovelace" in text and "Alan Turing" in text
    assert "-all-" in response["Content-Disposition"]


def test_nobody_in_the_set_is_a_form_error(signed_in, world_a):
    response = signed_in.post(letters_url(world_a), {"year": "8", "reg_group": "7A"})
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert "No current students in year 8 and in registration group 7A." in html
    assert 'role="alert"' in html
    assert not LetterBatch.objects.exists()


def test_a_value_not_offered_is_an_error_on_its_field(signed_in, world_a):
    response = signed_in.post(letters_url(world_a), {"year": "13"})
    assert response.status_code == 400
    html = response.content.decode()
    assert 'id="id_year_error"' in html and 'aria-describedby="id_year_error"' in html
    assert not LetterBatch.objects.exists()


def test_viewers_cannot_print(client, viewer_a, world_a):
    client.force_login(viewer_a)
    html = client.get(letters_url(world_a)).content.decode()
    assert '<form method="post"' not in html
    assert client.post(letters_url(world_a), {"year": "8"}).status_code == 403
    assert not LetterBatch.objects.exists()
