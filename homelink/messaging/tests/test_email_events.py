"""Email events through django-anymail's tracking webhooks (Postmark's, as it is a plain JSON
POST behind anymail's basic auth)."""

from __future__ import annotations

import base64
import json
import warnings
from typing import Any

import pytest
from anymail.signals import AnymailTrackingEvent, tracking
from django.test import Client
from django.urls import reverse

from homelink.messaging.models import Channel, Delivery
from homelink.messaging.tests.sms_helpers import delivery, status_of
from homelink.schools.models import School

pytestmark = pytest.mark.django_db

S = Delivery.Status
SECRET = "anymail-user:a-long-random-password"
MESSAGE_ID = "883953f4-6105-42a2-a16a-77a8eac79483"


@pytest.fixture(autouse=True)
def secret(settings: Any) -> None:
    settings.ANYMAIL = {"WEBHOOK_SECRET": SECRET}
    settings.HOMELINK_EMAIL_EVENTS_ESP = "postmark"


def email_delivery(school: School, status: str = S.SENT) -> Delivery:
    return delivery(
        school,
        "pat@example.org",
        channel=Channel.EMAIL,
        gateway="email",
        gateway_id=MESSAGE_ID,
        status=status,
    )


def basic(credentials: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(credentials.encode()).decode()}


def postmark(client: Client, event: dict[str, Any], headers: dict[str, str]) -> Any:
    with warnings.catch_warnings():
        # Anymail warns when no secret is set; that case is tested on purpose.
        warnings.simplefilter("ignore")
        return client.post(
            reverse("email_events", args=["postmark"]),
            json.dumps(event),
            content_type="application/json",
            headers=headers,
        )


DELIVERED = {
    "RecordType": "Delivery",
    "ServerID": 23,
    "MessageStream": "outbound",
    "MessageID": MESSAGE_ID,
    "Recipient": "pat@example.org",
    "Tag": "",
    "DeliveredAt": "2026-03-02T09:15:00Z",
    "Details": "Test delivery webhook details",
    "Metadata": {},
}
BOUNCED = {
    "RecordType": "Bounce",
    "ID": 4323372036854775807,
    "Type": "HardBounce",
    "TypeCode": 1,
    "Name": "Hard bounce",
    "MessageStream": "outbound",
    "MessageID": MESSAGE_ID,
    "Description": "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
    "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist",
    "Email": "pat@example.org",
    "From": "office@example.org",
    "BouncedAt": "2026-03-02T09:16:00Z",
    "Inactive": True,
    "CanActivate": True,
    "Subject": "School closed",
    "Metadata": {},
}


def test_a_delivered_event_with_the_secret_is_recorded(client: Client, school: School) -> None:
    row = email_delivery(school)
    assert postmark(client, DELIVERED, basic(SECRET)).status_code == 200
    assert status_of(row) == S.DELIVERED


def test_a_bounce_is_recorded_with_its_reason(client: Client, school: School) -> None:
    row = email_delivery(school)
    assert postmark(client, BOUNCED, basic(SECRET)).status_code == 200
    row.refresh_from_db()
    assert row.status == S.BOUNCED
    assert row.reason.startswith("email bounced: The server was unable to deliver")
    assert "pat@example.org" not in row.reason


@pytest.mark.parametrize("headers", [{}, basic("anymail-user:wrong")])
def test_an_event_without_the_secret_is_refused(
    client: Client, school: School, headers: dict[str, str]
) -> None:
    row = email_delivery(school)
    assert postmark(client, DELIVERED, headers).status_code == 400
    assert status_of(row) == S.SENT


def test_no_webhook_answers_while_no_secret_is_configured(
    client: Client, school: School, settings: Any
) -> None:
    settings.ANYMAIL = {}
    row = email_delivery(school)
    assert postmark(client, BOUNCED, {}).status_code == 404
    assert status_of(row) == S.SENT


@pytest.mark.parametrize("esp", ["mailgun", "sendgrid", "amazon_ses", "mandrill", "nonesuch"])
def test_only_the_configured_providers_webhook_exists(
    client: Client, school: School, esp: str
) -> None:
    """Anonymous junk to another provider's address is 404, not a traceback from a provider
    view that was never configured (mailgun's wants its signing key, for one)."""
    row = email_delivery(school)
    response = client.post(
        f"/hooks/anymail/{esp}/tracking/", "{not json", content_type="application/json"
    )
    assert response.status_code == 404
    assert status_of(row) == S.SENT


def test_the_provider_follows_the_email_backend(
    client: Client, school: School, settings: Any
) -> None:
    settings.HOMELINK_EMAIL_EVENTS_ESP = ""
    settings.EMAIL_BACKEND = "anymail.backends.postmark.EmailBackend"
    row = email_delivery(school)
    assert postmark(client, DELIVERED, basic(SECRET)).status_code == 200
    assert status_of(row) == S.DELIVERED
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    assert postmark(client, BOUNCED, basic(SECRET)).status_code == 404


def test_an_event_for_an_unknown_message_changes_nothing(client: Client, school: School) -> None:
    row = email_delivery(school)
    event = {**DELIVERED, "MessageID": "00000000-0000-0000-0000-000000000000"}
    assert postmark(client, event, basic(SECRET)).status_code == 200
    assert status_of(row) == S.SENT


def test_a_late_delivered_after_a_bounce_changes_nothing(client: Client, school: School) -> None:
    row = email_delivery(school)
    postmark(client, BOUNCED, basic(SECRET))
    postmark(client, DELIVERED, basic(SECRET))
    assert status_of(row) == S.BOUNCED


@pytest.mark.parametrize(
    ("event_type", "expected"),
    [
        ("queued", S.SENT),
        ("sent", S.SENT),
        ("delivered", S.DELIVERED),
        ("bounced", S.BOUNCED),
        ("rejected", S.FAILED),
        ("failed", S.FAILED),
        ("deferred", S.SENDING),
        ("opened", S.SENDING),
        ("clicked", S.SENDING),
        ("unknown", S.SENDING),
    ],
)
def test_event_types_map_to_our_statuses(school: School, event_type: str, expected: str) -> None:
    row = email_delivery(school, status=S.SENDING)
    event = AnymailTrackingEvent(event_type=event_type, message_id=MESSAGE_ID)
    tracking.send(sender=object, event=event, esp_name="Test")
    assert status_of(row) == expected


def test_an_event_for_an_sms_with_the_same_id_is_not_matched(school: School) -> None:
    sms = delivery(school, gateway="twilio", gateway_id=MESSAGE_ID)
    event = AnymailTrackingEvent(event_type="bounced", message_id=MESSAGE_ID)
    tracking.send(sender=object, event=event, esp_name="Test")
    assert status_of(sms) == S.SENT
