"""The console's background work: imports uploaded in the browser, run by ``homelink worker``.

An upload is stored under ``MEDIA_ROOT/imports/<school pk>/<random name>`` and recorded as a
``queued`` :class:`~homelink.mis.models.ImportRun` (the *request*: it holds no lock). The task
gets the request's id and the stored path, never objects, and runs the import service on the
file; the service makes its own run, which becomes the request's ``followed_by``, and the page of
the request forwards to it. The stored file belongs to the newest run that may still act on it (a
preview, a stopped run, a request that found the school busy, a file refused as another
school's, which an administrator may still import anyway); it is deleted once applied, failed or
discarded.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils import timezone
from django_tasks import task

from homelink.console.imports.forms import max_upload_bytes
from homelink.mis.models import ImportRun
from homelink.mis.records import Format, MisFormatError, ParsedFile
from homelink.mis.rules import ImportRefused
from homelink.mis.services import (
    ImportBusy,
    detect_format,
    file_digest,
    import_parsed,
    open_mis_file,
)
from homelink.schools.models import School

logger = logging.getLogger(__name__)

#: Suffixes kept on a stored file (they help format detection); anything else is dropped.
KEPT_SUFFIXES = {".xml", ".zip", ".csv", ".txt", ".tsv", ".json"}
#: Progress is written to the run at most this often.
PROGRESS_INTERVAL = 0.5
#: A run the console may still act on keeps its file.
KEEPS_FILE = {ImportRun.Status.PREVIEW, ImportRun.Status.STOPPED}


class UploadTooLarge(Exception):
    """The upload grew past the cap while it was being stored."""


# --- the stored files --------------------------------------------------------------------------


def school_folder(school_id: int) -> Path:
    return Path(settings.MEDIA_ROOT) / "imports" / str(school_id)


def store_upload(school: School, upload: UploadedFile, *, cap: int | None = None) -> str:
    """Write the upload under the school's folder with a random name; return its path relative
    to MEDIA_ROOT. The user's file name is never part of the path (only a known suffix)."""
    cap = max_upload_bytes() if cap is None else cap
    folder = school_folder(school.pk)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    suffix = Path(upload.name or "").suffix.lower()
    name = secrets.token_hex(16) + (suffix if suffix in KEPT_SUFFIXES else "")
    target = folder / name
    written = 0
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in upload.chunks():
                written += len(chunk)
                if written > cap:
                    raise UploadTooLarge
                out.write(chunk)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return f"imports/{school.pk}/{name}"


def stored_path(school_id: int, relative: str) -> Path | None:
    """The stored file's path, or None when ``relative`` is not one of the school's uploads."""
    if not relative:
        return None
    folder = school_folder(school_id).resolve()
    path = (Path(settings.MEDIA_ROOT) / relative).resolve()
    if path.parent != folder:
        return None
    return path


def delete_uploads(school_id: int, relatives: Iterable[str]) -> None:
    for relative in relatives:
        path = stored_path(school_id, relative)
        if path is not None:
            path.unlink(missing_ok=True)


def release_upload(school_id: int, upload: str, mapping_upload: str) -> None:
    """Delete a stored file (and its mapping) and forget it on every run that named it."""
    if upload:
        ImportRun.objects.filter(school_id=school_id, upload=upload).update(
            upload="", mapping_upload=""
        )
    delete_uploads(school_id, [upload, mapping_upload])


# --- the task ----------------------------------------------------------------------------------


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
        return open_mis_file(path, file_format, mapping)

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
            via="console",
            progress=progress,
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


def refused_as_another_schools(run: ImportRun) -> bool:
    """A run refused because the file names another school (which may be imported anyway)."""
    return run.status == ImportRun.Status.FAILED and bool(run.options.get("another_school"))


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
