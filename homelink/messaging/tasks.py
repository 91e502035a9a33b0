"""The outbox's background tasks, run by ``homelink worker`` (django-tasks' database backend).

A send wakes :data:`chains` tasks. Each task drains every channel, most urgent first, for up to
a minute, then enqueues one follow-up for when there is next something to do (more due work, a
retry's back-off, a scheduled send, a gateway's hold ending, or the end of another worker's
lease, to reap it should that worker have died); a run that fails enqueues one for a little
later. So work never waits for a wake-up that is lost with a killed worker or a failed run, and
the number of tasks stays bounded by the number of wake-ups. ``homelink worker`` also recovers
at start-up, for when every worker died at once.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.utils import timezone
from django_tasks import task

from homelink.messaging.dispatch import drain, next_work_at, reap
from homelink.messaging.models import Message

#: Tasks run in priority order: urgent wake-ups overtake queued bulk ones in the task queue too.
URGENT_PRIORITY, BULK_PRIORITY = 50, 0


def chains() -> int:
    return int(settings.HOMELINK_DELIVERY_CONCURRENCY)


#: How long a chain waits after a run that failed (a lost connection, a lock timeout) before
#: it tries again: long enough that a fault that stays does not spin the worker.
RETRY_AFTER_ERROR = dt.timedelta(seconds=30)


#: Tasks queued before every task served every channel named one; it is no longer needed.
ANY_CHANNEL = ""


@task()
def deliver(channel: str = ANY_CHANNEL) -> int:
    """Send whatever is most urgent on any channel (``channel`` is kept for tasks queued by an
    earlier version, which named one)."""
    try:
        claimed = drain()
    except Exception:
        # The chain goes on: ended here, the queue would wait for the next send or a restart.
        deliver.using(run_after=timezone.now() + RETRY_AFTER_ERROR).enqueue()
        raise
    follow_up()
    return claimed


def follow_up() -> None:
    when = next_work_at()
    if when is None:
        return
    now = timezone.now()
    # A second of slack past a lease's end, so the follow-up finds it expired.
    run_after = when + dt.timedelta(seconds=1) if when > now else None
    deliver.using(run_after=run_after).enqueue()


def wake(*, count: int = 1, at: dt.datetime | None = None, urgent: bool = False) -> None:
    now = timezone.now()
    run_after = at if at is not None and at > now else None
    priority = URGENT_PRIORITY if urgent else BULK_PRIORITY
    for _ in range(count):
        deliver.using(run_after=run_after, priority=priority).enqueue()


def wake_for_message(message_id: int) -> None:
    message = Message.objects.filter(pk=message_id).first()
    if message is None or message.status == Message.Status.CANCELLED:
        return
    copies = message.sms_count + message.email_count
    if copies:
        wake(count=min(chains(), copies), at=message.send_at, urgent=message.urgent)


def recover() -> int:
    """At a worker's start: return dead workers' deliveries and wake the queue if it has work."""
    returned = reap()
    when = next_work_at()
    if when is not None:
        wake(count=chains(), at=when)
    return returned
