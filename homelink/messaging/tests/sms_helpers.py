"""Rows for the gateway, receipt and inbound tests, made directly with the ORM."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone

from homelink.messaging.models import Channel, Delivery, Message
from homelink.register.models import Adult, Member
from homelink.schools.models import School

NUMBER = "+447700900001"


def message(school: School, *, text: str = "School is closed today.", **kw: Any) -> Message:
    values: dict[str, Any] = {
        "school": school,
        "mode": Message.Mode.SMS,
        "sms_text": text,
        "send_at": timezone.now() - timedelta(minutes=5),
    }
    values.update(kw)
    return Message.objects.create(**values)


def delivery(
    school: School,
    to: str = NUMBER,
    *,
    msg: Message | None = None,
    channel: str = Channel.SMS,
    status: str = Delivery.Status.SENT,
    gateway: str = "twilio",
    gateway_id: str = "",
    **kw: Any,
) -> Delivery:
    return Delivery.objects.create(
        message=msg or message(school),
        school=school,
        channel=channel,
        to=to,
        status=status,
        gateway=gateway,
        gateway_id=gateway_id,
        next_attempt_at=timezone.now(),
        **kw,
    )


def parent(school: School, forename: str = "Pat", mobile: str = NUMBER) -> Adult:
    return Adult.objects.create(
        school=school,
        forename=forename,
        surname="Smith",
        name_key=f"{forename.lower()} smith",
        mobile=mobile,
    )


def student(school: School, mis_id: str = "A1") -> Member:
    return Member.objects.create(
        school=school,
        kind=Member.Kind.STUDENT,
        mis_id=mis_id,
        forename="Sam",
        surname="Smith",
    )


def other_school(urn: str = "100002", name: str = "Second School") -> School:
    return School.objects.create(urn=urn, name=name)


def status_of(row: Delivery) -> str:
    row.refresh_from_db()
    return row.status
