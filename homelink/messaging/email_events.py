"""Email events from an ESP, through django-anymail's normalised tracking webhooks.

Anymail validates the request (its basic-auth ``WEBHOOK_SECRET``, and the ESP's own signature
where there is one) and sends the ``tracking`` signal; this receiver records the event on the
delivery whose ``gateway_id`` is the ESP's message id.
"""

from __future__ import annotations

import logging
from typing import Any

from anymail.signals import AnymailTrackingEvent, EventType
from anymail.utils import get_anymail_setting

from homelink.messaging.gateways.base import scrub
from homelink.messaging.models import Status
from homelink.messaging.receipts import receipt_record

log = logging.getLogger(__name__)

#: Anymail's event type → ours. Deferred (the ESP will try again) and engagement events
#: (opened, clicked…) say nothing about delivery and are left out.
EMAIL_STATUS: dict[str, Status] = {
    EventType.QUEUED: Status.SENT,
    EventType.SENT: Status.SENT,
    EventType.DELIVERED: Status.DELIVERED,
    EventType.BOUNCED: Status.BOUNCED,
    EventType.REJECTED: Status.FAILED,
    EventType.FAILED: Status.FAILED,
}


def _reason(event: AnymailTrackingEvent) -> str:
    detail = event.description or event.mta_response or event.reject_reason or ""
    return scrub(f"email {event.event_type}: {detail}" if detail else f"email {event.event_type}")


def email_event_received(
    sender: object, event: AnymailTrackingEvent, esp_name: str, **kwargs: Any
) -> None:
    """The receiver of ``anymail.signals.tracking`` (connected in the app's ``ready``)."""
    if not get_anymail_setting("webhook_secret", default=""):
        # Without the secret anyone could mark deliveries bounced: refuse to believe them.
        log.warning("email event from %s ignored: ANYMAIL_WEBHOOK_SECRET is not set", esp_name)
        return
    status = EMAIL_STATUS.get(event.event_type)
    if status is None or not event.message_id:
        return
    receipt_record(
        gateway="email",
        gateway_id=str(event.message_id),
        status=status,
        reason=_reason(event) if status in {Status.FAILED, Status.BOUNCED} else "",
    )
