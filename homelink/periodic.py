"""Work the workers do on a clock, without cron: a task that queues its own next run.

``homelink worker`` queues each periodic task when it starts unless one is already waiting; each
run queues the next. Two queued at once (two workers starting together) merge back into one
chain, since a run queues its successor only when no other is waiting.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.utils import timezone
from django_tasks.base import TaskResultStatus


def waiting(task: Any) -> bool:
    """Whether a run of ``task`` is already queued (only the database backend can tell)."""
    from django_tasks_db.backend import DatabaseBackend
    from django_tasks_db.models import DBTaskResult

    if not isinstance(task.get_backend(), DatabaseBackend):
        return False
    return DBTaskResult.objects.filter(
        task_path=task.module_path, status=TaskResultStatus.READY
    ).exists()


def queue_next(task: Any, *, after: dt.timedelta) -> bool:
    """Queue a run of ``task`` in ``after`` unless one is waiting; False where the task backend
    cannot run a task later (then the work is a command's to run)."""
    if not task.get_backend().supports_defer or waiting(task):
        return False
    task.using(run_after=timezone.now() + after).enqueue()
    return True
