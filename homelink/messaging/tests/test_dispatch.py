"""The outbox's workers, end to end: real SMTP to aiosmtpd, SMS to the local outbox gateway,
and the real database queue run by ``homelink worker``."""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from homelink.mail_testing import Mailbox
from homelink.messaging import dispatch
from homelink.messaging.audience import Audience
from homelink.messaging.dispatch import MAX_ATTEMPTS, claim, deliver_batch, drain, reap
from homelink.messaging.fakes import FakeSmsGateway
from homelink.messaging.models import (
    Delivery,
    GatewayHealth,
    GatewayPace,
    Message,
    OutboxMessage,
    SmsBlock,
)
from homelink.messaging.services import Draft, message_send
from homelink.register.models import Adult
from homelink.schools.models import School

pytestmark = pytest.mark.django_db

Status = Delivery.Status


def send(school: School, **kw: Any) -> Message:
    values: dict[str, Any] = {
        "mode": "email",
        "audience": Audience(),
        "subject": "Closed today",
        "email_body": "Dear {name}, {children} should stay at home. {school}",
        "sms_text": "Dear {name}, school is closed today.",
    }
    values.update(kw)
    return message_send(school=school, draft=Draft(**values), actor="test")


def statuses(message: Message) -> dict[str, str]:
    return dict(Delivery.objects.filter(message=message).values_list("to", "status"))


def test_email_goes_over_one_connection_per_batch_with_merge_fields(
    family: School, smtp: Mailbox, settings: Any
) -> None:
    settings.DEFAULT_FROM_EMAIL = "homelink <noreply@example.org>"
    message = send(family)
    assert drain("email") == 3
    assert smtp.connections == 1
    mary = smtp.to("mary@example.org")
    assert len(mary) == 1
    body = Mailbox.body(mary[0])
    assert "Dear Mary Smith," in body
    assert "Amy, Ben and Cara should stay at home. Example Academy" in body
    # The school's name in front of the site's own address (DEFAULT_FROM_EMAIL's address part).
    assert mary[0]["From"].addresses[0].display_name == "Example Academy"
    assert mary[0]["From"].addresses[0].addr_spec == "noreply@example.org"
    assert set(statuses(message).values()) == {"sent"}
    delivery = Delivery.objects.get(message=message, to="mary@example.org")
    assert delivery.gateway == "email"
    assert delivery.gateway_id == str(mary[0]["Message-ID"])
    assert delivery.sent_at is not None
    assert GatewayHealth.objects.get(gateway="email").last_ok_at is not None


def test_a_refused_mailbox_fails_with_the_reason_and_the_rest_go(
    family: School, smtp: Mailbox
) -> None:
    smtp.refuse.add("gwen@example.org")
    message = send(family)
    drain("email")
    gwen = Delivery.objects.get(message=message, to="gwen@example.org")
    assert gwen.status == Status.FAILED
    assert "550" in gwen.reason
    assert statuses(message)["mary@example.org"] == "sent"
    assert smtp.connections == 1


def test_a_mail_server_that_is_down_is_retried_with_back_off_then_given_up(
    family: School, settings: Any
) -> None:
    from homelink.mail_testing import free_port

    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", free_port()  # nobody listening
    message = send(family)
    before = timezone.now()
    assert deliver_batch("email", "w1") == 3
    row, *rest = Delivery.objects.filter(message=message).order_by("lane")
    assert (row.status, row.attempts) == (Status.QUEUED, 1)
    assert "unreachable" in row.reason
    assert row.next_attempt_at >= before + dt.timedelta(seconds=30)
    # The server is down, not the other two copies: they wait without spending an attempt,
    # and the whole gateway rests before anyone tries it again.
    assert [(r.status, r.attempts) for r in rest] == [(Status.QUEUED, 0), (Status.QUEUED, 0)]
    assert GatewayPace.objects.get(gateway="email").hold_until > time.time()
    health = GatewayHealth.objects.get(gateway="email")
    assert health.failures_in_row == 1
    assert deliver_batch("email", "w1") == 0
    for _ in range(MAX_ATTEMPTS - 1):
        Delivery.objects.filter(message=message).update(next_attempt_at=timezone.now())
        GatewayPace.objects.update(hold_until=0)
        deliver_batch("email", "w1")
    row.refresh_from_db()
    assert row.status == Status.FAILED
    assert row.reason.startswith(f"gave up after {MAX_ATTEMPTS} attempts")
    # Each outage in a row rested the gateway longer.
    assert GatewayPace.objects.get(gateway="email").strikes == MAX_ATTEMPTS


def test_sms_goes_through_the_gateway_with_the_school_sender(family: School) -> None:
    School.objects.filter(pk=family.pk).update(sms_sender="EXAMPLE")
    family.refresh_from_db()
    message = send(family, mode="sms")
    assert drain("sms") == 3
    kept = OutboxMessage.objects.get(to="+447700900001")
    assert kept.body == "Dear Mary Smith, school is closed today."
    assert kept.sender == "EXAMPLE"
    row = Delivery.objects.get(message=message, to="+447700900001")
    assert (row.status, row.gateway, row.gateway_id) == ("sent", "outbox", f"outbox-{kept.pk}")


def test_people_who_opt_out_after_queuing_are_skipped_and_refunded(family: School) -> None:
    message = send(family, mode="sms")
    Adult.objects.filter(forename="Mary").update(opted_out=True)
    Adult.objects.filter(forename="Dan").update(sms_off=True)
    SmsBlock.objects.create(school=family, number="+447700900003", keyword="STOP")
    drain("sms")
    rows = {d.to: (d.status, d.reason) for d in Delivery.objects.filter(message=message)}
    assert {status for status, _ in rows.values()} == {"skipped"}
    assert rows["+447700900003"][1] == "the number texted STOP"
    assert not OutboxMessage.objects.exists()
    family.refresh_from_db()
    message.refresh_from_db()
    assert family.sms_credits == 1000
    assert message.credits_refunded == 3


def test_a_shared_number_still_goes_while_one_of_its_people_wants_it(family: School) -> None:
    Adult.objects.filter(forename="Dan").update(mobile="+447700900001")
    message = send(family, mode="sms")
    Adult.objects.filter(forename="Mary").update(opted_out=True)
    drain("sms")
    assert statuses(message)["+447700900001"] == "sent"


def test_a_dead_workers_claim_returns_to_the_queue_when_its_lease_runs_out(
    family: School,
) -> None:
    message = send(family, mode="sms")
    taken = claim("sms", "dead-worker")
    assert len(taken) == 3
    assert reap() == 0  # the lease is live: the worker may just be slow
    assert drain("sms") == 0
    Delivery.objects.filter(message=message).update(
        lease_until=timezone.now() - dt.timedelta(seconds=1)
    )
    assert drain("sms") == 3
    assert set(statuses(message).values()) == {"sent"}
    assert OutboxMessage.objects.count() == 3


def test_a_late_worker_does_not_overwrite_what_another_recorded(family: School) -> None:
    send(family, mode="sms")
    slow = claim("sms", "slow")
    Delivery.objects.update(lease_until=timezone.now() - dt.timedelta(seconds=1))
    assert drain("sms") == 3
    recorder = dispatch.Recorder("slow", "outbox")
    recorder.sent_ok(slow[0], "late-id")
    recorder.flush()
    assert Delivery.objects.get(pk=slow[0].pk).gateway_id.startswith("outbox-")


def test_urgent_copies_are_claimed_ahead_of_bulk_ones_already_queued(family: School) -> None:
    bulk = send(family, mode="both")
    urgent = send(family, mode="sms", audience=Audience(parents="prime"), urgent=True)
    first = claim("sms", "w", limit=2)
    assert {d.message_id for d in first} == {urgent.pk}
    assert {d.message_id for d in claim("sms", "w", limit=10)} == {bulk.pk}


def test_scheduled_and_cancelled_copies_are_not_sent(family: School) -> None:
    later = send(family, send_at=timezone.now() + dt.timedelta(hours=2))
    assert drain("email") == 0
    Delivery.objects.filter(message=later).update(next_attempt_at=timezone.now())
    from homelink.messaging.services import message_cancel

    message_cancel(message=later, actor="test")
    assert drain("email") == 0


@pytest.mark.django_db(transaction=True)
def test_the_worker_command_delivers_a_send_through_the_task_queue(
    family: School, smtp: Mailbox, settings: Any
) -> None:
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    message = send(family, mode="both")
    assert DBTaskResult.objects.count() >= 2  # woken after commit, per channel used
    call_command("worker", "--batch", "--no-startup-delay", "--queue-name", "*", verbosity=0)
    assert set(statuses(message).values()) == {"sent"}
    assert len(smtp.messages) == 3
    assert OutboxMessage.objects.filter(channel="sms").count() == 3


@pytest.mark.django_db(transaction=True)
def test_a_worker_starting_up_recovers_what_dead_workers_left(
    family: School, smtp: Mailbox, settings: Any
) -> None:
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    message = send(family)
    claim("email", "dead")
    DBTaskResult.objects.all().delete()  # the dead worker's tasks are gone with it
    Delivery.objects.update(lease_until=timezone.now() - dt.timedelta(seconds=1))
    call_command("worker", "--batch", "--no-startup-delay", "--queue-name", "*", verbosity=0)
    assert set(statuses(message).values()) == {"sent"}


# --- SMS through a provider on the network (sender threads) ------------------------------------


@pytest.fixture
def provider(settings: Any) -> Iterator[FakeSmsGateway]:
    with FakeSmsGateway() as fake:
        settings.HOMELINK_SMS_GATEWAY = "homelink.messaging.gateways.http.HttpGateway"
        settings.HOMELINK_HTTP_SMS = fake.http_settings()
        yield fake


@pytest.mark.parametrize("connections", [1, 3])
def test_sms_goes_out_over_kept_alive_connections_and_is_recorded(
    big_family: School, provider: FakeSmsGateway, settings: Any, connections: int
) -> None:
    settings.HOMELINK_SMS_CONNECTIONS = connections
    settings.HOMELINK_DELIVERY_BATCH = 7  # several claims while earlier ones are still going
    message = send(big_family, mode="sms", sms_text="Dear {name}, closed today.")
    assert drain("sms") == 40
    rows = list(Delivery.objects.filter(message=message))
    assert {d.status for d in rows} == {"sent"}
    taken = {item.id: item for item in provider.accepted}
    assert len(taken) == 40
    for row in rows:
        assert taken[row.gateway_id].to == row.to
        assert taken[row.gateway_id].text == f"Dear {row.name}, closed today."
        assert taken[row.gateway_id].key == f"homelink-{message.key}-{row.pk}"
    assert provider.connections <= connections


def test_a_provider_that_stumbles_gets_retries_and_a_refusal_is_final(
    big_family: School, provider: FakeSmsGateway, settings: Any
) -> None:
    settings.HOMELINK_SMS_CONNECTIONS = 1
    message = send(big_family, mode="sms")
    provider.fail_next(2)
    provider.fail_next(1, permanent=True, reason="number barred")
    drain("sms")  # each 503 rests the gateway (1 s, then 2 s) and the rest wait unspent
    counts = Counter(Delivery.objects.filter(message=message).values_list("status", flat=True))
    assert counts == {"sent": 37, "queued": 2, "failed": 1}
    failed = Delivery.objects.get(message=message, status="failed")
    assert "number barred" in failed.reason
    waiting = Delivery.objects.filter(message=message, status="queued")
    assert all(d.attempts == 1 and d.next_attempt_at > timezone.now() for d in waiting)
    health = GatewayHealth.objects.get(gateway="http")
    assert health.last_error and health.last_ok_at


@pytest.fixture
def big_family(school: School) -> School:
    """Forty pupils, each with one parent and a fictional mobile of their own."""
    from homelink.mis.tests.factories import contact, pupil, run_import

    School.objects.filter(pk=school.pk).update(sms_credits=1000)
    run_import(
        school,
        [
            pupil(
                f"P{i:03d}",
                f"Kid{i}",
                "Big",
                contact(1, f"Parent{i}", "Big", mobile=f"07700 900{100 + i:03d}"),
            )
            for i in range(40)
        ],
    )
    school.refresh_from_db()
    return school


def test_a_copy_that_stops_its_worker_every_time_is_given_up(family: School) -> None:
    message = send(
        family, mode="sms", audience=Audience(students="chosen", student_ids=(jo_jones(family),))
    )
    for _ in range(MAX_ATTEMPTS):
        assert len(claim("sms", "dies")) == 1
        Delivery.objects.update(lease_until=timezone.now() - dt.timedelta(seconds=1))
        reap()
    row = Delivery.objects.get(message=message)
    assert row.status == Status.FAILED
    assert "the worker stopped each time" in row.reason
    assert claim("sms", "next") == []


def test_a_receipt_before_the_record_keeps_its_status_and_gets_the_sent_time(
    family: School,
) -> None:
    send(family, mode="sms")
    taken = claim("sms", "w")
    first = taken[0]
    Delivery.objects.filter(pk=first.pk).update(status=Status.DELIVERED, gateway_id="SM1")
    recorder = dispatch.Recorder("w", "twilio")
    for delivery in taken:
        recorder.sent_ok(delivery, f"SM{delivery.pk}" if delivery.pk != first.pk else "SM1")
    recorder.flush()
    row = Delivery.objects.get(pk=first.pk)
    assert (row.status, row.gateway_id, row.gateway) == ("delivered", "SM1", "twilio")
    assert row.sent_at is not None


def jo_jones(school: School) -> int:
    from homelink.register.models import Member

    return Member.objects.get(school=school, mis_id="B1").pk
