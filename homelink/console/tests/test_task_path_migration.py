"""An import queued before an upgrade that moved the import task still runs after it: django-tasks
keeps the task's dotted path in its queue, and migrations 0005 and 0006 point queued rows at
where the task lives now (``homelink.mis.tasks``)."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django_tasks_db.models import DBTaskResult

from homelink.mis import runs
from homelink.mis.models import ImportRun
from homelink.schools.models import School

CTF_PATH = (
    Path(__file__).resolve().parents[2]
    / "mis"
    / "tests"
    / "data"
    / "ctf_transfer_contacts_out_of_order.xml"
)
MOVES = [
    importlib.import_module(f"homelink.console.migrations.{name}")
    for name in ("0005_import_task_path", "0006_import_task_to_mis")
]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("queued_at", [m.OLD for m in MOVES])
def test_an_import_queued_before_the_move_runs_after_it(
    school: School, settings: Any, tmp_path: Path, queued_at: str
) -> None:
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    settings.MEDIA_ROOT = tmp_path / "media"
    user = User.objects.create_user("office@example.org", "office@example.org", "x")
    upload = SimpleUploadedFile(CTF_PATH.name, CTF_PATH.read_bytes())
    request = runs.import_upload(school=school, user=user, upload=upload)
    # As the older release queued it.
    DBTaskResult.objects.update(task_path=queued_at)

    for migration in MOVES:
        migration.forwards(apps, None)
    assert set(DBTaskResult.objects.values_list("task_path", flat=True)) == {MOVES[-1].NEW}
    call_command("db_worker", "--batch", "--no-startup-delay", verbosity=0)

    request.refresh_from_db()
    assert request.followed_by is not None
    assert request.followed_by.status == ImportRun.Status.PREVIEW


def test_the_newest_move_points_at_the_task_itself() -> None:
    from homelink.mis.tasks import run_console_import

    assert run_console_import.module_path == MOVES[-1].NEW
    assert MOVES[-1].OLD == MOVES[0].NEW


@pytest.mark.django_db
def test_a_move_undone_points_the_rows_back() -> None:
    DBTaskResult.objects.create(task_path=MOVES[-1].NEW, args_kwargs={"args": [], "kwargs": {}})
    MOVES[-1].backwards(apps, None)
    assert DBTaskResult.objects.get().task_path == MOVES[-1].OLD
