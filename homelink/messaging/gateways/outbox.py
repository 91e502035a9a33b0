"""The local development outbox: messages are kept in the database for people to read."""

from __future__ import annotations

from homelink.messaging.models import OutboxMessage


class OutboxGateway:
    name = "outbox"
    network_only = False

    def send_sms(self, *, to: str, text: str, sender: str = "", key: str = "") -> str:
        message = OutboxMessage.objects.create(
            channel=OutboxMessage.Channel.SMS, to=to, sender=sender, body=text
        )
        return f"outbox-{message.pk}"

    def close(self) -> None:
        pass
