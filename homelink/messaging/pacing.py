"""Sending at the provider's pace, shared by every worker of the install.

Real SMS accounts and email providers take so many messages a second and answer 429 above
that. Each gateway has a row (:class:`~homelink.messaging.models.GatewayPace`) holding its next
free sending slot: a worker about to send ``n`` copies reserves ``n`` consecutive slots in one
statement, which moves the row on by ``n / rate`` seconds, and sends each copy no earlier than
its slot. Reservations never overlap, whichever worker or process makes them, so the provider
never sees more than its rate; a worker that sends later than its slot only leaves a slot
unused. Workers reserve a quarter of a second's sending at a time, so an urgent copy queued now
waits behind at most that much per worker.

When the provider says 429 (with or without Retry-After), or fails as a whole (unreachable,
5xx), the row's ``hold_until`` stops every worker's next reservation until then: a 429 for as
long as the provider asked, an outage for 1, 2, 4… up to 60 seconds as failures follow each
other, until a success clears them. The copies a worker holds meanwhile go back to the queue
without spending an attempt.

A rate of 0 means the provider's own 429s are the only limit; the hold still applies.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import connection

from homelink.messaging.models import Channel, GatewayPace

#: The sending a worker reserves at once, in seconds of the gateway's rate.
LOOKAHEAD_SECONDS = 0.25
#: The longest an outage backs a gateway off.
MAX_BACKOFF_SECONDS = 60.0


def rate_for(channel: str) -> float:
    """The configured messages per second for ``channel``'s gateway (0: unlimited)."""
    if channel == Channel.SMS:
        return float(settings.HOMELINK_SMS_RATE)
    return float(settings.HOMELINK_EMAIL_RATE)


def outage_backoff(strikes: int) -> float:
    return min(2.0 ** max(strikes - 1, 0), MAX_BACKOFF_SECONDS)


@dataclass(frozen=True, slots=True)
class Slots:
    """``count`` consecutive sending slots from ``start`` (epoch seconds), ``gap`` apart."""

    start: float
    gap: float
    count: int

    def at(self, index: int) -> float:
        return self.start + index * self.gap


class Pace:
    """One gateway's shared pace, as this worker sees it."""

    def __init__(self, gateway: str, rate: float) -> None:
        self.gateway = gateway
        self.rate = max(float(rate), 0.0)
        self._table = connection.ops.quote_name(GatewayPace._meta.db_table)
        GatewayPace.objects.get_or_create(gateway=gateway)

    @property
    def paced(self) -> bool:
        return self.rate > 0

    def batch_size(self, default: int) -> int:
        """How many copies to claim at once: a quarter of a second's sending when paced."""
        if not self.paced:
            return default
        return max(1, min(default, math.ceil(self.rate * LOOKAHEAD_SECONDS)))

    def held_until(self) -> float:
        """Until when the gateway is held (epoch seconds; in the past when it is not)."""
        found = (
            GatewayPace.objects.filter(gateway=self.gateway)
            .values_list("hold_until", flat=True)
            .first()
        )
        return float(found or 0.0)

    def reserve(self, count: int) -> Slots:
        """Reserve ``count`` slots, starting at the first free one (never before now or the
        hold's end). Unpaced, the slots are all "now or the hold's end"."""
        now = time.time()
        greatest = "GREATEST" if connection.vendor == "postgresql" else "MAX"
        if not self.paced:
            return Slots(max(now, self.held_until()), 0.0, count)
        span = count / self.rate
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {self._table} SET free_at = "  # noqa: S608 - names from the model
                f"{greatest}(free_at, hold_until, %s) + %s WHERE gateway = %s RETURNING free_at",
                [now, span, self.gateway],
            )
            row = cursor.fetchone()
        end = float(row[0]) if row else now + span
        return Slots(end - span, 1 / self.rate, count)

    def hold(self, seconds: float) -> float:
        """The provider asked everyone to wait ``seconds`` (a 429): returns the hold's end."""
        until = time.time() + max(seconds, 0.0)
        self._hold_at_least(until)
        return until

    def strike(self) -> float:
        """The provider failed as a whole: back off, longer each time in a row. Returns the
        hold's end."""
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {self._table} SET strikes = strikes + 1 "  # noqa: S608
                "WHERE gateway = %s RETURNING strikes",
                [self.gateway],
            )
            row = cursor.fetchone()
        until = time.time() + outage_backoff(int(row[0]) if row else 1)
        self._hold_at_least(until)
        return until

    def recovered(self) -> None:
        """A success: the next outage starts its back-off from the beginning."""
        GatewayPace.objects.filter(gateway=self.gateway, strikes__gt=0).update(strikes=0)

    def _hold_at_least(self, until: float) -> None:
        greatest = "GREATEST" if connection.vendor == "postgresql" else "MAX"
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {self._table} SET hold_until = {greatest}(hold_until, %s) "  # noqa: S608
                "WHERE gateway = %s",
                [until, self.gateway],
            )
