"""Delivery receipts and email events: a delivery's status moves forward, never back.

Receipts arrive late, twice and out of order (mis-formats.md §5), and one can overtake the
worker that is still recording what the gateway answered. Every change is one conditional
UPDATE that only matches a row whose status ranks lower, so two receipts at once cannot undo
each other whatever order their transactions commit in.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from homelink.messaging.models import STATUS_RANK, Delivery, Status

log = logging.getLogger(__name__)

#: What a receipt may set.
RECEIPT_STATUSES = frozenset({Status.SENT, Status.DELIVERED, Status.FAILED, Status.BOUNCED})

#: Twilio's MessageStatus → ours; None: nothing to record (still on its way, or inbound).
TWILIO_STATUS: dict[str, Status | None] = {
    "accepted": None,
    "scheduled": None,
    "queued": None,
    "sending": None,
    "receiving": None,
    "received": None,
    "sent": Status.SENT,
    "delivered": Status.DELIVERED,
    "read": Status.DELIVERED,
    "undelivered": Status.FAILED,
    "failed": Status.FAILED,
    "canceled": Status.FAILED,
}

#: The ErrorCodes staff meet most on a failed text, in words they can act on.
TWILIO_ERRORS = {
    "21610": "the number replied STOP to this sender",
    "21614": "not a mobile number",
    "30003": "phone switched off or out of coverage",
    "30004": "blocked by the recipient or their network",
    "30005": "unknown number (not in service)",
    "30006": "landline or unreachable network",
    "30007": "filtered by the network as spam",
    "30008": "unknown network error",
}


def twilio_reason(error_code: str) -> str:
    code = error_code.strip()
    if not code:
        return "twilio: not delivered"
    explained = TWILIO_ERRORS.get(code)
    return f"twilio {code}: {explained}" if explained else f"twilio {code}"


def _lower_than(status: Status) -> list[str]:
    rank = STATUS_RANK[status]
    return [str(s) for s, r in STATUS_RANK.items() if r < rank]


def receipt_record(
    *,
    gateway: str,
    gateway_id: str,
    status: str,
    reason: str = "",
    delivery_id: int | None = None,
) -> bool:
    """Move a delivery's status forward to ``status``; whether anything changed.

    The delivery is the one ``delivery_id`` names when the callback URL carried it (refused if
    it was sent through another gateway or under another id), else the one with this
    ``(gateway, gateway_id)``. A receipt that overtakes the worker's own record still applies
    and fills in the gateway and its id, so the worker must not move the status back.
    """
    new = Status(status)
    if new not in RECEIPT_STATUSES:
        raise ValueError(f"a receipt cannot set {str(status)!r}")
    with transaction.atomic():
        rows = Delivery.objects.all()
        if delivery_id is not None:
            rows = rows.filter(pk=delivery_id)
            row = rows.values("gateway", "gateway_id").first()
            if row is None:
                return False
            known_gateway, known_id = row["gateway"], row["gateway_id"]
            if (known_gateway and known_gateway != gateway) or (
                known_id and gateway_id and known_id != gateway_id
            ):
                # A signed URL with another delivery's id: a bug or a replay, not a receipt.
                log.warning("receipt for delivery %s does not match its gateway id", delivery_id)
                return False
        elif gateway_id:
            rows = rows.filter(gateway=gateway, gateway_id=gateway_id)
        else:
            return False
        changes: dict[str, object] = {"status": new, "status_at": timezone.now()}
        if new in {Status.FAILED, Status.BOUNCED}:
            changes["reason"] = reason[:255]
        if delivery_id is not None:
            changes["gateway"] = gateway
            if gateway_id:
                changes["gateway_id"] = gateway_id
                # Re-checked in the UPDATE: the worker may record an id between our read and it.
                rows = rows.filter(Q(gateway_id="") | Q(gateway_id=gateway_id))
            rows = rows.filter(Q(gateway="") | Q(gateway=gateway))
        return rows.filter(status__in=_lower_than(new)).update(**changes) > 0
