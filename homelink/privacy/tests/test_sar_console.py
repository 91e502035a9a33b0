"""Subject access in the console: the action on a member's page and on an adult's card, the
data protection page that lists requests until they are marked complete, and who may do it."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from homelink.audit.models import AuditEvent
from homelink.privacy.models import SubjectAccessRequest
from homelink.privacy.sar import due_date, sar_log
from homelink.privacy.tests.sar_world import (
    CORA,
    PAT_EMAIL,
    STAN,
    Family,
    build_family,
    export_json,
    leaks,
    make_staff_user,
)
from homelink.schools.models import School
from homelink.staff.models import Role


@pytest.fixture(autouse=True)
def _fast_passwords(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def family(school: School) -> Family:
    return build_family(school)


@pytest.fixture
def other(db: None) -> Family:
    school = School.objects.create(urn="100002", name="Other Primary", la_code="838", estab="2001")
    return build_family(school, "B")


def _as(client: Client, family: Family, role: Role | None = None) -> Client:
    user = (
        family.admin if role is None else make_staff_user(f"{role}@a.example", family.school, role)
    )
    client.force_login(user)
    return client


def _member_url(family: Family, member_id: int) -> str:
    return reverse("console:member_sar", kwargs={"urn": family.school.urn, "member_id": member_id})


def _adult_url(family: Family, adult_id: int) -> str:
    return reverse("console:adult_sar", kwargs={"urn": family.school.urn, "adult_id": adult_id})


def _page(family: Family) -> str:
    return reverse("console:sar", kwargs={"urn": family.school.urn})


def test_the_adults_action_logs_the_request_and_downloads_the_zip(
    client: Client, family: Family
) -> None:
    response = _as(client, family).post(_adult_url(family, family.pat.pk), {"received_on": ""})
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"].startswith('attachment; filename="subject-access-adult')
    assert "Quinlan" not in response["Content-Disposition"]
    data = export_json(response.content)
    assert data["subject"]["email"] == PAT_EMAIL
    assert leaks(response.content, CORA) == [] and leaks(response.content, STAN) == []
    request = SubjectAccessRequest.objects.get()
    assert request.adult_id == family.pat.pk
    assert request.received_on == timezone.localdate()
    assert request.requested_by_id == family.admin.pk
    event = AuditEvent.objects.get(action="privacy.sar_downloaded")
    assert (event.object_type, event.object_id) == ("adult", str(family.pat.pk))
    assert event.actor_id == family.admin.pk
    assert event.detail == {"request_id": request.pk, "via": "console"}


def test_the_members_action_with_the_date_the_request_came(client: Client, family: Family) -> None:
    response = _as(client, family).post(
        _member_url(family, family.ada.pk), {"received_on": "2024-01-31"}
    )
    assert response.status_code == 200
    assert export_json(response.content)["subject"]["mis_id"] == family.ada.mis_id
    request = SubjectAccessRequest.objects.get()
    assert (request.member_id, request.received_on, request.due_on) == (
        family.ada.pk,
        dt.date(2024, 1, 31),
        dt.date(2024, 2, 29),
    )
    event = AuditEvent.objects.get(action="privacy.sar_downloaded")
    assert (event.object_type, event.object_id) == ("member", str(family.ada.pk))


@pytest.mark.parametrize("received", ["2999-01-01", "31/02/2024", "x" * 500])
def test_a_bad_date_is_refused_and_nothing_logged(
    client: Client, family: Family, received: str
) -> None:
    response = _as(client, family).post(
        _member_url(family, family.ada.pk), {"received_on": received}, follow=True
    )
    assert response.status_code == 200
    assert response.redirect_chain[-1][0] == _page(family)
    assert b"message error" in response.content
    assert not SubjectAccessRequest.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="privacy.sar").exists()


@pytest.mark.parametrize("role", [Role.VIEWER, Role.SENDER])
def test_only_administrators_may_take_an_export(client: Client, family: Family, role: Role) -> None:
    _as(client, family, role)
    assert client.post(_adult_url(family, family.pat.pk)).status_code == 403
    assert client.post(_member_url(family, family.ada.pk)).status_code == 403
    request = sar_log(school=family.school, actor="cli", adult=family.pat)
    for name in ("sar_download", "sar_complete"):
        url = reverse(f"console:{name}", kwargs={"urn": family.school.urn})
        assert client.post(url, {"request": request.pk}).status_code == 403
    assert SubjectAccessRequest.objects.count() == 1
    assert not AuditEvent.objects.filter(action="privacy.sar_downloaded").exists()
    request.refresh_from_db()
    assert request.completed_at is None
    # The data protection page is for administrators: not even a look.
    page = client.get(_page(family))
    assert page.status_code == 403
    assert b"Quinlan" not in page.content
    # Nor does their view of a member's page offer the action.
    member_page = client.get(
        reverse("console:member", kwargs={"urn": family.school.urn, "member_id": family.ada.pk})
    )
    assert b"subject-access" not in member_page.content


def test_another_schools_ids_are_404(client: Client, family: Family, other: Family) -> None:
    _as(client, family)
    assert client.post(_adult_url(family, other.pat.pk)).status_code == 404
    assert client.post(_member_url(family, other.ada.pk)).status_code == 404
    theirs = sar_log(school=other.school, actor="cli", adult=other.pat)
    for name in ("sar_download", "sar_complete"):
        url = reverse(f"console:{name}", kwargs={"urn": family.school.urn})
        assert client.post(url, {"request": theirs.pk}).status_code == 404
    # Their URN, even with their own ids: 404 to someone who is not their staff.
    their_page = reverse("console:sar", kwargs={"urn": other.school.urn})
    assert client.get(their_page).status_code == 404
    theirs.refresh_from_db()
    assert theirs.completed_at is None
    assert SubjectAccessRequest.objects.count() == 1
    assert not AuditEvent.objects.filter(action="privacy.sar_downloaded").exists()


def test_junk_request_ids_are_answered_without_an_error(client: Client, family: Family) -> None:
    _as(client, family)
    url = reverse("console:sar_complete", kwargs={"urn": family.school.urn})
    for junk in ("", "abc", "-1", str(10**20)):
        assert client.post(url, {"request": junk}).status_code == 400


def test_the_page_shows_a_request_until_it_is_marked_complete(
    client: Client, family: Family
) -> None:
    _as(client, family)
    member_page = client.get(
        reverse("console:member", kwargs={"urn": family.school.urn, "member_id": family.ada.pk})
    ).content.decode()
    # The actions are on the member's page: for the student, and for each linked adult.
    assert _member_url(family, family.ada.pk) in member_page
    assert _adult_url(family, family.pat.pk) in member_page
    assert client.post(_adult_url(family, family.pat.pk)).status_code == 200
    request = SubjectAccessRequest.objects.get()
    page = client.get(_page(family)).content.decode()
    assert "Pat Quinlan" in page
    due = due_date(timezone.localdate())
    assert f"{due.day} {due:%b %Y}" in page
    assert "overdue" not in page
    # Download again: audited again.
    again = client.post(
        reverse("console:sar_download", kwargs={"urn": family.school.urn}),
        {"request": request.pk},
    )
    assert again.status_code == 200 and again["Content-Type"] == "application/zip"
    assert AuditEvent.objects.filter(action="privacy.sar_downloaded").count() == 2
    response = client.post(
        reverse("console:sar_complete", kwargs={"urn": family.school.urn}),
        {"request": request.pk},
        follow=True,
    )
    assert response.status_code == 200
    request.refresh_from_db()
    assert request.completed_at is not None
    assert request.completed_by_id == family.admin.pk
    page = client.get(_page(family)).content.decode()
    open_part, done_part = page.split('id="done-requests"')
    assert "Pat Quinlan" not in open_part and "No open requests" in open_part
    assert "Pat Quinlan" in done_part
    completed = AuditEvent.objects.get(action="privacy.sar_completed")
    assert (completed.object_type, completed.object_id) == ("adult", str(family.pat.pk))


def test_an_overdue_request_says_so(client: Client, family: Family) -> None:
    sar_log(school=family.school, actor="cli", member=family.ada, received_on=dt.date(2024, 1, 31))
    page = _as(client, family).get(_page(family)).content.decode()
    assert "Ada Lovelace" in page and "overdue" in page and "29 Feb 2024" in page
