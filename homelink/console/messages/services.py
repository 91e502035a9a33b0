"""The record of a download of personal data from the message pages."""

from __future__ import annotations

from homelink.audit.services import audit_record
from homelink.messaging.models import Message
from homelink.staff.actor import Actor, actor_parts


def message_export_record(*, message: Message, rows: int, actor: Actor) -> None:
    """Record that a message's recipients (names, numbers, addresses) left the system as a
    file: who took them, and how many rows."""
    label, actor_id = actor_parts(actor)
    audit_record(
        school=message.school,
        actor_label=label,
        actor_id=actor_id,
        action="message.deliveries_exported",
        obj=message,
        detail={"rows": rows, "format": "csv"},
    )
