"""Imports asked for in the browser: a preview of an upload, its apply, a forced preview of a
file refused as another school's, a retry of a request that found the school busy, a discard.

Each is one transaction that records a ``queued`` :class:`~homelink.mis.models.ImportRun` (the
*request*) or settles one, locking the run it takes further; the worker's task is queued, and a
discarded file deleted, only once that has committed, by ids. A refusal is a ``ValidationError``
whose message the page shows as it is.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction

from homelink.audit.services import audit_record
from homelink.mis.models import ImportRun
from homelink.mis.records import Format
from homelink.mis.services import carried_options, detect_format
from homelink.mis.tasks import run_console_import
from homelink.mis.uploads import (
    MAPPING_MAX_BYTES,
    UploadTooLarge,
    delete_uploads,
    found_busy,
    may_act,
    refused_as_another_schools,
    release_upload,
    store_upload,
    stored_path,
)
from homelink.schools.models import School

#: Each format as the office knows it.
FORMAT_LABELS = {
    Format.CTF.value: "CTF",
    Format.ONEROSTER.value: "OneRoster",
    Format.CSV.value: "CSV",
}


def _queue(run_id: int) -> None:
    """Queue the worker's task for a request once it has committed (a worker that took it up
    sooner would find no request). Ids and the stored path only: the task reads the rest."""

    def enqueue() -> None:
        run = ImportRun.objects.get(pk=run_id)
        run_console_import.enqueue(school_id=run.school_id, run_id=run.pk, upload=run.upload)

    transaction.on_commit(enqueue)


def _audit(run: ImportRun, user: User, action: str, **detail: Any) -> None:
    audit_record(
        school=run.school,
        actor_label=f"user:{user.pk}",
        actor_id=user.pk,
        action=action,
        obj=run,
        detail=detail or None,
    )


def import_upload(
    *,
    school: School,
    user: User,
    upload: UploadedFile,
    mapping: UploadedFile | None = None,
    file_format: str = "",
    update_only: bool = False,
) -> ImportRun:
    """Store an upload (and a CSV's mapping), record the request for its preview and queue it.

    Refused (``ValidationError`` keyed by ``file`` or ``mapping``, nothing kept) when a file grows
    past its cap while stored, or when a mapping comes with a file that is not a CSV.
    """
    stored = _store(
        school, upload, None, "file", "This file is larger than the largest import accepted."
    )
    stored_mapping = ""
    if mapping is not None:
        try:
            stored_mapping = _store(
                school, mapping, MAPPING_MAX_BYTES, "mapping", "This mapping is too large."
            )
        except ValidationError:
            delete_uploads(school.pk, [stored])
            raise
    fmt = file_format
    if not fmt:
        path = stored_path(school.pk, stored)
        assert path is not None  # store_upload just wrote it there
        fmt = detect_format(path).value
    if stored_mapping and fmt != Format.CSV.value:
        delete_uploads(school.pk, [stored, stored_mapping])
        raise ValidationError(
            {
                "mapping": f"This file looks like {FORMAT_LABELS[fmt]}, not CSV: a column "
                "mapping is only for CSV files. Choose the format if it really is a CSV."
            }
        )
    try:
        with transaction.atomic():
            run = ImportRun.objects.create(
                school=school,
                started_by=user,
                started_via="console",
                source=ImportRun.Source.UPLOAD,
                file_name=(upload.name or "upload")[:255],
                digest="",
                format=fmt,
                status=ImportRun.Status.QUEUED,
                options={
                    "dry_run": True,
                    "update_only": update_only,
                    "confirm_leavers": False,
                    "force": False,
                    "mapping": (mapping.name or "mapping")[:255] if mapping else "",
                },
                upload=stored,
                mapping_upload=stored_mapping,
            )
            # A file of personal data is now on the server: the audit trail says who put it
            # there.
            _audit(run, user, "import.uploaded", format=fmt, bytes=upload.size)
            _queue(run.pk)
    except BaseException:
        delete_uploads(school.pk, [stored, stored_mapping])
        raise
    return run


def _store(
    school: School, upload: UploadedFile, cap: int | None, field: str, too_large: str
) -> str:
    try:
        return store_upload(school.pk, upload, cap=cap)
    except UploadTooLarge:
        raise ValidationError({field: too_large}) from None


def _locked(run: ImportRun) -> ImportRun:
    return ImportRun.objects.select_for_update().select_related("school").get(pk=run.pk)


def _follow_on(locked: ImportRun, user: User, **options: Any) -> ImportRun:
    """The request that takes a locked run's file further (its apply, or a forced preview),
    with the file's own options kept; the locked run points at it."""
    kept = locked.options
    follow = ImportRun.objects.create(
        school=locked.school,
        started_by=user,
        started_via="console",
        # An administrator's decision on a scheduled sync's file is a manual run of that file.
        source=locked.source,
        file_name=locked.file_name,
        digest=locked.digest,
        format=locked.format,
        status=ImportRun.Status.QUEUED,
        options={
            "update_only": bool(kept.get("update_only")),
            "mapping": str(kept.get("mapping", "")),
            # A trust import's part of the file stays that part when applied.
            **carried_options(kept),
            **options,
        },
        upload=locked.upload,
        mapping_upload=locked.mapping_upload,
    )
    locked.followed_by = follow
    locked.save(update_fields=["followed_by"])
    _queue(follow.pk)
    return follow


def import_apply(*, run: ImportRun, user: User, leavers_confirmed: bool = False) -> ImportRun:
    """Queue the apply of a preview, or of a stopped run once the leavers are confirmed."""
    with transaction.atomic():
        locked = _locked(run)
        allowed = {ImportRun.Status.PREVIEW, ImportRun.Status.STOPPED}
        if not may_act(locked) or locked.status not in allowed:
            raise ValidationError("This import can no longer be applied.")
        confirm = locked.status == ImportRun.Status.STOPPED
        if confirm and not leavers_confirmed:
            raise ValidationError("Tick the box to confirm that these students have left.")
        options = locked.options
        return _follow_on(
            locked,
            user,
            dry_run=False,
            confirm_leavers=confirm or bool(options.get("confirm_leavers")),
            # A preview of another school's file that an administrator chose to import anyway
            # is applied the same way (adds and updates only).
            force=bool(options.get("force")),
            preview=locked.pk,
        )


def import_force(*, run: ImportRun, user: User, confirmed: bool) -> ImportRun:
    """Preview again a file refused as another school's, importing it anyway: the console's own
    choice for what ``homelink import --force`` does. It adds and updates only, like a transfer;
    it never marks anyone as left or removes a link."""
    with transaction.atomic():
        locked = _locked(run)
        if not (may_act(locked) and refused_as_another_schools(locked)):
            raise ValidationError("This file can no longer be imported from here.")
        if not confirmed:
            raise ValidationError(
                f"Tick the box to confirm that this file is meant for {locked.school.name}."
            )
        preview = _follow_on(
            locked, user, dry_run=True, confirm_leavers=False, force=True, refused=locked.pk
        )
        _audit(preview, user, "import.forced", refused_run=locked.pk)
    return preview


def import_retry(*, run: ImportRun) -> ImportRun:
    """Queue again a request that found another import of the school running."""
    with transaction.atomic():
        locked = _locked(run)
        if not (may_act(locked) and found_busy(locked)):
            raise ValidationError("There is nothing to try again here.")
        locked.status = ImportRun.Status.QUEUED
        locked.error = ""
        locked.finished_at = None
        locked.options = {k: v for k, v in locked.options.items() if k != "busy"}
        locked.save(update_fields=["status", "error", "finished_at", "options"])
        _queue(locked.pk)
    return locked


def import_discard(*, run: ImportRun, user: User) -> ImportRun:
    """Delete the stored file of a preview (or of a stopped, busy or refused run) unapplied."""
    with transaction.atomic():
        locked = _locked(run)
        discardable = locked.status in (
            ImportRun.Status.PREVIEW,
            ImportRun.Status.STOPPED,
        ) or refused_as_another_schools(locked)
        if not may_act(locked) or not (discardable or found_busy(locked)):
            raise ValidationError("This import cannot be discarded now.")
        school_id, upload, mapping_upload = locked.school_id, locked.upload, locked.mapping_upload
        locked.status = ImportRun.Status.DISCARDED
        locked.upload = locked.mapping_upload = ""
        locked.options = {**locked.options, "discarded_by": user.pk}
        locked.save(update_fields=["status", "upload", "mapping_upload", "options"])
        _audit(locked, user, "import.discarded")
        # The file goes only once the run no longer names it: a rollback keeps both.
        transaction.on_commit(lambda: release_upload(school_id, upload, mapping_upload))
    return locked
