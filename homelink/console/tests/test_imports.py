"""Imports in the browser: upload, the background preview, apply or discard, the history.

The pages queue the worker's task once their request has committed (``mis/runs.py``), so these
tests commit as a request does (a transactional database): the immediate backend then runs the
task where the worker would.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from homelink.audit.models import AuditEvent
from homelink.mis.models import ImportRun
from homelink.mis.tasks import run_console_import
from homelink.mis.tests.factories import pupil, run_import
from homelink.mis.uploads import school_folder
from homelink.register.models import Member
from homelink.schools.models import School

# A SIMS transfer-in for `school`, written to carry a real file's quirks (mis/tests/data/README.md).
CTF = "ctf_transfer_contacts_out_of_order.xml"
CTF_PATH = Path(__file__).resolve().parents[2] / "mis" / "tests" / "data" / CTF
HOSTILE = (
    b'<?xml version="1.0"?><!DOCTYPE CTfile [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    b"<CTfile><Header>&x;</Header></CTfile>"
)


pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _immediate_tasks_and_media(settings, tmp_path: Path) -> None:
    """Tasks run in the request that queues them; uploads go to a fresh folder."""
    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}
    settings.MEDIA_ROOT = tmp_path / "media"


def url(name: str, school: School, run: ImportRun | None = None) -> str:
    kwargs: dict[str, Any] = {"urn": school.urn}
    if run is not None:
        kwargs["run_id"] = run.pk
    return reverse(f"console:{name}", kwargs=kwargs)


def stored_files(school: School) -> list[Path]:
    folder = school_folder(school.pk)
    return sorted(folder.iterdir()) if folder.is_dir() else []


def upload(client: Client, school: School, name: str, content: bytes, **data: Any) -> Any:
    return client.post(
        url("imports", school),
        {"file": SimpleUploadedFile(name, content), **data},
        follow=True,
    )


def ctf_bytes() -> bytes:
    return CTF_PATH.read_bytes()


def latest(school: School) -> ImportRun:
    return ImportRun.objects.filter(school=school).latest("pk")


def test_upload_preview_then_apply(client, school, admin_a):
    client.force_login(admin_a)
    response = upload(client, school, CTF, ctf_bytes())

    assert response.status_code == 200
    run = latest(school)
    assert response.redirect_chain[-1][0] == url("import_run", school, run)
    assert run.status == ImportRun.Status.PREVIEW
    assert run.file_name == CTF
    assert run.started_via == "console"
    assert run.started_by == admin_a
    assert run.summary["students"]["created"] == 2
    page = response.content.decode()
    assert "Preview ready" in page
    assert "Apply this import" in page and "Discard" in page
    assert "2 created" in page
    assert "Alfie Marchbank" in page  # the itemised details
    assert "plans against the register as it is then" in page
    assert Member.objects.filter(school=school).count() == 0  # a preview writes nothing
    # The file is kept, under a random name (never the user's), for the apply.
    [stored] = stored_files(school)
    assert stored.name != CTF and stored.suffix == ".xml"
    assert run.upload == f"imports/{school.pk}/{stored.name}"
    # The request the worker took up is not listed twice: the history shows the run.
    history = client.get(url("imports", school)).content.decode()
    assert history.count(CTF) == 1
    assert AuditEvent.objects.filter(school=school, action="import.uploaded").count() == 1

    response = client.post(url("import_apply", school, run), follow=True)

    applied = latest(school)
    assert applied.status == ImportRun.Status.APPLIED
    assert applied.options["dry_run"] is False
    assert response.redirect_chain[-1][0] == url("import_run", school, applied)
    assert "Applied" in response.content.decode()
    assert Member.objects.filter(school=school, kind=Member.Kind.STUDENT).count() == 2
    assert stored_files(school) == []
    run.refresh_from_db()
    assert run.upload == "" and run.followed_by is not None
    # A preview cannot be applied twice.
    response = client.post(url("import_apply", school, run))
    assert response.status_code == 303
    assert ImportRun.objects.filter(school=school, status=ImportRun.Status.APPLIED).count() == 1


def test_discard_deletes_the_file_and_writes_nothing(client, school, admin_a):
    client.force_login(admin_a)
    upload(client, school, CTF, ctf_bytes())
    run = latest(school)
    assert len(stored_files(school)) == 1

    response = client.post(url("import_discard", school, run), follow=True)

    run.refresh_from_db()
    assert run.status == ImportRun.Status.DISCARDED
    assert run.upload == ""
    assert stored_files(school) == []
    assert "was discarded" in response.content.decode()
    assert Member.objects.filter(school=school).count() == 0
    assert AuditEvent.objects.filter(school=school, action="import.discarded").exists()
    # Nothing left to apply.
    assert client.post(url("import_apply", school, run)).status_code == 303
    assert not ImportRun.objects.filter(school=school, status=ImportRun.Status.APPLIED).exists()


def test_a_hostile_file_fails_with_the_message_and_writes_nothing(client, school, admin_a):
    client.force_login(admin_a)
    response = upload(client, school, "export.xml", HOSTILE)

    run = latest(school)
    assert run.status == ImportRun.Status.FAILED
    assert "DOCTYPE" in run.error
    page = response.content.decode()
    assert "The import failed" in page and "DOCTYPE" in page
    assert Member.objects.filter(school=school).count() == 0
    assert stored_files(school) == []
    assert "Apply this import" not in page


def test_errors_name_the_users_file_not_the_stored_one(client, school, admin_a):
    client.force_login(admin_a)
    upload(client, school, "pupils.csv", b'UPN,Forename,Surname\n"A1,Ann,Smith\n')

    run = latest(school)
    assert run.status == ImportRun.Status.FAILED
    assert "pupils.csv" in run.error
    assert "imports/" not in run.error


def test_a_viewer_sees_the_history_but_cannot_upload_apply_or_discard(
    client, school, admin_a, viewer_a
):
    client.force_login(admin_a)
    upload(client, school, CTF, ctf_bytes())
    run = latest(school)

    client.force_login(viewer_a)
    page = client.get(url("imports", school))
    assert page.status_code == 200
    assert "Upload and preview" not in page.content.decode()
    preview = client.get(url("import_run", school, run)).content.decode()
    assert "Apply this import" not in preview
    before = ImportRun.objects.count()
    response = client.post(url("imports", school), {"file": SimpleUploadedFile(CTF, b"<x/>")})
    assert response.status_code == 403
    assert client.post(url("import_apply", school, run)).status_code == 403
    assert client.post(url("import_discard", school, run)).status_code == 403
    assert ImportRun.objects.count() == before
    assert len(stored_files(school)) == 1


def test_another_import_running_is_recorded_and_can_be_retried(client, school, admin_a):
    lock = ImportRun.objects.create(school=school, file_name="cli.xml", digest="", format="ctf")
    client.force_login(admin_a)
    response = upload(client, school, CTF, ctf_bytes())

    run = latest(school)
    assert run.status == ImportRun.Status.FAILED and run.options["busy"] is True
    assert "Another import is running" in response.content.decode()
    assert len(stored_files(school)) == 1  # kept for the retry

    lock.status = ImportRun.Status.APPLIED
    lock.save()
    response = client.post(url("import_retry", school, run), follow=True)

    preview = latest(school)
    assert preview.status == ImportRun.Status.PREVIEW
    assert "Preview ready" in response.content.decode()


def test_the_leavers_guard_stops_and_applies_only_when_confirmed(client, school, admin_a):
    run_import(school, [pupil(f"K{n:012d}", "Pupil", f"N{n}") for n in range(12)])
    client.force_login(admin_a)
    csv = b"UPN,Forename,Surname,Year\nK000000000000,Pupil,N0,7\n"
    response = upload(client, school, "roll.csv", csv)

    stopped = latest(school)
    assert stopped.status == ImportRun.Status.STOPPED
    page = response.content.decode()
    assert "11 students would be marked as left" in page
    assert "Apply anyway, marking them left" in page
    assert Member.objects.filter(school=school, status="left").count() == 0

    # Without the tick box: refused, nothing queued.
    assert client.post(url("import_apply", school, stopped)).status_code == 303
    assert latest(school) == stopped

    response = client.post(
        url("import_apply", school, stopped), {"confirm_leavers": "1"}, follow=True
    )

    applied = latest(school)
    assert applied.status == ImportRun.Status.APPLIED
    assert applied.options["confirm_leavers"] is True
    assert Member.objects.filter(school=school, status="left").count() == 11
    assert stored_files(school) == []


def test_update_only_marks_nobody_left(client, school, admin_a):
    run_import(school, [pupil(f"K{n:012d}", "Pupil", f"N{n}") for n in range(12)])
    client.force_login(admin_a)
    csv = b"UPN,Forename,Surname,Year\nK000000000000,Pupil,N0,7\n"
    upload(client, school, "roll.csv", csv, update_only="on")
    run = latest(school)
    assert run.status == ImportRun.Status.PREVIEW
    assert run.options["update_only"] is True
    client.post(url("import_apply", school, run))
    assert latest(school).options["update_only"] is True
    assert Member.objects.filter(school=school, status="left").count() == 0


def test_a_csv_with_a_mapping(client, school, admin_a):
    client.force_login(admin_a)
    csv = b"Pupil UPN,Given,Family\nM000000000001,Ann,Smith\n"
    mapping = (
        b'{"layout": "members", "columns": '
        b'{"Pupil UPN": "upn", "Given": "forename", "Family": "surname"}}'
    )
    upload(
        client,
        school,
        "pupils.csv",
        csv,
        mapping=SimpleUploadedFile("mine.json", mapping),
        update_only="on",
    )
    run = latest(school)
    assert run.status == ImportRun.Status.PREVIEW, run.error
    assert run.options["mapping"] == "mine.json"
    assert run.summary["students"]["created"] == 1
    assert len(stored_files(school)) == 2
    client.post(url("import_apply", school, run))
    assert Member.objects.get(school=school).surname == "Smith"
    assert stored_files(school) == []


def test_a_mapping_is_only_for_csv(client, school, admin_a):
    client.force_login(admin_a)
    response = client.post(
        url("imports", school),
        {
            "file": SimpleUploadedFile(CTF, ctf_bytes()),
            "mapping": SimpleUploadedFile("m.json", b"{}"),
        },
    )
    assert response.status_code == 400
    assert "only for CSV" in response.content.decode()
    assert not ImportRun.objects.filter(school=school).exists()
    assert stored_files(school) == []


def test_files_over_the_cap_are_refused_clearly(client, school, admin_a, settings):
    settings.HOMELINK_IMPORT_MAX_BYTES = 100
    client.force_login(admin_a)
    response = client.post(
        url("imports", school), {"file": SimpleUploadedFile("big.csv", b"x" * 101)}
    )
    assert response.status_code == 400
    assert "the largest import accepted is 100" in response.content.decode()
    assert not ImportRun.objects.filter(school=school).exists()
    assert stored_files(school) == []


def test_the_users_file_name_is_never_a_path(client, school, admin_a, settings):
    client.force_login(admin_a)
    upload(client, school, "../../../etc/evil.xml", ctf_bytes())
    run = latest(school)
    [stored] = stored_files(school)
    assert "evil" not in stored.name
    assert stored.parent == Path(settings.MEDIA_ROOT) / "imports" / str(school.pk)
    assert run.file_name.endswith("evil.xml") and "/" not in run.file_name


def test_a_queued_request_waits_and_refreshes(client, school, admin_a, settings):
    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.dummy.DummyBackend"}}
    client.force_login(admin_a)
    response = upload(client, school, CTF, ctf_bytes())

    run = latest(school)
    assert run.status == ImportRun.Status.QUEUED
    assert "Waiting for the import worker" in response.content.decode()
    assert response["Refresh"] == "2"
    history = client.get(url("imports", school)).content.decode()
    assert "Waiting for the worker" in history

    # The worker's turn: the task gets ids and the stored path.
    run_console_import.call(school_id=school.pk, run_id=run.pk, upload=run.upload)
    response = client.get(url("import_run", school, run), follow=True)
    assert response.redirect_chain  # the request forwards to the run it became
    assert "Preview ready" in response.content.decode()
    assert "Refresh" not in response


def test_the_page_shows_the_progress_the_worker_stored(client, school, admin_a):
    run = ImportRun.objects.create(
        school=school,
        file_name="x.xml",
        digest="",
        format="ctf",
        progress=0.4,
        progress_count=600,
    )
    client.force_login(admin_a)
    response = client.get(url("import_run", school, run))
    page = response.content.decode()
    assert "40%" in page and "600 members read so far" in page
    assert response["Refresh"] == "2"


def test_history_is_paginated_latest_first(client, school, viewer_a):
    for n in range(30):
        ImportRun.objects.create(
            school=school,
            file_name=f"file{n:02d}.xml",
            digest="",
            format="ctf",
            status=ImportRun.Status.APPLIED,
            summary={"students": {"created": n}},
        )
    client.force_login(viewer_a)
    page = client.get(url("imports", school)).content.decode()
    assert "file05.xml" in page and "file04.xml" not in page
    assert page.index("file29.xml") < page.index("file28.xml")
    assert "Page 1 of 2" in page
    assert "file00.xml" in client.get(url("imports", school) + "?page=2").content.decode()


def test_the_database_worker_runs_the_preview_and_the_apply(client, school, admin_a, settings):
    """The real backend: the page queues a task row; ``homelink db_worker --batch`` runs it."""
    from django.core.management import call_command

    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    client.force_login(admin_a)
    upload(client, school, CTF, ctf_bytes())
    request = latest(school)
    assert request.status == ImportRun.Status.QUEUED

    call_command("db_worker", "--batch", "--no-startup-delay", verbosity=0)

    response = client.get(url("import_run", school, request), follow=True)
    assert "Preview ready" in response.content.decode()
    preview = latest(school)
    client.post(url("import_apply", school, preview))
    call_command("db_worker", "--batch", "--no-startup-delay", verbosity=0)
    assert latest(school).status == ImportRun.Status.APPLIED
    assert Member.objects.filter(school=school).count() == 2
    assert stored_files(school) == []
