"""Whether each gateway is working: recorded after every batch, shown on the dashboard."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.formats import date_format

from homelink.messaging.gateways.base import scrub
from homelink.messaging.models import GatewayHealth

#: A failure older than this, with nothing since, is history rather than a problem.
PROBLEM_WINDOW = timedelta(minutes=30)

LABELS = {
    "twilio": "Twilio (SMS)",
    "http": "The SMS gateway",
    "email": "Email",
    "outbox": "The local outbox",
}


def gateway_health_record(name: str, *, ok: bool, error: str = "") -> None:
    """After a batch: a success clears the failure count, an error adds one (race-safe upsert).

    ``error`` is scrubbed of phone numbers and addresses: the dashboard is no place for them.
    """
    now = timezone.now()
    message = scrub(error) or "failed"
    if ok:
        changes: dict[str, object] = {"last_ok_at": now, "failures_in_row": 0}
        first = GatewayHealth(gateway=name, last_ok_at=now)
    else:
        changes = {
            "last_error_at": now,
            "last_error": message,
            "failures_in_row": F("failures_in_row") + 1,
        }
        first = GatewayHealth(
            gateway=name, last_error_at=now, last_error=message, failures_in_row=1
        )
    if GatewayHealth.objects.filter(gateway=name).update(**changes):
        return
    try:
        with transaction.atomic():
            first.save(force_insert=True)
    except IntegrityError:
        # Another worker made the row first: add to it.
        GatewayHealth.objects.filter(gateway=name).update(**changes)


def gateway_problems(now: datetime) -> list[str]:
    """Sentences for the dashboard: gateways whose last error is recent and newer than their
    last success."""
    rows = GatewayHealth.objects.filter(last_error_at__gte=now - PROBLEM_WINDOW).order_by("gateway")
    problems = []
    for row in rows:
        assert row.last_error_at is not None  # the filter above
        if row.last_ok_at is not None and row.last_ok_at >= row.last_error_at:
            continue
        label = LABELS.get(row.gateway, f"The {row.gateway} gateway")
        when = date_format(timezone.localtime(row.last_error_at), "H:i")
        times = "once" if row.failures_in_row == 1 else f"{row.failures_in_row} times in a row"
        sentence = f"{label} has failed {times}, last at {when}"
        if row.last_error:
            sentence += f": {row.last_error}"
        problems.append(sentence + ".")
    return problems
