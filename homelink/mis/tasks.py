"""The import asked for in the browser, run by ``homelink worker`` (django-tasks).

A request is a ``queued`` :class:`~homelink.mis.models.ImportRun` (it holds no lock) made by
:mod:`homelink.mis.runs`. The task gets the request's id and the stored path, never objects, and
runs the import service on the file; the service makes its own run, which becomes the request's
``followed_by``, and the page of the request forwards to it. The stored file then passes to that
run if it may still act on it, or is deleted (:mod:`homelink.mis.uploads`).

django-tasks keeps this task's dotted path in each queued row: moving or renaming it needs a data
migration that points queued rows at the new path (console migrations 0005 and 0006).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django_tasks import task

from homelink.mis.models import ImportRun
from homelink.mis.records import Format, MisFormatError, ParsedFile
from homelink.mis.rules import ImportRefused
from homelink.mis.services import (
    ImportBusy,
    carried_options,
    detect_format,
    file_digest,
    import_parsed,
    open_mis_file,
)
from homelink.mis.uploads import (
    KEEPS_FILE,
    refused_as_another_schools,
    release_upload,
    stored_path,
    uploads_forget,
)

#: Progress is written to the run at most this often.
PROGRESS_INTERVAL = 0.5
#: What a run whose process stopped (a worker killed, a machine rebooted) says.
ABANDONED = "abandoned: the importing process stopped"


class _Progress:
    """The service's progress callback: (members so far, fraction read or None), throttled."""

    def __init__(self) -> None:
        self.run_id: int | None = None
        self.last = 0.0

    def __call__(self, count: int, fraction: float | None) -> None:
        now = time.monotonic()
        if self.run_id is None or now - self.last < PROGRESS_INTERVAL:
            return
        self.last = now
        ImportRun.objects.filter(pk=self.run_id).update(
            progress=None if fraction is None else max(0.0, min(1.0, fraction)),
            progress_count=count,
        )


@task()
def run_console_import(*, school_id: int, run_id: int, upload: str) -> str:
    """Carry out the queued request ``run_id``: a preview (dry run) or an apply of ``upload``."""
    return carry_out(school_id=school_id, run_id=run_id, upload=upload)


def carry_out(*, school_id: int, run_id: int, upload: str) -> str:
    """The task's work, also done in place by a scheduled sync (homelink/sync/services.py):
    the run it made is the request's ``followed_by``."""
    request = (
        ImportRun.objects.select_related("school", "started_by")
        .filter(pk=run_id, school_id=school_id, status=ImportRun.Status.QUEUED)
        .first()
    )
    if request is None or not upload or request.upload != upload:
        return "nothing to do"
    school = request.school
    path = stored_path(school_id, upload)
    mapping = stored_path(school_id, request.mapping_upload)
    if (
        path is None
        or not path.is_file()
        or (request.mapping_upload and (mapping is None or not mapping.is_file()))
    ):
        _request_failed(request, "the uploaded file is no longer on the server: upload it again")
        return "missing"
    options = request.options
    file_format = Format(request.format) if request.format else detect_format(path)
    progress = _Progress()

    def opener() -> ParsedFile:
        # The service calls this once it holds the school's import lock: the one running run
        # of the school is the run it made for this request.
        run = ImportRun.objects.get(school_id=school_id, status=ImportRun.Status.RUNNING)
        progress.run_id = run.pk
        ImportRun.objects.filter(pk=request.pk).update(followed_by=run)
        # A trust import's part of its file: only the school's own OneRoster org.
        return open_mis_file(path, file_format, mapping, org=str(options.get("org") or ""))

    error: BaseException | None = None
    try:
        import_parsed(
            school=school,
            opener=opener,
            file_format=file_format,
            file_name=request.file_name,
            digest=file_digest(path),
            mapping_name=str(options.get("mapping", "")),
            dry_run=bool(options.get("dry_run", True)),
            update_only=bool(options.get("update_only", False)),
            confirm_leavers=bool(options.get("confirm_leavers", False)),
            # Only ever True when an administrator chose "import it anyway" for this file.
            force=bool(options.get("force", False)),
            started_by=request.started_by,
            via=request.started_via,
            progress=progress,
            source=request.source,
            trigger=request.trigger,
            carried=carried_options(options),
        )
    except ImportBusy as busy:
        request.status = ImportRun.Status.FAILED
        request.error = str(busy)
        request.options = {**options, "busy": True}
        request.finished_at = timezone.now()
        request.save(update_fields=["status", "error", "options", "finished_at"])
        return "busy"
    except (MisFormatError, ImportRefused):
        pass  # recorded on the run: the page shows it
    except Exception as exc:  # recorded on the run too; the worker logs it
        error = exc
    if progress.run_id is None:
        _request_failed(request, "the import could not start; nothing changed")
    else:
        _settle(request, ImportRun.objects.get(pk=progress.run_id))
    if error is not None:
        raise error
    return "done"


def _request_failed(request: ImportRun, message: str) -> None:
    request.status = ImportRun.Status.FAILED
    request.error = message
    request.finished_at = timezone.now()
    request.save(update_fields=["status", "error", "finished_at"])
    release_upload(request.school_id, request.upload, request.mapping_upload)


def _settle(request: ImportRun, run: ImportRun) -> None:
    """After the service: the run names the user's files, not the stored ones; the stored file
    passes to the run if it may still be applied, else it is deleted."""
    names = {}
    for relative, original in (
        (request.upload, request.file_name),
        (request.mapping_upload, str(request.options.get("mapping", ""))),
    ):
        if relative:
            full = stored_path(request.school_id, relative)
            if full is not None:
                names[str(full)] = original
            names[Path(relative).name] = original
    run.error = _renamed(run.error, names)
    run.summary = _renamed(run.summary, names)
    run.data_issues = _renamed(run.data_issues, names)
    run.options = _renamed(run.options, names)
    # Another school's file keeps its file too: the page offers to import it anyway.
    keep = run.status in KEEPS_FILE or refused_as_another_schools(run)
    with transaction.atomic():
        if keep:
            # The file now belongs to this run alone: an older preview of it can no longer act.
            ImportRun.objects.filter(school_id=request.school_id, upload=request.upload).exclude(
                pk=run.pk
            ).update(upload="", mapping_upload="")
            run.upload, run.mapping_upload = request.upload, request.mapping_upload
        run.save(
            update_fields=["error", "summary", "data_issues", "options", "upload", "mapping_upload"]
        )
        ImportRun.objects.filter(pk=request.pk).update(followed_by=run, finished_at=timezone.now())
    if not keep:
        release_upload(request.school_id, request.upload, request.mapping_upload)


def _renamed(value: Any, names: dict[str, str]) -> Any:
    if not names:
        return value
    text = value if isinstance(value, str) else json.dumps(value)
    # Longest first, so that the full path goes before the bare name inside it.
    for stored in sorted(names, key=len, reverse=True):
        original = names[stored]
        text = text.replace(
            stored if isinstance(value, str) else json.dumps(stored)[1:-1],
            original if isinstance(value, str) else json.dumps(original)[1:-1],
        )
    return text if isinstance(value, str) else json.loads(text)


def imports_abandon(*, school_id: int) -> int:
    """Record the school's imports whose process stopped (a worker killed, a machine rebooted)
    as failed, and let their stored files go once the caller's transaction commits: a run
    ``running`` for longer than the import lock lives (HOMELINK_IMPORT_LOCK_SECONDS), and a
    request ``queued`` that long that a process had begun to carry out (its run was made, or it
    was carried out in place by a scheduled sync, ``options["in_place"]``) and no live run
    carries out now. Otherwise such a request would keep its stored copy of a whole MIS export
    for ever: nothing will carry it out again, and a file a run is at work on is never deleted.
    A request still waiting for a worker keeps its file. Called by the retention purge and the
    sync's sweep; how many runs."""
    now = timezone.now()
    stale = now - dt.timedelta(seconds=settings.HOMELINK_IMPORT_LOCK_SECONDS)
    live = ImportRun.objects.filter(status=ImportRun.Status.RUNNING, started_at__gte=stale)
    running = ImportRun.objects.filter(
        school_id=school_id, status=ImportRun.Status.RUNNING, started_at__lt=stale
    )
    # A request that was carried out stays queued, with its finish time (see _settle).
    begun = (
        ImportRun.objects.filter(
            school_id=school_id,
            status=ImportRun.Status.QUEUED,
            finished_at__isnull=True,
            started_at__lt=stale,
        )
        .filter(Q(followed_by__isnull=False) | Q(options__in_place=True))
        .exclude(followed_by__in=live)
    )
    with transaction.atomic():
        files = [
            name
            for pair in begun.exclude(upload="").values_list("upload", "mapping_upload")
            for name in pair
            if name
        ]
        count = running.update(status=ImportRun.Status.FAILED, error=ABANDONED, finished_at=now)
        count += begun.update(status=ImportRun.Status.FAILED, error=ABANDONED, finished_at=now)
        uploads_forget(school_id, files)
    return count
