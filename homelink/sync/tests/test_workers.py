"""Due syncs are started by the workers themselves, with no cron: four real ``homelink worker``
processes, started together against one due drop-folder sync, import it exactly once; on
SQLite and on PostgreSQL."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from homelink.bench.world import start_worker
from homelink.messaging.tests.test_delivery_under_load import wait_until
from homelink.mis.models import ImportRun
from homelink.register.models import Member
from homelink.schools.models import School
from homelink.sync.models import SyncSource
from homelink.sync.services import next_scheduled, sync_set_folder

pytestmark = pytest.mark.django_db(transaction=True)

CTF = (
    Path(__file__).resolve().parents[2]
    / "mis"
    / "tests"
    / "data"
    / "ctf_spaced_and_local_numbers.xml"
)
WORKERS = 4


def _environ(media: Path) -> dict[str, str]:
    db = connection.settings_dict
    if connection.vendor == "postgresql":
        url = (
            f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
        )
    else:
        url = f"sqlite:///{db['NAME']}"
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "homelink.settings",
        "DATABASE_URL": url,
        "TASKS_BACKEND": "django_tasks_db.DatabaseBackend",
        "MEDIA_ROOT": str(media),
        "HOMELINK_SYNC_SETTLE_SECONDS": "0",
        "HOMELINK_SYNC_SWEEP_SECONDS": "1",
    }


def test_four_workers_run_a_due_sync_exactly_once(
    school: School, settings: Any, tmp_path: Path
) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.HOMELINK_SYNC_SETTLE_SECONDS = 0
    folder = tmp_path / "drop"
    config = sync_set_folder(school=school, folder=folder, actor_label="test")
    shutil.copy(CTF, folder / "nightly.xml")
    due = timezone.now() - dt.timedelta(minutes=1)
    SyncSource.objects.filter(pk=config.pk).update(next_due_at=due)

    env = _environ(settings.MEDIA_ROOT)
    procs = [start_worker(env) for _ in range(WORKERS)]
    try:
        imported = wait_until(
            lambda: ImportRun.objects.filter(
                school=school, status=ImportRun.Status.APPLIED
            ).exists(),
            timeout=60,
            every=0.2,
        )
        # Several more sweeps by every worker: none may start the sync again.
        time.sleep(4)
    finally:
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait()
    assert imported
    runs = ImportRun.objects.filter(school=school).exclude(status=ImportRun.Status.QUEUED)
    assert [(r.status, r.source, r.trigger) for r in runs] == [
        (ImportRun.Status.APPLIED, "folder", "scheduled")
    ]
    assert Member.objects.filter(school=school).exists()
    assert (folder / "done" / "nightly.xml").is_file()
    config.refresh_from_db()
    assert config.last_success_at is not None
    assert config.next_due_at == next_scheduled(config.at, config.last_success_at)
