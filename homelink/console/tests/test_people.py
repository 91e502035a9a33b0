"""The linked-people screen's own pages (add an existing or new adult, review a held adult,
one member's letters), likely duplicates and staff: each action through the client as an
administrator, checked in the register and the audit trail; viewers refused. Other schools'
ids are covered by test_separation.py."""

from __future__ import annotations

import io
import json
import re

import pytest
from django.core import mail
from django.template.loader import render_to_string
from django.urls import reverse
from pypdf import PdfReader

from homelink.audit.models import AuditEvent
from homelink.console.tests.conftest import make_user, member_of
from homelink.register.models import Adult, LikelyDuplicate, Link, Member, Source
from homelink.register.selectors import member_links
from homelink.registration.models import SecurityCode
from homelink.staff.models import Role, StaffMembership


def member_url(name: str, world, member: Member | None = None, **ids) -> str:
    member = member or world.student
    return reverse(
        f"console:{name}", kwargs={"urn": world.school.urn, "member_id": member.pk, **ids}
    )


def school_url(name: str, world, **ids) -> str:
    return reverse(f"console:{name}", kwargs={"urn": world.school.urn, **ids})


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def pdf_text(data: bytes) -> tuple[int, str]:
    reader = PdfReader(io.BytesIO(data))
    return len(reader.pages), "\n".join(page.extract_text() for page in reader.pages)


@pytest.fixture
def signed_in(client, admin_a):
    client.force_login(admin_a)
    return client


def no_personal_values(events, *values: str) -> None:
    for event in events:
        text = json.dumps(event.detail)
        for value in values:
            assert value.lower() not in text.lower(), (event.action, value)


# --- the partial included in member.html --------------------------------------------------------


def test_the_partial_offers_the_actions_to_administrators_only(rf, world_a, admin_a, viewer_a):
    held = Adult.objects.get(school=world_a.school, surname="Order")
    context = {
        "school": world_a.school,
        "member": world_a.student,
        "links": member_links(world_a.student),
    }
    html = render_to_string("console/people_member_actions.html", {**context, "can_change": True})
    assert member_url("people_add", world_a) in html
    assert member_url("people_new", world_a) in html
    assert member_url("adult_review", world_a, adult_id=held.pk) in html
    assert member_url("member_letters", world_a) in html
    viewer = render_to_string(
        "console/people_member_actions.html", {**context, "can_change": False}
    )
    assert "<form" not in viewer and member_url("people_add", world_a) not in viewer
    assert "Court Order" in viewer  # who is held is shown to everyone


# --- add an existing adult ----------------------------------------------------------------------


def search_adults(client, world, q: str):
    """Search as the page does: POST the terms, follow to the results."""
    posted = client.post(member_url("people_search", world), {"q": q})
    assert posted.status_code == 302
    assert q not in posted["Location"]
    return client.get(posted["Location"])


def test_search_finds_the_schools_adults_not_yet_linked(signed_in, world_a, world_b):
    response = search_adults(signed_in, world_a, "turing")
    html = response.content.decode()
    assert response.status_code == 200
    assert "Ethel Turing" in html
    assert "Alan Turing" in html  # whom she is linked to
    # Already linked to Ada, so not offered; the other school's Ethel is never shown.
    assert "Manual Carer" not in search_adults(signed_in, world_a, "manual").content.decode()
    ethel_b = Adult.objects.get(school=world_b.school, surname="Turing")
    assert f'value="{ethel_b.pk}"' not in html
    by_email = search_adults(signed_in, world_a, "CO@A.EXAMPLE")
    assert "Nobody matches" in by_email.content.decode()  # Court Order is linked to Ada already


def test_the_adult_search_keeps_its_terms_out_of_urls(signed_in, world_a):
    html = search_adults(signed_in, world_a, "ethel.turing@").content.decode()
    assert 'action="' + member_url("people_search", world_a) + '"' in html
    # Typed into the address instead, a name is not searched.
    typed = signed_in.get(member_url("people_add", world_a), {"q": "turing"}).content.decode()
    assert "Ethel Turing" not in typed


def test_link_an_existing_adult(signed_in, world_a, admin_a):
    ethel = Adult.objects.get(school=world_a.school, surname="Turing")
    response = signed_in.post(
        member_url("people_add", world_a),
        {"q": "turing", "adult": ethel.pk, "relationship": " Aunt ", "prime": "on"},
        follow=True,
    )
    assert "Ethel Turing is now linked to Ada Lovelace." in messages_of(response)
    link = Link.objects.get(student=world_a.student, adult=ethel)
    assert (link.source, link.prime, link.prime_set_by, link.relationship) == (
        Source.MANUAL,
        True,
        Source.MANUAL,
        "Aunt",
    )
    assert not link.parental_responsibility
    event = AuditEvent.objects.get(action="link.added", object_id=str(link.pk))
    assert event.actor_label == f"user:{admin_a.pk}"


def test_an_adult_of_another_school_or_already_linked_cannot_be_chosen(signed_in, world_a, world_b):
    before = Link.objects.count()
    for adult in (Adult.objects.get(school=world_b.school, surname="Turing"), world_a.adult):
        response = signed_in.post(member_url("people_add", world_a), {"q": "x", "adult": adult.pk})
        assert response.status_code == 400
        html = response.content.decode()
        assert "Choose one of the adults found." in html
        assert 'role="alert"' in html
    assert Link.objects.count() == before


def test_adults_are_linked_to_students_only(signed_in, world_a):
    response = signed_in.get(member_url("people_add", world_a, member=world_a.staff_member))
    assert response.status_code == 404


# --- add a new adult ----------------------------------------------------------------------------


def test_add_a_new_adult(signed_in, world_a, admin_a):
    response = signed_in.post(
        member_url("people_new", world_a),
        {
            "title": "Mrs",
            "forename": "Mary",
            "surname": " Somerville ",
            "email": "Mary@Example.ORG",
            "mobile": "07700 900123",
            "relationship": "Grandmother",
            "parental_responsibility": "on",
        },
        follow=True,
    )
    assert "Mary Somerville is now linked to Ada Lovelace." in messages_of(response)
    adult = Adult.objects.get(school=world_a.school, surname="Somerville")
    assert (adult.source, adult.email, adult.mobile, adult.title) == (
        Source.MANUAL,
        "mary@example.org",
        "+447700900123",
        "Mrs",
    )
    link = Link.objects.get(student=world_a.student, adult=adult)
    assert (link.source, link.prime, link.relationship, link.parental_responsibility) == (
        Source.MANUAL,
        False,
        "Grandmother",
        True,
    )
    events = AuditEvent.objects.filter(
        action__in=["adult.created", "link.added"], actor_label=f"user:{admin_a.pk}"
    )
    assert sorted(e.action for e in events) == ["adult.created", "link.added"]
    no_personal_values(events, "mary", "somerville", "7700900123")


def test_a_new_adult_with_bad_details_is_shown_again_with_the_errors(signed_in, world_a):
    before = Adult.objects.count()
    response = signed_in.post(
        member_url("people_new", world_a),
        {"forename": "Mary", "surname": "", "email": "not-an-address", "mobile": "01632 960000"},
    )
    assert response.status_code == 400
    html = response.content.decode()
    for field in ("surname", "email", "mobile"):
        assert f'id="id_{field}_error"' in html
        assert re.search(rf'aria-describedby="[^"]*id_{field}_error', html), field
    assert "Enter the adult&#x27;s last name." in html
    assert "not a mobile number" in html
    assert Adult.objects.count() == before


# --- review an adult held for review --------------------------------------------------------


def test_release_a_held_adult(signed_in, world_a, admin_a):
    held = Adult.objects.get(school=world_a.school, surname="Order")
    assert held.held
    response = signed_in.post(
        member_url("adult_review", world_a, adult_id=held.pk), {"decision": "release"}, follow=True
    )
    assert "Court Order is no longer held for review." in messages_of(response)
    held.refresh_from_db()
    assert not held.held and held.court_order
    event = AuditEvent.objects.get(action="adult.review_released", object_id=str(held.pk))
    assert event.actor_id == admin_a.pk and event.at is not None
    assert event.detail == {"student_id": world_a.student.pk, "held": False, "court_order": True}


def test_keep_a_held_adult_held_is_recorded_too(signed_in, world_a, admin_a):
    held = Adult.objects.get(school=world_a.school, surname="Order")
    signed_in.post(member_url("adult_review", world_a, adult_id=held.pk), {"decision": "keep"})
    held.refresh_from_db()
    assert held.held
    assert AuditEvent.objects.get(action="adult.review_kept_held").actor_id == admin_a.pk


def test_reviewing_an_adult_who_is_not_held_changes_nothing(signed_in, world_a):
    response = signed_in.post(
        member_url("adult_review", world_a, adult_id=world_a.adult.pk),
        {"decision": "release"},
        follow=True,
    )
    assert "This adult is not held for review." in messages_of(response)
    assert not AuditEvent.objects.filter(action__startswith="adult.review").exists()
    bad = signed_in.post(
        member_url("adult_review", world_a, adult_id=world_a.adult.pk), {"decision": "maybe"}
    )
    assert bad.status_code == 400


# --- one member's letters -----------------------------------------------------------------------


def test_the_letters_of_a_member_are_listed_without_codes(signed_in, world_a):
    response = signed_in.get(member_url("member_letters", world_a))
    html = response.content.decode()
    assert response.status_code == 200
    assert "live" in html
    assert member_url("member_letter_revoke", world_a, code_id=world_a.code.pk) in html
    assert world_a.code.code_hash not in html


def test_print_a_new_letter_for_one_student(signed_in, world_a, admin_a):
    before = SecurityCode.objects.filter(member=world_a.student).count()
    response = signed_in.post(member_url("member_letter_issue", world_a))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"].startswith('attachment; filename="letter-100001-ada')
    pages, text = pdf_text(response.content)
    assert pages == 1
    assert "Ada Lovelace" in text and "Example Academy" in text
    codes = SecurityCode.objects.filter(member=world_a.student)
    assert codes.count() == before + 1
    # The earlier letter stays live: a second letter is for a second parent.
    assert SecurityCode.objects.get(pk=world_a.code.pk).revoked_at is None
    code = re.search(r"[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}", text)
    assert code is not None
    event = AuditEvent.objects.get(action="codes.issued", actor_label=f"user:{admin_a.pk}")
    assert code.group(0) not in json.dumps(event.detail)
    listed = signed_in.get(member_url("member_letters", world_a)).content.decode()
    assert code.group(0) not in listed


def test_no_letter_for_an_adult_member(signed_in, world_a):
    teacher = world_a.staff_member
    response = signed_in.post(
        member_url("member_letter_issue", world_a, member=teacher), follow=True
    )
    assert "Letters are printed for students on roll." in messages_of(response)
    assert not SecurityCode.objects.filter(member=teacher).exists()


def test_revoke_a_letter(signed_in, world_a, admin_a):
    response = signed_in.post(
        member_url("member_letter_revoke", world_a, code_id=world_a.code.pk), follow=True
    )
    assert any("is revoked" in m for m in messages_of(response))
    code = SecurityCode.objects.get(pk=world_a.code.pk)
    assert code.revoked_at is not None and code.revoked_by == f"user:{admin_a.pk}"
    assert AuditEvent.objects.filter(action="code.revoked", object_id=str(code.pk)).count() == 1
    html = response.content.decode()
    assert "revoked" in html and "office@a.example" in html
    # Again: nothing more happens.
    signed_in.post(member_url("member_letter_revoke", world_a, code_id=world_a.code.pk))
    assert AuditEvent.objects.filter(action="code.revoked").count() == 1


# --- likely duplicates --------------------------------------------------------------------------


def test_the_duplicates_page_shows_the_pair_side_by_side(signed_in, world_a):
    response = signed_in.get(school_url("duplicates", world_a))
    html = response.content.decode()
    assert response.status_code == 200
    assert "Web Parent" in html and "Manual Carer" in html
    assert "They share: <strong>name</strong>" in html
    assert "Merging two records into one is not available" in html
    assert school_url("duplicate_resolve", world_a, duplicate_id=world_a.duplicate.pk) in html


def test_resolve_a_duplicate_as_not_the_same_person(signed_in, world_a, admin_a):
    response = signed_in.post(
        school_url("duplicate_resolve", world_a, duplicate_id=world_a.duplicate.pk), follow=True
    )
    assert "Recorded: Web Parent and Manual Carer are not the same person." in messages_of(response)
    assert LikelyDuplicate.objects.get(pk=world_a.duplicate.pk).resolved_at is not None
    event = AuditEvent.objects.get(action="duplicate.resolved")
    assert event.actor_id == admin_a.pk
    assert event.detail["outcome"] == "not_the_same_person"
    assert "There are no likely duplicates" in response.content.decode()
    # Both adults are still there: nothing was merged.
    assert Adult.objects.filter(pk__in=[world_a.adult.pk, world_a.duplicate.adult_id]).count() == 2


# --- staff --------------------------------------------------------------------------------------


def test_the_staff_page_lists_staff_and_roles(signed_in, world_a):
    html = signed_in.get(school_url("staff", world_a)).content.decode()
    assert "office@a.example" in html and "clerk@a.example" in html
    assert "Administrator" in html and "Viewer" in html


# Adding staff sends an invitation: test_invitations.py.


def test_add_staff_validation(signed_in, world_a):
    response = signed_in.post(school_url("staff_add", world_a), {"email": "nope", "role": "boss"})
    assert response.status_code == 400
    html = response.content.decode()
    assert 'id="id_email_error"' in html and 'id="id_role_error"' in html
    assert not mail.outbox


def test_change_a_role_and_remove(signed_in, world_a, admin_a):
    signed_in.post(school_url("staff_role", world_a, staff_id=world_a.staff.pk), {"role": "sender"})
    assert StaffMembership.objects.get(pk=world_a.staff.pk).role == Role.SENDER
    event = AuditEvent.objects.get(action="staff.role_changed")
    assert event.detail["from"] == "viewer" and event.detail["to"] == "sender"
    signed_in.post(school_url("staff_remove", world_a, staff_id=world_a.staff.pk))
    assert not StaffMembership.objects.filter(pk=world_a.staff.pk).exists()
    assert AuditEvent.objects.get(action="staff.removed").actor_id == admin_a.pk


def test_a_school_keeps_at_least_one_administrator(signed_in, world_a, admin_a):
    mine = StaffMembership.objects.get(user=admin_a, school=world_a.school)
    response = signed_in.post(
        school_url("staff_role", world_a, staff_id=mine.pk), {"role": "viewer"}, follow=True
    )
    assert any("only administrator" in m for m in messages_of(response))
    response = signed_in.post(school_url("staff_remove", world_a, staff_id=mine.pk), follow=True)
    assert any("only administrator" in m for m in messages_of(response))
    assert StaffMembership.objects.get(pk=mine.pk).role == Role.ADMINISTRATOR


def test_removing_yourself_leads_out_of_the_school(signed_in, world_a, admin_a):
    other = make_user("deputy@a.example")
    member_of(other, world_a.school, Role.ADMINISTRATOR)
    mine = StaffMembership.objects.get(user=admin_a, school=world_a.school)
    response = signed_in.post(school_url("staff_remove", world_a, staff_id=mine.pk))
    assert response.status_code == 302 and response["Location"] == reverse("console:home")


# --- viewers ------------------------------------------------------------------------------------


def test_viewers_see_the_pages_but_no_forms_and_cannot_post(client, viewer_a, world_a):
    client.force_login(viewer_a)
    held = Adult.objects.get(school=world_a.school, surname="Order")
    found = search_adults(client, world_a, "turing").content.decode()
    assert "Ethel Turing" in found
    # The only form a viewer is shown there is the search.
    assert found.count('<form method="post"') == 1
    assert '<form method="post" action="' + member_url("people_search", world_a) in found
    for url in (
        member_url("people_new", world_a),
        member_url("member_letters", world_a),
        school_url("duplicates", world_a),
        school_url("staff", world_a),
    ):
        response = client.get(url)
        assert response.status_code == 200, url
        assert '<form method="post"' not in response.content.decode(), url
    posts = [
        (member_url("people_new", world_a), {"forename": "X", "surname": "Y"}),
        (member_url("adult_review", world_a, adult_id=held.pk), {"decision": "release"}),
        (member_url("member_letter_issue", world_a), {}),
        (member_url("member_letter_revoke", world_a, code_id=world_a.code.pk), {}),
        (school_url("duplicate_resolve", world_a, duplicate_id=world_a.duplicate.pk), {}),
        (school_url("staff_add", world_a), {"email": "x@a.example", "role": "administrator"}),
        (school_url("staff_role", world_a, staff_id=world_a.staff.pk), {"role": "administrator"}),
    ]
    for url, data in posts:
        assert client.post(url, data).status_code == 403, url
    held.refresh_from_db()
    assert held.held
    assert StaffMembership.objects.get(pk=world_a.staff.pk).role == Role.VIEWER
    assert SecurityCode.objects.get(pk=world_a.code.pk).revoked_at is None


def test_every_form_has_a_csrf_token(signed_in, world_a):
    results = search_adults(signed_in, world_a, "turing").request
    for url in (
        f"{results['PATH_INFO']}?{results['QUERY_STRING']}",
        member_url("people_new", world_a),
        member_url("member_letters", world_a),
        school_url("duplicates", world_a),
        school_url("staff", world_a),
    ):
        html = signed_in.get(url).content.decode()
        posts = html.count('<form method="post"')
        assert posts >= 1, url
        assert html.count('name="csrfmiddlewaretoken"') == posts, url


def test_csrf_is_enforced(world_a, admin_a):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(admin_a)
    response = strict.post(
        school_url("duplicate_resolve", world_a, duplicate_id=world_a.duplicate.pk)
    )
    assert response.status_code == 403
    assert LikelyDuplicate.objects.get(pk=world_a.duplicate.pk).resolved_at is None
