"""A Django email backend that keeps mail in the local outbox (development and the demo)."""

from __future__ import annotations

from collections.abc import Sequence

from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.message import EmailMessage

from homelink.messaging.models import OutboxMessage


class OutboxEmailBackend(BaseEmailBackend):
    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        rows = [
            OutboxMessage(
                channel=OutboxMessage.Channel.EMAIL,
                to=address,
                sender=message.from_email,
                subject=str(message.subject),
                body=str(message.body),
            )
            for message in email_messages
            for address in message.recipients()
        ]
        OutboxMessage.objects.bulk_create(rows)
        return len(email_messages)
