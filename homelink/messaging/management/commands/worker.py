"""``homelink worker``: django-tasks' database worker, after recovering the outbox.

Every option of ``db_worker`` applies. A worker that starts returns the deliveries of workers
that died (their leases ran out) to the queue and wakes the channels with work waiting, so
restarting workers after a crash, a deploy or a reboot is all it takes."""

from __future__ import annotations

from typing import Any

from django_tasks_db.management.commands.db_worker import Command as DbWorkerCommand

from homelink.messaging.tasks import recover
from homelink.privacy.tasks import retention_schedule


class Command(DbWorkerCommand):
    help = "Run a background worker (imports, messages) after recovering the outbox"

    def handle(self, *args: Any, **options: Any) -> None:
        recover()
        # The daily retention purge needs no cron: the worker keeps one sweep queued.
        retention_schedule()
        super().handle(*args, **options)
