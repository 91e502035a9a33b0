"""``homelink worker``: django-tasks' database worker, after recovering the outbox.

Every option of ``db_worker`` applies. A worker that starts returns the deliveries of workers
that died (their leases ran out) to the queue and wakes the channels with work waiting, so
restarting workers after a crash, a deploy or a reboot is all it takes."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django_tasks_db.management.commands.db_worker import Command as DbWorkerCommand

from homelink.messaging.tasks import recover
from homelink.privacy.tasks import retention_schedule
from homelink.sync.tasks import sync_schedule


class Command(DbWorkerCommand):
    help = "Run a background worker (imports, syncs, messages) after recovering the outbox"

    def handle(self, *args: Any, **options: Any) -> None:
        recover()
        # The daily retention purge needs no cron: the worker keeps one sweep queued.
        retention_schedule()
        # Nor does the scheduled MIS sync: the first sweep at once, then every minute.
        sync_schedule(after=dt.timedelta(0))
        super().handle(*args, **options)
