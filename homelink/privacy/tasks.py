"""The daily retention purge, without cron: a sweep task that re-enqueues itself
(:mod:`homelink.periodic`).

``homelink worker`` calls :func:`retention_schedule` when it starts; each sweep purges the
schools whose last purge is a day old (claimed one by one, so several workers never purge a
school twice: :func:`~homelink.privacy.retention.retention_run_due`) and queues the next sweep
an hour later.
"""

from __future__ import annotations

import datetime as dt

from django_tasks import task

from homelink.periodic import queue_next
from homelink.privacy.retention import retention_run_due

#: How often the sweep looks for schools whose daily purge is due.
SWEEP_EVERY = dt.timedelta(hours=1)
#: The first sweep after a worker starts waits a little: a worker started for a moment (a
#: deploy, a test) does not purge on its way.
FIRST_SWEEP_AFTER = dt.timedelta(minutes=10)


@task()
def retention_sweep() -> int:
    """Purge every school that is due; returns how many were purged."""
    from homelink.trusts.imports import trust_uploads_sweep

    try:
        # A trust's whole-trust export left unstarted is every one of its schools' data.
        trust_uploads_sweep()
        return len(retention_run_due())
    finally:
        retention_schedule(after=SWEEP_EVERY)


def retention_schedule(*, after: dt.timedelta = FIRST_SWEEP_AFTER) -> bool:
    """Queue the next sweep unless one is waiting (:func:`homelink.periodic.queue_next`)."""
    return queue_next(retention_sweep, after=after)
