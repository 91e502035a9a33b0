"""The first-contact notice reaches each adult before the school's message, with two real
``homelink worker`` processes on PostgreSQL sending both channels at once: email to aiosmtpd,
SMS to the fake provider (real HTTP), both in this process so their arrival times compare.

400 imported adults never told; half have an email address (their notice goes by email), half
only a mobile (by SMS). The message goes by SMS and email ("both"), so every adult has copies on
a channel other than their notice's, which another worker may be sending at the same moment.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from django.db import connection

from homelink.bench.world import parents_school
from homelink.mail_testing import Mailbox, free_port
from homelink.messaging.fakes import FakeSmsGateway
from homelink.messaging.models import Delivery, Message
from homelink.messaging.tests.test_delivery_under_load import _environ, wait_until, workers
from homelink.privacy.tests.test_notices import send
from homelink.register.models import Adult

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("notices_on"),
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="real workers in parallel run on PostgreSQL"
    ),
]

ADULTS = 400
NOTICE_SUBJECT = "How Bench School 990301 uses your contact details"


class TimedMailbox(Mailbox):
    """Notes when each message arrived (``time.time()``, the fake provider's clock too)."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived: list[float] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.arrived.append(time.time())
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def mailbox() -> Iterator[tuple[TimedMailbox, int]]:
    box = TimedMailbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield box, controller.port
    finally:
        controller.stop()


def test_two_workers_deliver_every_notice_before_the_message(
    mailbox: tuple[TimedMailbox, int], settings: Any
) -> None:
    box, port = mailbox
    settings.HOMELINK_FIRST_CONTACT_NOTICE = True
    school = parents_school("990301", ADULTS)
    ids = list(Adult.objects.filter(school=school).order_by("pk").values_list("pk", flat=True))
    Adult.objects.filter(pk__in=ids[::2]).update(email="")
    with FakeSmsGateway() as fake:
        message = send(
            school,
            mode="both",
            subject="Snow day",
            email_body="Dear {name}, snow.",
            sms_text="Snow: school is closed today.",
        )
        notice = Message.objects.get(school=school, kind=Message.Kind.NOTICE)
        expected = Delivery.objects.filter(message__in=[message, notice]).count()
        env = _environ(
            fake,
            EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
            EMAIL_HOST="127.0.0.1",
            EMAIL_PORT=str(port),
        )
        with workers(env):
            done = wait_until(
                lambda: (
                    not Delivery.objects.filter(
                        message__in=[message, notice], status__in=["queued", "sending"]
                    ).exists()
                ),
                timeout=90,
                every=0.25,
            )
        accepted = list(fake.accepted)
    statuses = set(
        Delivery.objects.filter(message__in=[message, notice]).values_list("status", flat=True)
    )
    assert done and statuses == {"sent"}, statuses
    assert expected == ADULTS + ADULTS + ADULTS // 2  # notices, SMS copies, email copies

    # When each address or number got the notice, and when it got the message.
    notice_at: dict[str, float] = {}
    message_at: dict[str, list[float]] = {}
    for mail, at in zip(box.messages, box.arrived, strict=True):
        to = str(mail["To"])
        if mail["Subject"] == NOTICE_SUBJECT:
            notice_at[to] = at
        else:
            message_at.setdefault(to, []).append(at)
    for item in accepted:
        if "Privacy notice and opt-out" in item.text:
            notice_at[item.to] = item.received_at
        else:
            message_at.setdefault(item.to, []).append(item.received_at)
    first: dict[int, float] = {}
    messages_to: dict[int, list[float]] = {}
    for adult_id, email, mobile in Adult.objects.filter(school=school).values_list(
        "pk", "email", "mobile"
    ):
        first[adult_id] = notice_at[email or mobile]
        messages_to[adult_id] = [*message_at.get(mobile, []), *message_at.get(email, [])]
    assert len(first) == ADULTS
    late = [
        adult_id
        for adult_id, at in first.items()
        if not messages_to[adult_id] or min(messages_to[adult_id]) < at
    ]
    assert not late, f"{len(late)} adults got the message before the notice (or no message)"
    takers = set(
        Delivery.objects.filter(message__in=[message, notice]).values_list("claimed_by", flat=True)
    )
    print(f"\n{expected} copies, claimed under {len(takers)} worker tokens; every notice first")
