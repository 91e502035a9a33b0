"""Imports asked for in the browser (``mis/runs.py``): each request commits before its task is
queued, a refusal keeps nothing, and a discarded file goes only with the commit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django_tasks_db.models import DBTaskResult

from homelink.audit.models import AuditEvent
from homelink.mis import runs
from homelink.mis.models import ImportRun
from homelink.mis.uploads import school_folder
from homelink.schools.models import School

CTF_PATH = Path(__file__).resolve().parent / "data" / "ctf_transfer_contacts_out_of_order.xml"


@pytest.fixture(autouse=True)
def _database_tasks_and_media(settings: Any, tmp_path: Path) -> None:
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def user(db: None) -> User:
    return User.objects.create_user("office@example.org", "office@example.org", "x")


def stored(school: School) -> list[Path]:
    folder = school_folder(school.pk)
    return sorted(folder.iterdir()) if folder.is_dir() else []


def ctf() -> SimpleUploadedFile:
    return SimpleUploadedFile(CTF_PATH.name, CTF_PATH.read_bytes())


def test_the_task_is_queued_by_id_once_the_request_commits(
    school: School, user: User, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        run = runs.import_upload(school=school, user=user, upload=ctf())
    assert run.status == ImportRun.Status.QUEUED and run.format == "ctf"
    assert not DBTaskResult.objects.exists()  # a worker could not see the request yet
    assert len(callbacks) == 1
    callbacks[0]()
    [task] = DBTaskResult.objects.all()
    assert task.task_path == "homelink.mis.tasks.run_console_import"
    assert task.args_kwargs["kwargs"] == {
        "school_id": school.pk,
        "run_id": run.pk,
        "upload": run.upload,
    }
    assert AuditEvent.objects.filter(action="import.uploaded", object_id=str(run.pk)).exists()


def test_a_mapping_with_a_file_that_is_not_a_csv_is_refused_and_nothing_kept(
    school: School, user: User
) -> None:
    mapping = SimpleUploadedFile("mapping.json", b'{"layout": "members", "columns": {}}')
    with pytest.raises(ValidationError) as refused:
        runs.import_upload(school=school, user=user, upload=ctf(), mapping=mapping)
    assert list(refused.value.message_dict) == ["mapping"]
    assert stored(school) == [] and not ImportRun.objects.exists()


def test_a_file_over_the_cap_is_refused_against_the_file(
    school: School, user: User, settings: Any
) -> None:
    settings.HOMELINK_IMPORT_MAX_BYTES = 10
    with pytest.raises(ValidationError) as refused:
        runs.import_upload(school=school, user=user, upload=ctf())
    assert list(refused.value.message_dict) == ["file"]
    assert stored(school) == []


def test_a_discarded_file_goes_with_the_commit_and_not_before(
    school: School, user: User, django_capture_on_commit_callbacks: Any
) -> None:
    run = runs.import_upload(school=school, user=user, upload=ctf())
    ImportRun.objects.filter(pk=run.pk).update(status=ImportRun.Status.PREVIEW)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        discarded = runs.import_discard(run=run, user=user)
    assert discarded.status == ImportRun.Status.DISCARDED and discarded.upload == ""
    assert len(stored(school)) == 1
    for callback in callbacks:
        callback()
    assert stored(school) == []
    with pytest.raises(ValidationError, match="cannot be discarded"):
        runs.import_discard(run=run, user=user)


def test_only_a_preview_or_a_stopped_run_is_applied(school: School, user: User) -> None:
    run = runs.import_upload(school=school, user=user, upload=ctf())
    with pytest.raises(ValidationError, match="can no longer be applied"):
        runs.import_apply(run=run, user=user)
    ImportRun.objects.filter(pk=run.pk).update(status=ImportRun.Status.STOPPED)
    with pytest.raises(ValidationError, match="confirm that these students have left"):
        runs.import_apply(run=run, user=user)
    apply = runs.import_apply(run=run, user=user, leavers_confirmed=True)
    assert apply.options["confirm_leavers"] is True and apply.options["dry_run"] is False
    run.refresh_from_db()
    assert run.followed_by == apply
    with pytest.raises(ValidationError, match="can no longer be applied"):
        runs.import_apply(run=run, user=user, leavers_confirmed=True)
