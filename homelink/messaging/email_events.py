"""Email events from an ESP, through django-anymail's normalised tracking webhooks.

Anymail validates the request (its basic-auth ``WEBHOOK_SECRET``, and the ESP's own signature
where there is one) and sends the ``tracking`` signal; this receiver records the event on the
delivery whose ``gateway_id`` is the ESP's message id.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from anymail import urls as anymail_urls
from anymail.signals import AnymailTrackingEvent, EventType
from anymail.utils import get_anymail_setting
from django.conf import settings
from django.http import Http404, HttpRequest
from django.http.response import HttpResponseBase
from django.urls import URLPattern
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.debug import sensitive_post_parameters

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


def _tracking_views() -> dict[str, Callable[..., HttpResponseBase]]:
    """Anymail's tracking webhook of each ESP, by the name anymail spells it ("postmark")."""
    suffix = "_tracking_webhook"
    return {
        pattern.name.removesuffix(suffix): pattern.callback
        for pattern in anymail_urls.urlpatterns
        if isinstance(pattern, URLPattern) and pattern.name and pattern.name.endswith(suffix)
    }


TRACKING_VIEWS = _tracking_views()


def events_esp() -> str:
    """The ESP whose events are believed: HOMELINK_EMAIL_EVENTS_ESP, else the one the email
    backend sends through (``anymail.backends.postmark.EmailBackend`` → "postmark")."""
    configured = getattr(settings, "HOMELINK_EMAIL_EVENTS_ESP", "").strip().lower()
    if configured:
        return configured
    parts = settings.EMAIL_BACKEND.split(".")
    if len(parts) == 4 and parts[:2] == ["anymail", "backends"]:
        return parts[2]
    return ""


def events_ready() -> bool:
    """Events are taken only from the configured ESP, and only once its secret is set."""
    return bool(
        events_esp() in TRACKING_VIEWS and get_anymail_setting("webhook_secret", default="")
    )


@csrf_exempt
@sensitive_post_parameters()
def tracking_webhook(request: HttpRequest, esp: str) -> HttpResponseBase:
    """``/hooks/anymail/<esp>/tracking/``: only the configured ESP's webhook exists; every other
    provider's address, and this one until its secret is set, is 404 rather than a view that
    could fail on whatever an anonymous caller sends. Not POST-only: some ESPs check the address
    with a HEAD or GET when it is registered, and anymail answers those itself."""
    if esp != events_esp() or not events_ready():
        raise Http404("no such webhook")
    return TRACKING_VIEWS[esp](request)
