"""The fair-share order of the outbox: each queued copy's *lane* (``Delivery.lane``).

Workers claim the copies of a channel most urgent first and then in lane order. A message's
copies take consecutive lanes starting where the queue's oldest due copy of the same channel and
priority stands (:func:`first_lane`), so a message queued while another is being sent is
interleaved with it, one copy for one: a school's 20-copy message waits for about 20 copies of
another school's 10,000, not for all of them. A scheduled message gets its lanes when its time
comes (:func:`place`), so it joins the queue as it then is. Copies put back (a retry, a hold,
a dead worker's lease) keep their lanes and so go first once due.
"""

from __future__ import annotations

import datetime as dt

from django.db import connection
from django.db.models import Min
from django.utils import timezone

from homelink.messaging.models import Delivery

Status = Delivery.Status


def _lowest_lane(channel: str, priority: int, now: dt.datetime, *, due: bool) -> int | None:
    queued = Delivery.objects.filter(
        status=Status.QUEUED, channel=channel, priority=priority, lane__isnull=False
    )
    if due:
        queued = queued.filter(next_attempt_at__lte=now)
    return queued.order_by("lane", "id").values_list("lane", flat=True).first()


def first_lane(channel: str, priority: int, now: dt.datetime) -> int:
    """Where a message queued now starts its lanes: at the oldest due copy of the same channel
    and priority (so it is interleaved with what is being sent), else at the oldest waiting
    one, else anywhere (nothing to share with)."""
    for due in (True, False):
        lane = _lowest_lane(channel, priority, now, due=due)
        if lane is not None:
            return lane
    return 0


def place(now: dt.datetime | None = None) -> int:
    """Give lanes to copies whose time has come without them: a scheduled message's (and any
    queued before lanes existed). Returns how many were placed."""
    now = now or timezone.now()
    unplaced = Delivery.objects.filter(
        status=Status.QUEUED, lane__isnull=True, next_attempt_at__lte=now
    )
    # Asked before every claim and nearly always "none": the cheapest question first.
    if not unplaced.exists():
        return 0
    groups = list(
        unplaced.values("message_id", "channel", "priority")
        .annotate(first=Min("id"))
        .order_by("priority", "first")
    )
    placed = 0
    table = connection.ops.quote_name(Delivery._meta.db_table)
    for group in groups:
        start = first_lane(group["channel"], group["priority"], now)
        # Consecutive lanes among this channel's copies (a message to both channels has its
        # ids interleaved: lanes from ids would give each channel every other lane, half a
        # share).
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} SET lane = %s + ranked.n FROM ("  # noqa: S608 - model names
                f"SELECT id, ROW_NUMBER() OVER (ORDER BY id) - 1 AS n FROM {table} "
                "WHERE message_id = %s AND channel = %s AND priority = %s "
                "AND status = 'queued' AND lane IS NULL) AS ranked "
                f"WHERE {table}.id = ranked.id",
                [start, group["message_id"], group["channel"], group["priority"]],
            )
            placed += cursor.rowcount
    return placed


def head_priority(channel: str, now: dt.datetime) -> int | None:
    """The priority of the most urgent copy of ``channel`` due now, if any."""
    return (
        Delivery.objects.filter(
            status=Status.QUEUED, channel=channel, lane__isnull=False, next_attempt_at__lte=now
        )
        .order_by("priority", "lane", "id")
        .values_list("priority", flat=True)
        .first()
    )
