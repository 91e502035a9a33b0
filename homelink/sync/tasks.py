"""The worker's side of scheduled sync, without cron (:mod:`homelink.periodic`).

``homelink worker`` queues a sweep when it starts; each sweep clears up after sync runs whose
process stopped (:func:`~homelink.sync.services.sync_release_abandoned`), claims the syncs that
are due (:func:`~homelink.sync.services.sync_claim_due`: with several workers, each due sync is
claimed by exactly one), queues a :func:`run_sync` for each, brings the state of syncs whose
stopped file an administrator applied up to date
(:func:`~homelink.sync.services.sync_note_decisions`), emails the administrators of schools
whose sync has gone stale (once: :func:`~homelink.sync.alerts.sync_alert_stale`), and queues
the next sweep. Tasks get ids, never objects.
"""

from __future__ import annotations

import datetime as dt
from functools import partial

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django_tasks import task

from homelink.mis.models import ImportRun
from homelink.periodic import queue_next
from homelink.schools.models import School


@task()
def run_sync(
    *, school_id: int, trigger: str = ImportRun.Trigger.SCHEDULED, user_id: int | None = None
) -> str:
    """Run one school's sync; returns the run's status."""
    from homelink.sync.services import sync_run

    school = School.objects.filter(pk=school_id).first()
    if school is None or not hasattr(school, "sync"):
        return "no sync"
    user = get_user_model().objects.filter(pk=user_id).first() if user_id else None
    return sync_run(school=school, trigger=trigger, user=user).status


@task()
def sync_sweep() -> int:
    """Start every due sync and send the staleness alerts; returns how many syncs started."""
    from homelink.sync.alerts import sync_alert_stale
    from homelink.sync.services import (
        sync_claim_due,
        sync_note_decisions,
        sync_release_abandoned,
    )

    try:
        # Runs whose worker died first: their lease must not hold up the runs claimed now.
        sync_release_abandoned()
        with transaction.atomic():
            claimed = sync_claim_due()
            for school_id in claimed:
                transaction.on_commit(partial(run_sync.enqueue, school_id=school_id))
        sync_note_decisions()
        sync_alert_stale()
        return len(claimed)
    finally:
        sync_schedule()


def sync_schedule(*, after: dt.timedelta | None = None) -> bool:
    """Queue the next sweep unless one is waiting."""
    every = dt.timedelta(seconds=settings.HOMELINK_SYNC_SWEEP_SECONDS)
    return queue_next(sync_sweep, after=every if after is None else after)
