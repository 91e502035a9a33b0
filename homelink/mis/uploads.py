"""The stored files of imports asked for in the browser, and which run may still act on one.

An upload is stored under ``MEDIA_ROOT/imports/<school pk>/<random name>``: the user's file name
is never part of the path. The stored file belongs to the newest run that may still act on it (a
preview, a stopped run, a request that found the school busy, a file refused as another
school's, which an administrator may still import anyway); it is deleted once applied, failed or
discarded (:mod:`homelink.mis.runs`, :mod:`homelink.mis.tasks`).
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from homelink.mis.models import ImportRun

#: A mapping is a small JSON file.
MAPPING_MAX_BYTES = 1024 * 1024
#: Suffixes kept on a stored file (they help format detection); anything else is dropped.
KEPT_SUFFIXES = {".xml", ".zip", ".csv", ".txt", ".tsv", ".json"}
#: A run the console may still act on keeps its file.
KEEPS_FILE = {ImportRun.Status.PREVIEW, ImportRun.Status.STOPPED}


class UploadTooLarge(Exception):
    """The upload grew past the cap while it was being stored."""


def max_upload_bytes() -> int:
    """The largest MIS export the console accepts (HOMELINK_IMPORT_MAX_BYTES, 200 MB)."""
    return int(settings.HOMELINK_IMPORT_MAX_BYTES)


def school_folder(school_id: int) -> Path:
    return Path(settings.MEDIA_ROOT) / "imports" / str(school_id)


def store_upload(school_id: int, upload: UploadedFile, *, cap: int | None = None) -> str:
    """Write the upload under the school's folder with a random name; return its path relative
    to MEDIA_ROOT. The user's file name is never part of the path (only a known suffix)."""
    return _store(school_id, upload.name or "", upload.chunks(), cap)


def store_file(school_id: int, source: Path) -> str:
    """Copy a file on the server (a scheduled sync's) into the school's store, as an upload:
    the console can then apply or discard it exactly as one it was sent."""
    with source.open("rb") as fh:
        return _store(school_id, source.name, iter(lambda: fh.read(1 << 20), b""), None)


def _store(school_id: int, name: str, chunks: Iterable[bytes], cap: int | None) -> str:
    cap = max_upload_bytes() if cap is None else cap
    folder = school_folder(school_id)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    suffix = Path(name).suffix.lower()
    stored = secrets.token_hex(16) + (suffix if suffix in KEPT_SUFFIXES else "")
    target = folder / stored
    written = 0
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                written += len(chunk)
                if written > cap:
                    raise UploadTooLarge
                out.write(chunk)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return f"imports/{school_id}/{stored}"


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


# --- what a run may still do with its file ------------------------------------------------------


def refused_as_another_schools(run: ImportRun) -> bool:
    """A run refused because the file names another school (which may be imported anyway)."""
    return run.status == ImportRun.Status.FAILED and bool(run.options.get("another_school"))


def found_busy(run: ImportRun) -> bool:
    """A request that found another import of the school running (it may be tried again)."""
    return run.status == ImportRun.Status.FAILED and bool(run.options.get("busy"))


def may_act(run: ImportRun) -> bool:
    """Whether the run may still act on its stored file: apply, retry or discard it."""
    return bool(run.upload) and run.followed_by_id is None


# --- stored files nobody needs any more (erasure and retention, homelink/privacy/) ---------------

#: Runs at work on their file: it is never deleted from under them.
AT_WORK = (ImportRun.Status.QUEUED, ImportRun.Status.RUNNING)
#: A file no run names yet may be one being stored for a request that has not committed.
ORPHAN_GRACE = dt.timedelta(hours=1)


def uploads_waiting(school_id: int) -> int:
    """Stored uploads a run is at work on or may still act on (apply, retry, discard)."""
    return (
        ImportRun.objects.filter(school_id=school_id)
        .exclude(upload="")
        .filter(Q(status__in=AT_WORK) | Q(followed_by__isnull=True))
        .values("upload")
        .distinct()
        .count()
    )


def uploads_unneeded(school_id: int, *, waiting_before: dt.datetime | None = None) -> list[str]:
    """The school's stored files (uploads and mappings, relative to MEDIA_ROOT) that no run
    needs: named only by runs that finished and can no longer act on them, or (with
    ``waiting_before``) by runs that could but were left waiting since before then; and files
    no run names at all (a crash between storing and recording) older than the grace."""
    runs = ImportRun.objects.filter(school_id=school_id).exclude(upload="")
    needed = Q(status__in=AT_WORK) | Q(followed_by__isnull=True)
    if waiting_before is not None:
        needed = Q(status__in=AT_WORK) | Q(followed_by__isnull=True, started_at__gte=waiting_before)
    keep = set(runs.filter(needed).values_list("upload", flat=True))
    named: set[str] = set()
    unneeded: set[str] = set()
    for upload, mapping in runs.values_list("upload", "mapping_upload"):
        named.update((upload, mapping))
        if upload not in keep:
            unneeded.update(p for p in (upload, mapping) if p)
    folder = school_folder(school_id)
    if folder.is_dir():
        now = timezone.now()
        grace = now - ORPHAN_GRACE
        if waiting_before is not None:
            grace = min(grace, waiting_before)
        for path in folder.iterdir():
            relative = f"imports/{school_id}/{path.name}"
            if relative in named or not path.is_file():
                continue
            changed = dt.datetime.fromtimestamp(path.stat().st_mtime, tz=dt.UTC)
            if changed < grace:
                unneeded.add(relative)
    return sorted(unneeded)


def uploads_forget(school_id: int, relatives: list[str]) -> int:
    """Forget ``relatives`` on every run that names them (call inside the caller's
    transaction) and delete the files once it commits, unless a run named one again
    meanwhile. Returns how many files that is."""
    if not relatives:
        return 0
    ImportRun.objects.filter(school_id=school_id, upload__in=relatives).exclude(
        status__in=AT_WORK
    ).update(upload="", mapping_upload="")

    def delete() -> None:
        still = ImportRun.objects.filter(
            Q(upload__in=relatives) | Q(mapping_upload__in=relatives), school_id=school_id
        ).values_list("upload", "mapping_upload")
        named = {p for pair in still for p in pair}
        delete_uploads(school_id, [r for r in relatives if r not in named])

    transaction.on_commit(delete)
    return len(relatives)
