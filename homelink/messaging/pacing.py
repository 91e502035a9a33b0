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
from typing import Any

from django.conf import settings
from django.db import connection, transaction

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


def _db_now() -> str:
    """SQL for the database's clock in epoch seconds: the one clock every worker shares, so a
    worker whose own clock is off cannot push the pace or a hold into the future for all."""
    if connection.vendor == "postgresql":
        return "EXTRACT(EPOCH FROM clock_timestamp())"
    return "((julianday('now') - 2440587.5) * 86400.0)"


def _greatest() -> str:
    return "GREATEST" if connection.vendor == "postgresql" else "MAX"


def held_gateways() -> set[str]:
    """The gateways held right now (by a 429 or an outage's back-off)."""
    table = connection.ops.quote_name(GatewayPace._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT gateway FROM {table} WHERE hold_until > {_db_now()}")  # noqa: S608
        return {row[0] for row in cursor.fetchall()}


class Pace:
    """One gateway's shared pace, as this worker sees it. Times in the table are the
    database's clock; what this class returns is in this worker's ``time.time()``."""

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

    def _run(self, sql: str, params: list[Any]) -> tuple[float, float]:
        """Run ``sql`` (which returns a time and the database's clock); that time on this
        worker's clock."""
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
        local = time.time()
        if row is None:
            return local, local
        when, db_now = float(row[0]), float(row[1])
        return when - db_now + local, local

    def held_until(self) -> float:
        """Until when the gateway is held (this worker's clock; in the past when it is not)."""
        return self._run(
            f"SELECT hold_until, {_db_now()} FROM {self._table} WHERE gateway = %s",  # noqa: S608
            [self.gateway],
        )[0]

    def reserve(self, count: int) -> Slots:
        """Reserve ``count`` slots, starting at the first free one (never before now or the
        hold's end). Unpaced, the slots are all "now or the hold's end"."""
        if not self.paced:
            return Slots(max(time.time(), self.held_until()), 0.0, count)
        span = count / self.rate
        now = _db_now()
        end, _local = self._run(
            f"UPDATE {self._table} SET free_at = "  # noqa: S608 - names from the model
            f"{_greatest()}(free_at, hold_until, {now}) + %s WHERE gateway = %s "
            f"RETURNING free_at, {now}",
            [span, self.gateway],
        )
        return Slots(end - span, 1 / self.rate, count)

    def hold(self, seconds: float) -> float:
        """The provider asked everyone to wait ``seconds`` (a 429): returns the hold's end."""
        now = _db_now()
        return self._run(
            f"UPDATE {self._table} SET hold_until = "  # noqa: S608
            f"{_greatest()}(hold_until, {now} + %s) WHERE gateway = %s "
            f"RETURNING hold_until, {now}",
            [max(seconds, 0.0), self.gateway],
        )[0]

    def strike(self) -> float:
        """The provider failed as a whole: back off, longer each time in a row, unless the
        gateway is held already (other workers saw the same outage: one outage, one strike).
        Returns the hold's end."""
        lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(
                    f"SELECT strikes, hold_until, {_db_now()} FROM {self._table} "  # noqa: S608
                    f"WHERE gateway = %s{lock}",
                    [self.gateway],
                )
                row = cursor.fetchone()
            if row is None:
                return time.time()
            strikes, held, db_now = int(row[0]), float(row[1]), float(row[2])
            if held <= db_now:
                strikes += 1
                held = db_now + outage_backoff(strikes)
                GatewayPace.objects.filter(gateway=self.gateway).update(
                    strikes=strikes, hold_until=held
                )
        return held - db_now + time.time()

    def recovered(self) -> None:
        """A success: the next outage starts its back-off from the beginning."""
        GatewayPace.objects.filter(gateway=self.gateway, strikes__gt=0).update(strikes=0)
