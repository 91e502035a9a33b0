"""The daily retention purge, without cron: a sweep task that re-enqueues itself.

``homelink worker`` calls :func:`retention_schedule` when it starts, which queues a sweep unless
one is already waiting; each sweep purges the schools whose last purge is a day old (claimed one
by one, so several workers never purge a school twice: :func:`~homelink.privacy.retention.
retention_run_due`) and queues the next sweep an hour later. Two sweeps queued at once (two
workers starting together) merge back into one chain: a sweep queues its successor only when no
other is waiting.
"""

from __future__ import annotations

import datetime as dt

from django.utils import timezone
from django_tasks import task
from django_tasks.base import TaskResultStatus

from homelink.privacy.retention import retention_run_due

#: How often the sweep looks for schools whose daily purge is due.
SWEEP_EVERY = dt.timedelta(hours=1)
#: The first sweep after a worker starts waits a little: a worker started for a moment (a
#: deploy, a test) does not purge on its way.
FIRST_SWEEP_AFTER = dt.timedelta(minutes=10)


@task()
def retention_sweep() -> int:
    """Purge every school that is due; returns how many were purged."""
    try:
        return len(retention_run_due())
    finally:
        retention_schedule(after=SWEEP_EVERY)


def _waiting() -> bool:
    """Whether a sweep is already queued (only the database backend can tell)."""
    from django_tasks_db.backend import DatabaseBackend
    from django_tasks_db.models import DBTaskResult

    if not isinstance(retention_sweep.get_backend(), DatabaseBackend):
        return False
    return DBTaskResult.objects.filter(
        task_path=retention_sweep.module_path, status=TaskResultStatus.READY
    ).exists()


def retention_schedule(*, after: dt.timedelta = FIRST_SWEEP_AFTER) -> bool:
    """Queue the next sweep unless one is waiting; False where the task backend cannot run a
    task later (then the purge is the command's to run)."""
    if not retention_sweep.get_backend().supports_defer or _waiting():
        return False
    retention_sweep.using(run_after=timezone.now() + after).enqueue()
    return True
