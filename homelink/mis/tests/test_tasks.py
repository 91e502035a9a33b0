"""The worker's import task (``mis/tasks.py``): what it refuses to act on, and its progress."""

from __future__ import annotations

import time
from pathlib import Path

from homelink.mis.models import ImportRun
from homelink.mis.tasks import _Progress, run_console_import
from homelink.schools.models import School

CTF_PATH = Path(__file__).resolve().parent / "data" / "ctf_transfer_contacts_out_of_order.xml"


def test_the_task_ignores_a_path_that_is_not_the_requests(school: School) -> None:
    run = ImportRun.objects.create(
        school=school,
        file_name=CTF_PATH.name,
        digest="",
        format="ctf",
        status=ImportRun.Status.QUEUED,
        upload=f"imports/{school.pk}/abc.xml",
        options={"dry_run": True},
    )
    result = run_console_import.call(school_id=school.pk, run_id=run.pk, upload=str(CTF_PATH))
    assert result == "nothing to do"
    run.refresh_from_db()
    assert run.status == ImportRun.Status.QUEUED


def test_progress_is_stored_at_most_twice_a_second(school: School) -> None:
    run = ImportRun.objects.create(school=school, file_name="x.xml", digest="", format="ctf")
    progress = _Progress()
    progress.run_id = run.pk
    progress(200, 0.25)
    progress(400, 0.5)  # too soon: skipped
    run.refresh_from_db()
    assert (run.progress_count, run.progress) == (200, 0.25)
    progress.last = time.monotonic() - 1
    progress(600, None)
    run.refresh_from_db()
    assert (run.progress_count, run.progress) == (600, None)
