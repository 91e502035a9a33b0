"""Records for the DPO (issue 13, point 8): the school's processing summary in the console and
as a PDF, counts and service names only, and the PDF download audited."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from pypdf import PdfReader

from homelink.audit.models import AuditEvent
from homelink.console.tests.conftest import World
from homelink.messaging.models import Delivery
from homelink.privacy.models import RetentionPolicy, SubjectAccessRequest
from homelink.register.models import Adult, Link, Member

pytestmark = pytest.mark.django_db

TOKEN = "tw-secret-token-0123456789"
SMTP_PASSWORD = "smtp-password-9876543210"


@pytest.fixture
def gateways(settings: Any) -> None:
    settings.HOMELINK_SMS_GATEWAY = "homelink.messaging.gateways.twilio.TwilioGateway"
    settings.HOMELINK_TWILIO_ACCOUNT_SID = "AC0123456789"
    settings.HOMELINK_TWILIO_AUTH_TOKEN = TOKEN
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "smtp.relay.example"
    settings.EMAIL_HOST_USER = "relay-user"
    settings.EMAIL_HOST_PASSWORD = SMTP_PASSWORD


def records_url(world: World) -> str:
    return reverse("console:records", kwargs={"urn": world.school.urn})


def pdf_url(world: World) -> str:
    return reverse("console:records_pdf", kwargs={"urn": world.school.urn})


def row(page: str, name: str) -> str:
    """The table row of a category: its text up to the end of the row."""
    start = page.index(f'<th scope="row">{name}</th>')
    return page[start : page.index("</tr>", start)]


def test_the_page_counts_what_is_held_and_names_the_services_without_secrets(
    client: Client, world_a: World, world_b: World, admin_a: Any, gateways: None
) -> None:
    client.force_login(admin_a)
    page = client.get(records_url(world_a)).content.decode()
    school = world_a.school
    students = Member.objects.filter(school=school, kind=Member.Kind.STUDENT).count()
    assert f"<td>{students}</td>" in row(page, "Students")
    assert f"<td>{Adult.objects.filter(school=school).count()}</td>" in row(
        page, "Parents and carers"
    )
    assert f"<td>{Link.objects.filter(school=school).count()}</td>" in row(
        page, "Links between students and parents"
    )
    assert f"<td>{Delivery.objects.filter(school=school).count()}</td>" in row(
        page, "Message copies"
    )
    assert f"<td>{AuditEvent.objects.filter(school=school).count()}</td>" in row(
        page, "Audit trail events"
    )
    # Another school's register is as big, and counted nowhere here.
    assert Adult.objects.count() == 2 * Adult.objects.filter(school=school).count()
    assert "Twilio" in page
    assert "SMTP relay (smtp.relay.example)" in page
    for secret in (TOKEN, SMTP_PASSWORD, "AC0123456789", "relay-user"):
        assert secret not in page
    # Names of people never appear.
    assert world_a.student.surname not in page
    assert world_a.adult.surname not in page


def test_retention_defaults_then_the_schools_own(
    client: Client, world_a: World, admin_a: Any
) -> None:
    client.force_login(admin_a)
    page = client.get(records_url(world_a)).content.decode()
    assert "12 months after leaving" in page
    assert "24 months after sending" in page
    assert "<dd>6 years</dd>" in page
    assert "homelink's defaults" in page
    assert "No purge has run yet." in page
    assert "No subject access request is open." in page

    RetentionPolicy.objects.create(
        school=world_a.school,
        leavers_months=18,
        messages_months=36,
        audit_years=7,
        last_purge_at=timezone.now(),
        last_purge={"leavers": 4, "deliveries": 120},
    )
    page = client.get(records_url(world_a)).content.decode()
    assert "18 months after leaving" in page
    assert "36 months after sending" in page
    assert "<dd>7 years</dd>" in page
    assert "Set by the school." in page
    assert "removed deliveries: 120, leavers: 4." in page


def test_open_subject_access_requests_count_and_oldest_due(
    client: Client, world_a: World, world_b: World, admin_a: Any
) -> None:
    today = timezone.localdate()

    def sar(school: Any, due: dt.date, done: bool = False) -> None:
        SubjectAccessRequest.objects.create(
            school=school,
            received_on=due - dt.timedelta(days=30),
            due_on=due,
            completed_at=timezone.now() if done else None,
        )

    sar(world_a.school, dt.date(2020, 1, 1), done=True)  # completed: not open
    sar(world_a.school, today + dt.timedelta(days=20))
    sar(world_a.school, today - dt.timedelta(days=2))  # overdue, and the oldest
    sar(world_b.school, dt.date(2019, 5, 5))  # another school's
    client.force_login(admin_a)
    page = client.get(records_url(world_a)).content.decode()
    oldest = today - dt.timedelta(days=2)
    assert f"2 requests are open; the oldest is due on {oldest.day} {oldest:%B %Y}." in page
    assert "1 overdue." in page


def test_the_pdf_opens_carries_the_summary_and_its_download_is_audited(
    client: Client, world_a: World, admin_a: Any, gateways: None
) -> None:
    client.force_login(admin_a)
    response = client.get(pdf_url(world_a))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Cache-Control"] == "no-store"
    assert response.content.startswith(b"%PDF")
    reader = PdfReader(io.BytesIO(response.content))
    text = " ".join((p.extract_text() or "") for p in reader.pages)
    text = " ".join(text.split())
    assert "Records of processing: Example Academy" in text
    assert "URN 100001" in text
    assert "Students" in text and "Audit trail events" in text
    assert "Twilio" in text
    assert "12 months after leaving" in text
    assert TOKEN not in text and SMTP_PASSWORD not in text
    assert world_a.student.surname not in text

    event = AuditEvent.objects.get(action="privacy.records_exported")
    assert (event.actor_id, event.school_id) == (admin_a.pk, world_a.school.pk)
    assert event.detail == {"format": "pdf"}
    # And the trail shows it in words.
    trail = client.get(reverse("console:audit", kwargs={"urn": world_a.school.urn}))
    assert "Exported the records of processing (PDF)" in trail.content.decode()


def test_a_head_request_makes_no_pdf_and_no_audit_row(
    client: Client, world_a: World, admin_a: Any
) -> None:
    client.force_login(admin_a)
    assert client.head(pdf_url(world_a)).status_code == 200
    assert not AuditEvent.objects.filter(action="privacy.records_exported").exists()
