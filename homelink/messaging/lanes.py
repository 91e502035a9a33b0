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

from django.db.models import F, Min, Value
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
    for group in groups:
        start = first_lane(group["channel"], group["priority"], now)
        placed += Delivery.objects.filter(
            message_id=group["message_id"],
            channel=group["channel"],
            priority=group["priority"],
            status=Status.QUEUED,
            lane__isnull=True,
        ).update(lane=Value(start - group["first"]) + F("id"))
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
