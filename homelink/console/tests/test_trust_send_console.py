"""The trust-wide send in the console: compose → preview school by school → send once, the
trust's list with each school's delivery progress, cancel; trust senders only, and 404 for
anyone not on the trust's staff."""

from __future__ import annotations

import datetime as dt
import html
import re
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from homelink.console.tests.conftest import make_user, member_of
from homelink.messaging.models import Delivery, Message, TrustMessage
from homelink.schools.models import School
from homelink.staff.models import Role
from homelink.staff.testing import confirm_email_directly
from homelink.trusts.models import Trust, TrustMembership
from homelink.trusts.tests.test_trust_send import ELM, FAR, OAK, TEXT, send, snow  # noqa: F401

pytestmark = pytest.mark.django_db


def trust_client(trust: Trust, role: str, email: str = "central@oak.example") -> Client:
    user: Any = make_user(email)
    confirm_email_directly(user)
    TrustMembership.objects.create(user=user, trust=trust, role=role)
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def sender(snow: Trust) -> Client:  # noqa: F811
    return trust_client(snow, Role.SENDER)


def url(trust: Trust, name: str) -> str:
    return reverse(f"console:{name}", kwargs={"trust_id": trust.pk})


def compose(**kw: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "schools": [OAK, ELM],
        "mode": "sms",
        "who": "parents",
        "parents": "all",
        "students": "all",
        "sms_text": TEXT,
        "action": "preview",
    }
    data.update(kw)
    return data


def text(response: Any) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode())))


def token(response: Any) -> str:
    found = re.search(r'name="token" value="([^"]+)"', response.content.decode())
    assert found, "the preview has no send form"
    return found.group(1)


def test_the_preview_shows_each_school_and_who_is_left_out(snow: Trust, sender: Client) -> None:  # noqa: F811
    page = sender.get(url(snow, "trust_message_new"))
    assert page.status_code == 200
    assert "Oak Primary" in page.content.decode() and "Far School" not in page.content.decode()
    preview = sender.post(url(snow, "trust_message_new"), compose())
    assert preview.status_code == 200
    shown = text(preview)
    # The console takes the trust's schools by name: Elm sends Mary's and Dan's shared texts
    # (and Priya's), Oak Jill's; Zoë opted out at Elm; Lou (Elm) has nobody else.
    assert re.search(r"Elm Academy URN 200002 4 3 1 3 \(0 email, 3 SMS\) 2 0 3 of 100 1", shown)
    assert re.search(r"Oak Primary URN 200001 3 3 0 1 \(0 email, 1 SMS\) 0 2 1 of 100 0", shown)
    assert "Elm Academy: 1" in shown and "Opted out: 1" in shown and "Zoë Brown" in shown
    assert "2 numbers or addresses belong to families of more than one" in shown
    assert "Elm Academy and Oak Primary is closed today: Ben and Amy" in shown
    assert not Message.objects.exists()


def test_send_once_then_the_trust_list_shows_each_schools_progress(
    snow: Trust,  # noqa: F811
    sender: Client,
) -> None:
    preview = sender.post(url(snow, "trust_message_new"), compose())
    data = {**compose(), "token": token(preview)}
    data.pop("action")
    sent = sender.post(url(snow, "trust_message_send"), data)
    assert sent.status_code == 302 and sent["Location"] == url(snow, "trust_messages")
    record = TrustMessage.objects.get()
    assert record.total == 4 and record.created_by is not None
    again = sender.post(url(snow, "trust_message_send"), data)
    assert again.status_code == 302
    assert TrustMessage.objects.count() == 1 and Delivery.objects.count() == 4
    listing = sender.get(url(snow, "trust_messages"))
    shown = text(listing)
    assert re.search(r"Elm Academy 3 3 0 0 0 1 sending", shown)
    assert re.search(r"Oak Primary 1 \(\+ 2 in another school's copy\) 1 0 0 0 0 sending", shown)
    for message in Message.objects.filter(trust_message=record):
        link = reverse(
            "console:message", kwargs={"urn": message.school.urn, "message_id": message.pk}
        )
        assert link in listing.content.decode()
        # The trust's sender opens the school's own page of it.
        assert sender.get(link).status_code == 200


def test_short_credits_are_shown_and_nothing_can_be_sent(snow: Trust, sender: Client) -> None:  # noqa: F811
    School.objects.filter(urn=ELM).update(sms_credits=0)
    preview = sender.post(url(snow, "trust_message_new"), compose())
    assert "Elm Academy needs 3 and has 0" in text(preview)
    assert "Send now" not in text(preview)
    data = {**compose(), "token": token(preview)}
    data.pop("action")
    refused = sender.post(url(snow, "trust_message_send"), data)
    assert refused.status_code == 400
    assert "Nothing was sent to any school" in text(refused)
    assert not Message.objects.exists()
    assert School.objects.get(urn=OAK).sms_credits == 100


def test_a_scheduled_send_is_cancelled_at_every_school(snow: Trust, sender: Client) -> None:  # noqa: F811
    record = send(snow, [OAK, ELM], send_at=_tomorrow())
    assert "Cancel this message" in text(sender.get(url(snow, "trust_messages")))
    done = sender.post(
        url(snow, "trust_message_cancel"), {"trust_message": record.pk, "confirm": "on"}
    )
    assert done.status_code == 302
    assert set(Message.objects.values_list("status", flat=True)) == {"cancelled"}
    assert School.objects.get(urn=OAK).sms_credits == 100


def _tomorrow() -> dt.datetime:
    return timezone.now() + dt.timedelta(days=1)


def test_a_viewer_reads_but_cannot_send(snow: Trust) -> None:  # noqa: F811
    viewer = trust_client(snow, Role.VIEWER, "viewer@oak.example")
    assert viewer.get(url(snow, "trust_messages")).status_code == 200
    assert viewer.post(url(snow, "trust_message_new"), compose()).status_code == 403
    assert viewer.post(url(snow, "trust_message_send"), compose()).status_code == 403
    assert not Message.objects.exists()


def test_another_trusts_staff_and_a_schools_own_staff_get_404(snow: Trust) -> None:  # noqa: F811
    far_trust = Trust.objects.get(name="Far Trust")
    far_sender = trust_client(far_trust, Role.ADMINISTRATOR, "central@far.example")
    record = send(snow, [OAK, ELM], send_at=_tomorrow())
    for name in ("trust_messages", "trust_message_new"):
        assert far_sender.get(url(snow, name)).status_code == 404
    assert far_sender.post(url(snow, "trust_message_new"), compose()).status_code == 404
    assert far_sender.post(url(snow, "trust_message_send"), compose()).status_code == 404
    cancel = {"trust_message": record.pk, "confirm": "on"}
    assert far_sender.post(url(snow, "trust_message_cancel"), cancel).status_code == 404
    # Their own trust's cancel does not reach another trust's message either.
    assert far_sender.post(url(far_trust, "trust_message_cancel"), cancel).status_code == 404
    # A school's own staff see their school only, not the trust's pages.
    office: Any = make_user("office@oak.example")
    member_of(office, School.objects.get(urn=OAK), Role.ADMINISTRATOR)
    client = Client()
    client.force_login(office)
    assert client.get(url(snow, "trust_messages")).status_code == 404
    assert client.post(url(snow, "trust_message_new"), compose()).status_code == 404
    assert set(Message.objects.values_list("status", flat=True)) == {"queued"}


def test_a_school_outside_the_trust_cannot_be_chosen(snow: Trust, sender: Client) -> None:  # noqa: F811
    refused = sender.post(url(snow, "trust_message_new"), compose(schools=[OAK, FAR]))
    assert refused.status_code == 400
    assert "Select a valid choice" in text(refused)
    assert not Message.objects.exists()
