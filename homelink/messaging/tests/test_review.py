"""Bugs found in review of the outbox, each shown by a test that failed before its fix."""

from __future__ import annotations

import datetime as dt
import socket
import threading
import time
from collections import Counter
from typing import Any

import pytest
from django.db import connection, connections, transaction
from django.test import RequestFactory
from django.utils import timezone
from django.views.debug import ExceptionReporter
from django_tasks.base import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from homelink.mail_testing import Mailbox
from homelink.messaging import webhooks
from homelink.messaging.audience import Audience
from homelink.messaging.dispatch import Recorder, claim, deliver_batch, drain
from homelink.messaging.dispatch import send_sms as send_sms_batch
from homelink.messaging.gateways import GatewayError
from homelink.messaging.gateways.outbox import OutboxGateway
from homelink.messaging.health import gateway_problems
from homelink.messaging.models import Delivery, Message, OutboxMessage
from homelink.messaging.services import Draft, message_cancel, message_send
from homelink.messaging.tasks import deliver
from homelink.register.models import Adult
from homelink.schools.models import School

pytestmark = pytest.mark.django_db

Status = Delivery.Status


def send_sms(school: School) -> Message:
    draft = Draft(mode="sms", audience=Audience(), sms_text="Dear {name}, school is closed.")
    return message_send(school=school, draft=draft, actor="test")


def credits(school: School) -> int:
    return School.objects.values_list("sms_credits", flat=True).get(pk=school.pk)


def _waiting_on_locks() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database()"
        )
        row = cursor.fetchone()
    return int(row[0])


def _until(condition: Any, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


# --- a cancelled message is never sent -----------------------------------------------------------


@pytest.mark.parametrize("how", ["transient error", "lease ran out"])
def test_a_copy_in_flight_when_its_message_is_cancelled_is_not_sent_later(
    family: School, how: str
) -> None:
    """A copy a worker held when staff cancelled is not recalled; but if it comes back to the
    queue (a transient error, or its worker died), it must not go out minutes after the cancel."""
    message = send_sms(family)
    assert message.sms_count == 3 and credits(family) == 997
    held = claim("sms", "w1", limit=1)
    assert len(held) == 1
    assert message_cancel(message=message, actor="test") == 2
    if how == "transient error":
        Recorder("w1", "outbox").error(held[0], GatewayError("gateway busy", retry=True))
    else:
        Delivery.objects.filter(pk=held[0].pk).update(
            lease_until=timezone.now() - dt.timedelta(seconds=1)
        )
    # Time passes: the back-off ends.
    Delivery.objects.filter(pk=held[0].pk, status=Status.QUEUED).update(
        next_attempt_at=timezone.now()
    )
    drain("sms")
    assert OutboxMessage.objects.count() == 0
    row = Delivery.objects.get(pk=held[0].pk)
    assert (row.status, row.reason) == (Status.CANCELLED, "cancelled by staff")
    # Nothing was sent, so every credit came back.
    assert credits(family) == 1000
    message.refresh_from_db()
    assert message.credits_refunded == 3


# --- a cancel refunds only what it cancelled -----------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_cancel_racing_a_claim_refunds_only_the_copies_it_cancelled(family: School) -> None:
    """A worker's claim commits between the cancel's count of queued credits and its update:
    the copy the worker took is sent, so its credit must not come back."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite's transactions are serial: the race needs PostgreSQL")
    message = send_sms(family)
    assert credits(family) == 997
    claimed, errors = threading.Event(), []

    def worker() -> None:
        try:
            with transaction.atomic():
                assert len(claim("sms", "w1", limit=1)) == 1
                claimed.set()
                # Commit only once the cancel waits on the row this claim has locked.
                _until(lambda: _waiting_on_locks() >= 1, 10)
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)
        finally:
            claimed.set()
            connections.close_all()

    thread = threading.Thread(target=worker)
    thread.start()
    assert claimed.wait(10)
    cancelled = message_cancel(message=message, actor="test")
    thread.join()
    assert errors == []
    assert cancelled == 2
    message.refresh_from_db()
    assert message.credits_refunded == 2
    assert credits(family) == 999


@pytest.mark.django_db(transaction=True)
def test_a_cancel_and_a_claim_that_refunds_a_skipped_copy_do_not_deadlock(
    family: School,
) -> None:
    """The claim locks its deliveries, then the message (to note a skipped copy's refund); the
    cancel locked the message, then the deliveries. Taken in opposite orders, PostgreSQL kills
    one of them: the office's cancel fails with an error, or a worker's task dies."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite's transactions are serial: the race needs PostgreSQL")
    message = send_sms(family)
    # Jill opts out after the send was queued: the claim that takes her copy skips it.
    Adult.objects.filter(forename="Jill").update(opted_out=True)
    first = Delivery.objects.filter(message=message).order_by("pk").first()
    assert first is not None and first.to == "+447700900001"
    held, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def in_thread(work: Any) -> Any:
        def run() -> None:
            try:
                work()
            except BaseException as error:
                errors.append(error)
            finally:
                connections.close_all()

        thread = threading.Thread(target=run)
        thread.start()
        return thread

    def hold_first_row() -> None:
        # Something else holds Mary's copy for a moment (another worker's claim in flight).
        with transaction.atomic():
            list(Delivery.objects.select_for_update().filter(pk=first.pk))
            held.set()
            release.wait(10)

    holder = in_thread(hold_first_row)
    assert held.wait(5)
    canceller = in_thread(lambda: message_cancel(message=message, actor="test"))
    assert _until(lambda: _waiting_on_locks() >= 1)
    worker = in_thread(lambda: claim("sms", "w1"))
    # The worker finishes, or waits on the message row the cancel holds.
    _until(lambda: not worker.is_alive() or _waiting_on_locks() >= 2)
    release.set()
    for thread in (holder, canceller, worker):
        thread.join(20)
    assert errors == []
    assert credits(family) == 1000 - 3 + 2  # Jill's skipped copy and Mary's cancelled one
    assert sorted(Delivery.objects.filter(message=message).values_list("status", flat=True)) == [
        Status.CANCELLED,
        Status.SENDING,
        Status.SKIPPED,
    ]


# --- a worker that outlives its lease -----------------------------------------------------------


def test_a_worker_slower_than_its_lease_does_not_send_what_another_took_over(
    family: School, settings: Any
) -> None:
    """Nobody died: one worker was slow (a provider answering in 15 s on a snow day, an SMTP
    server that hangs) and its lease ran out, so another worker took its copies over and sent
    them. The slow one must not then send them too: every parent would get two texts, outside
    the documented window (a worker killed between the gateway's answer and its record)."""
    settings.HOMELINK_DELIVERY_LEASE_SECONDS = 1
    send_sms(family)
    slow = claim("sms", "slow")
    assert len(slow) == 3
    time.sleep(1.1)  # the slow worker is stuck meanwhile
    assert drain("sms", worker="other") == 3
    # The slow worker comes back to its batch.
    send_sms_batch(slow, Recorder("slow", "outbox"), OutboxGateway())
    copies = Counter(OutboxMessage.objects.values_list("to", flat=True))
    assert copies == {"+447700900001": 1, "+447700900002": 1, "+447700900003": 1}
    assert set(Delivery.objects.values_list("status", flat=True)) == {Status.SENT}


# --- the task chain survives a failed run ---------------------------------------------------------


class BrokenGateway:
    """An SMS gateway that cannot even start (a lost connection, a lock timeout: anything that
    makes one run of the task fail)."""

    name = "broken"
    network_only = False

    def __init__(self) -> None:
        raise ConnectionError("the database went away for a moment")


def test_a_delivery_task_that_fails_still_leaves_a_follow_up(family: School, settings: Any) -> None:
    """The outbox's work is carried by chains of tasks, each enqueueing the next. A run that
    raises must not end its chain: with every chain ended by one database blip, the queue would
    wait, workers alive, until someone sends another message or restarts them."""
    settings.HOMELINK_SMS_GATEWAY = f"{__name__}.BrokenGateway"
    send_sms(family)
    assert not DBTaskResult.objects.exists()  # the send's own wake-ups are not committed here
    with pytest.raises(ConnectionError):
        deliver.call()
    follow_ups = DBTaskResult.objects.filter(status=TaskResultStatus.READY)
    assert [r.args_kwargs["args"] for r in follow_ups] == [[]]
    # After a pause, not at once: a fault that stays must not spin the worker.
    (follow_up,) = follow_ups
    assert follow_up.run_after > timezone.now()


def test_a_mail_server_that_stops_answering_cannot_hang_a_worker_for_ever(
    family: School, settings: Any
) -> None:
    """Django's SMTP connection waits for ever unless told otherwise: a relay that accepts the
    connection and then says nothing (a firewall dropping packets) would hold the worker, and
    every other task it should run, until someone restarts it. With the configured timeout the
    batch comes back as a retryable error instead: the copy that waited spends its attempt
    and the others go back to the queue unspent, while the mail server is given a rest."""
    from django.core.mail.backends.smtp import EmailBackend

    assert EmailBackend().timeout is not None  # the setting reaches the backend
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", silent.getsockname()[1]
        settings.EMAIL_TIMEOUT = 1
        message = message_send(
            school=family,
            draft=Draft(mode="email", audience=Audience(), subject="S", email_body="B"),
            actor="test",
        )
        started = time.monotonic()
        assert deliver_batch("email", "w") == 3
        assert time.monotonic() - started < 10
    rows = Delivery.objects.filter(message=message).order_by("lane")
    assert [(d.status, d.attempts) for d in rows] == [
        (Delivery.Status.QUEUED, 1),
        (Delivery.Status.QUEUED, 0),
        (Delivery.Status.QUEUED, 0),
    ]
    assert rows[0].reason.startswith("mail server unreachable")


# --- the dashboard's gateway health --------------------------------------------------------------


def test_one_parents_bad_address_does_not_say_the_gateway_is_failing(
    family: School, smtp: Mailbox
) -> None:
    """A mailbox that does not exist is that parent's problem, recorded on their copy; the
    mail server took everyone else's. Every school's dashboard must not say email is failing."""
    smtp.refuse.add("gwen@example.org")
    message = message_send(
        school=family,
        draft=Draft(mode="email", audience=Audience(), subject="Closed", email_body="Closed."),
        actor="test",
    )
    drain("email")
    assert Delivery.objects.get(message=message, to="gwen@example.org").status == Status.FAILED
    assert gateway_problems(timezone.now()) == []


def test_a_gateway_that_refuses_every_message_still_shows(family: School, smtp: Mailbox) -> None:
    smtp.refuse.update({"mary@example.org", "gwen@example.org", "jill@example.org"})
    message_send(
        school=family,
        draft=Draft(mode="email", audience=Audience(), subject="Closed", email_body="Closed."),
        actor="test",
    )
    drain("email")
    (problem,) = gateway_problems(timezone.now())
    assert problem.startswith("Email has failed once")


# --- personal data in error reports --------------------------------------------------------------


NUMBER = "+447700900001"


@pytest.mark.parametrize(
    ("view", "data"),
    [
        (webhooks.twilio_inbound, {"From": NUMBER, "Body": "Sam is ill today", "To": "+4420"}),
        (webhooks.twilio_status, {"MessageSid": "SM1", "MessageStatus": "sent", "To": NUMBER}),
        (webhooks.sms_status, {"id": "1", "status": "delivered", "to": NUMBER}),
    ],
)
def test_a_webhooks_numbers_and_texts_stay_out_of_error_reports(
    view: Any, data: dict[str, str], settings: Any
) -> None:
    """An error while a provider's call is handled is mailed to ADMINS with the request's POST:
    a parent's number and what they texted must not be in it (as on the parents' pages)."""
    settings.HOMELINK_TWILIO_AUTH_TOKEN = "token"
    settings.HOMELINK_HTTP_SMS = {"RECEIPT_SECRET": "s"}
    request = RequestFactory().post("/hooks/", data)
    view(request)  # refused (unsigned): what matters is how an error report would show it
    try:
        raise RuntimeError("the database went away")
    except RuntimeError as error:
        report = ExceptionReporter(request, type(error), error, error.__traceback__)
        text = report.get_traceback_text()
    assert NUMBER not in text
    assert "Sam is ill" not in text
