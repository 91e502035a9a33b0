"""Scheduled MIS sync: a school's source and time, and the run itself.

A run takes what the source gives (:mod:`homelink.sync.sources`) through exactly the import a
console upload gets: the file is stored as an upload and the worker's own import of a stored
upload (:func:`homelink.mis.tasks.carry_out`) runs on it, in place. So the rules, the preview,
the guards and the history are the manual ones: a file that trips the leavers guard, names
another school or cannot be read writes nothing and waits in the console for a decision (apply
anyway, or discard) like an uploaded one. What a sync adds: "no changes" when the source has
nothing new, the schedule (retries an hour apart after a failure that may pass), and the state
the dashboard and the staleness alert read.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import tempfile
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import InterfaceError, OperationalError, transaction
from django.db.models import Q
from django.utils import timezone

from homelink.audit.services import audit_record
from homelink.mis.models import ImportRun
from homelink.mis.services import detect_format, file_digest
from homelink.mis.tasks import carry_out, imports_abandon
from homelink.mis.uploads import (
    UploadTooLarge,
    may_act,
    refused_as_another_schools,
    release_upload,
    school_folder,
    store_file,
)
from homelink.schools.models import School
from homelink.sync.addresses import check_url
from homelink.sync.alerts import decisions
from homelink.sync.models import DEFAULT_AT, VIA, SyncSource, TakenFolder
from homelink.sync.secrets import SecretUnreadable, SyncKeyMissing, seal
from homelink.sync.sources import Fetched, SourceError, source_for
from homelink.sync.taken import WORK_PREFIX, holds_taken_files, taken_forget, work_folders

#: A failure that may pass (a server down, no file yet) is tried again this often, this many
#: times, before the sync waits for its next scheduled time.
RETRY_AFTER = dt.timedelta(hours=1)
RETRIES = 3
logger = logging.getLogger(__name__)

#: Database errors that may pass (the server restarted, a lock waited too long, SQLite busy):
#: an import that met one is tried again with the same file, unlike a file that is broken.
TRANSIENT = (OperationalError, InterfaceError)


@dataclass
class SyncOutcome:
    #: The run in the import history (the import's own run when the file was imported).
    run: ImportRun
    #: Whether anything in the register was written.
    wrote: bool
    #: Why the sync did not succeed, in plain English ("" when it did).
    error: str = ""

    @property
    def status(self) -> str:
        return self.run.status


# --- the schedule --------------------------------------------------------------------------


def next_scheduled(at: dt.time, after: dt.datetime) -> dt.datetime:
    """The first time after ``after`` that the local clock (settings.TIME_ZONE) shows ``at``,
    once a day: in the hour the clocks go back, the first of its two times."""
    zone = zoneinfo.ZoneInfo(settings.TIME_ZONE)
    after = after.astimezone(dt.UTC)
    day = after.astimezone(zone).date()
    for _ in range(3):
        # Compared in UTC: two times of one zone compare as wall clocks, fold ignored, so in
        # the repeated hour 01:30 BST would count as later than 01:10 GMT (40 minutes after).
        candidate = dt.datetime.combine(day, at, tzinfo=zone).astimezone(dt.UTC)
        if candidate > after:
            return candidate
        day += dt.timedelta(days=1)
    raise AssertionError("unreachable: a day later is always later")


# --- setting a school's source ---------------------------------------------------------------


def _actor(actor_label: str, user: User | None) -> dict[str, Any]:
    if user is not None and user.pk:
        return {"actor_label": f"user:{user.pk}", "actor_id": user.pk}
    return {"actor_label": actor_label}


def _save(
    school: School,
    *,
    kind: str,
    at: dt.time | None,
    actor_label: str,
    user: User | None,
    **fields: str,
) -> SyncSource:
    """Create or change the school's sync (call inside a transaction). A new source starts
    afresh: no delta cursor, no digest, no failures; and a run still going on the old one
    will not write its state (the generation moves on)."""
    now = timezone.now()
    config = SyncSource.objects.select_for_update().filter(school=school).first()
    created = config is None
    if config is None:
        config = SyncSource(school=school, created_by=user if user and user.pk else None)
    new_source = (
        created
        or config.kind != kind
        or any(getattr(config, name) != value for name, value in fields.items() if name != "secret")
    )
    if new_source:
        config.cursor = config.last_digest = config.last_error = ""
        config.last_full_at = None
        config.attempts = config.retries = 0
        if not created:
            config.generation += 1
    config.kind = kind
    for name, value in fields.items():
        setattr(config, name, value)
    new_at = at or (config.at if not created else DEFAULT_AT)
    if created or new_at != config.at or config.next_due_at is None:
        config.at = new_at
        config.next_due_at = next_scheduled(new_at, now)
    config.save()
    if kind == SyncSource.Kind.FOLDER:
        # Remembered past a move or a removal: what its done/ and failed/ keep stays under
        # retention and erasure.
        TakenFolder.objects.get_or_create(school=school, folder=config.folder)
    audit_record(
        school=school,
        action="sync.set",
        obj=config,
        # Where from and when: never the secret.
        detail={"kind": kind, "where": config.where, "at": config.at.strftime("%H:%M")},
        **_actor(actor_label, user),
    )
    return config


def school_drop_folder(school: School) -> Path:
    """The drop folder an administrator may choose in the console."""
    return Path(settings.HOMELINK_SYNC_ROOT).resolve() / school.urn


def sync_set_folder(
    *,
    school: School,
    folder: Path | str | None = None,
    at: dt.time | None = None,
    actor_label: str,
    user: User | None = None,
) -> SyncSource:
    """Sync the school from a drop folder (by default its own under HOMELINK_SYNC_ROOT),
    creating the folder if it is missing."""
    path = Path(folder) if folder else school_drop_folder(school)
    if not path.is_absolute():
        raise ValidationError({"folder": "Give the folder's full path, starting with /."})
    path = path.resolve()
    # Each school reads only its own files: no folder inside, around or equal to another's.
    for other in SyncSource.objects.filter(kind=SyncSource.Kind.FOLDER).exclude(school=school):
        if _overlap(path, Path(other.folder)):
            raise ValidationError(
                {"folder": "This folder is another school's drop folder, or holds one."}
            )
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise ValidationError(
            {"folder": f"The folder {path} cannot be made ({exc.strerror})."}
        ) from None
    if not path.is_dir():
        raise ValidationError({"folder": f"{path} is not a folder."})
    with transaction.atomic():
        # Nor one whose done/ and failed/ still keep files another school's sync took there:
        # that school's retention and erasure would reach this one's files.
        for used in TakenFolder.objects.exclude(school=school):
            if not _overlap(path, Path(used.folder)):
                continue
            if holds_taken_files(Path(used.folder)):
                raise ValidationError(
                    {
                        "folder": "This folder still keeps files another school's sync took "
                        "(in its done/ and failed/ folders)."
                    }
                )
            used.delete()  # nothing of theirs is left in it
        return _save(
            school,
            kind=SyncSource.Kind.FOLDER,
            at=at,
            actor_label=actor_label,
            user=user,
            folder=str(path),
            url="",
            token_url="",
            client_id="",
            secret="",
        )


def _overlap(one: Path, other: Path) -> bool:
    return one == other or other in one.parents or one in other.parents


def sync_set_oneroster(
    *,
    school: School,
    url: str,
    client_id: str,
    secret: str | None,
    token_url: str = "",
    at: dt.time | None = None,
    actor_label: str,
    user: User | None = None,
) -> SyncSource:
    """Sync the school from a OneRoster 1.1 or 1.2 REST API with OAuth 2.0 client credentials.

    The secret is sealed before it is stored and never shown again. Leaving it out keeps the
    stored one only while the server and client id stay the same: otherwise whoever changed
    the address could have the stored secret sent to a server of their choosing."""
    url = check_url(url)
    token_url = check_url(token_url, field="token_url") if token_url.strip() else ""
    client_id = client_id.strip()
    if not client_id:
        raise ValidationError({"client_id": "Give the client id the MIS issued."})
    if len(client_id) > 255 or not client_id.isprintable():
        raise ValidationError({"client_id": "This is not a client id."})
    with transaction.atomic():
        current = SyncSource.objects.select_for_update().filter(school=school).first()
        same_server = (
            current is not None
            and current.kind == SyncSource.Kind.ONEROSTER
            and (current.url, current.token_url, current.client_id) == (url, token_url, client_id)
            and bool(current.secret)
        )
        if secret:
            try:
                sealed = seal(secret)
            except SyncKeyMissing as exc:
                raise ValidationError({"secret": str(exc)}) from None
        elif same_server:
            assert current is not None
            sealed = current.secret
        else:
            raise ValidationError(
                {
                    "secret": "Give the client secret (it is needed again when the address or "
                    "client id changes)."
                }
            )
        return _save(
            school,
            kind=SyncSource.Kind.ONEROSTER,
            at=at,
            actor_label=actor_label,
            user=user,
            folder="",
            url=url,
            token_url=token_url,
            client_id=client_id,
            secret=sealed,
        )


def sync_set_time(
    *, school: School, at: dt.time, actor_label: str, user: User | None = None
) -> SyncSource:
    """Change only the time of the school's sync (its source, secret and state stay)."""
    with transaction.atomic():
        config = SyncSource.objects.select_for_update().filter(school=school).first()
        if config is None:
            raise ValidationError("No sync is set up for this school: choose its source first.")
        config.at = at
        config.next_due_at = next_scheduled(at, timezone.now())
        config.save(update_fields=["at", "next_due_at"])
        audit_record(
            school=school,
            action="sync.set",
            obj=config,
            detail={"kind": config.kind, "where": config.where, "at": at.strftime("%H:%M")},
            **_actor(actor_label, user),
        )
    return config


def sync_remove(*, school: School, actor_label: str, user: User | None = None) -> bool:
    """Stop syncing the school (its history stays). False when it had no sync."""
    with transaction.atomic():
        config = SyncSource.objects.select_for_update().filter(school=school).first()
        if config is None:
            return False
        audit_record(
            school=school,
            action="sync.removed",
            obj=config,
            detail={"kind": config.kind, "where": config.where},
            **_actor(actor_label, user),
        )
        config.delete()
    return True


def sync_run_soon(*, school: School, user: User) -> None:
    """The console's "Run now": the worker runs the school's sync as soon as it can."""
    from homelink.sync.tasks import run_sync

    with transaction.atomic():
        if not SyncSource.objects.filter(school=school).exists():
            raise ValidationError("No sync is set up for this school.")
        audit_record(school=school, action="sync.run_requested", **_actor("console", user))
        school_id, user_id = school.pk, user.pk
        transaction.on_commit(
            lambda: run_sync.enqueue(
                school_id=school_id, trigger=ImportRun.Trigger.MANUAL, user_id=user_id
            )
        )


# --- running it ------------------------------------------------------------------------------


def _record(
    school: School,
    config: SyncSource,
    *,
    trigger: str,
    user: User | None,
    status: str,
    file_name: str,
    error: str = "",
    summary: dict[str, Any] | None = None,
    digest: str = "",
    fmt: str = "",
) -> ImportRun:
    """A sync run that imported nothing, in the one import history."""
    return ImportRun.objects.create(
        school=school,
        started_by=user if user is not None and user.pk else None,
        started_via=VIA,
        source=config.kind,
        trigger=trigger,
        file_name=file_name[:255],
        digest=digest,
        format=fmt,
        status=status,
        error=error,
        summary=summary or {},
        finished_at=timezone.now(),
    )


def _failed(
    school: School,
    config: SyncSource,
    token: str,
    *,
    trigger: str,
    user: User | None,
    now: dt.datetime,
    error: str,
    retry: bool,
    file_name: str = "",
    digest: str = "",
    summary: dict[str, Any] | None = None,
) -> SyncOutcome:
    """A run that imported nothing and did not succeed: in the history, and (unless a dry run,
    which holds no lease) in the sync's state and schedule."""
    run = _record(
        school,
        config,
        trigger=trigger,
        user=user,
        status=ImportRun.Status.FAILED,
        file_name=file_name or config.get_kind_display(),
        error=error,
        digest=digest,
        summary=summary,
    )
    if token:
        _after_failure(config, token, now=now, trigger=trigger, error=error, retry=retry)
    return SyncOutcome(run, False, error)


# The lease and the run's state. A run holds the school's lease from its start to its end, so
# two runs of one school never fetch and import at once (the slower would apply older data
# over newer); a dry run, which writes nothing, takes none.


def _stale_before() -> dt.datetime:
    return timezone.now() - dt.timedelta(seconds=settings.HOMELINK_IMPORT_LOCK_SECONDS)


def _take_lease(config: SyncSource) -> str | None:
    """Take the school's lease for this run: its token, or None while another run holds it.
    A lease held longer than the import lock lives is a dead run's, and is taken over."""
    token = secrets.token_hex(16)
    free = Q(lease_token="") | Q(running_since__isnull=True) | Q(running_since__lt=_stale_before())
    if SyncSource.objects.filter(free, pk=config.pk).update(
        lease_token=token, running_since=timezone.now()
    ):
        return token
    return None


def _release_lease(config: SyncSource, token: str) -> None:
    SyncSource.objects.filter(pk=config.pk, lease_token=token).update(
        lease_token="", running_since=None
    )


def _write_state(
    config: SyncSource, token: str, changes: Callable[[SyncSource], dict[str, Any]]
) -> bool:
    """Write the run's outcome onto the sync, computed from the sync as it is now, only while
    this run still holds the lease and the source is the one it ran (not moved, not removed
    and set up again): else the outcome belongs to a source the school no longer has."""
    mine = SyncSource.objects.filter(pk=config.pk, generation=config.generation, lease_token=token)
    current = mine.first()
    if current is None or not mine.update(**changes(current)):
        logger.info(
            "sync of school %s: its source changed, or its lease was taken over, during the run",
            config.school_id,
        )
        return False
    return True


def _reschedule(current: SyncSource, *, now: dt.datetime, retry: bool) -> dict[str, Any]:
    """A scheduled run that did not succeed: an hour later if it may pass and tonight's retries
    are not used up, else the next night (whose retries start afresh)."""
    following = next_scheduled(current.at, now)
    soon = now + RETRY_AFTER
    if retry and current.retries < RETRIES and soon < following:
        return {"next_due_at": soon, "retries": current.retries + 1}
    return {"next_due_at": following, "retries": 0}


def _after_failure(
    config: SyncSource,
    token: str,
    *,
    now: dt.datetime,
    trigger: str,
    error: str,
    retry: bool,
) -> None:
    """Note a failed attempt; a scheduled one that may pass is tried again within the hour."""

    def changes(current: SyncSource) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "attempts": current.attempts + 1,
            "last_attempt_at": now,
            "last_error": error[:2000],
        }
        if trigger == ImportRun.Trigger.SCHEDULED:
            fields.update(_reschedule(current, now=now, retry=retry))
        return fields

    _write_state(config, token, changes)


def _after_success(
    config: SyncSource,
    token: str,
    *,
    now: dt.datetime,
    trigger: str,
    fetched: Fetched,
    digest: str,
) -> None:
    def changes(current: SyncSource) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "attempts": 0,
            "last_attempt_at": now,
            "last_success_at": now,
            "last_error": "",
            "alerted_at": None,
        }
        if digest:
            fields["last_digest"] = digest
        if fetched.cursor:
            fields["cursor"] = fetched.cursor
        if fetched.full and current.kind == SyncSource.Kind.ONEROSTER:
            fields["last_full_at"] = now
        if trigger == ImportRun.Trigger.SCHEDULED:
            # Runs by hand leave the schedule, and tonight's retries, as they are.
            fields.update(next_due_at=next_scheduled(current.at, now), retries=0)
        return fields

    _write_state(config, token, changes)


def _already_running(
    school: School,
    config: SyncSource,
    *,
    trigger: str,
    user: User | None,
    now: dt.datetime,
) -> SyncOutcome:
    """Another run of the school's sync holds the lease: this one does not start. It is in the
    history; a scheduled one is tried again like a failure that may pass (the run going on may
    have fetched before tonight's export), without counting as a failed attempt."""
    holder = SyncSource.objects.filter(pk=config.pk).values_list("running_since", flat=True)
    since = holder.first()
    error = "a sync of this school is already running"
    if since is not None:
        error += f" (since {timezone.localtime(since):%H:%M})"
    error += (
        ": this run did not start and is tried again within the hour"
        if trigger == ImportRun.Trigger.SCHEDULED
        else ": try again when it has finished"
    )
    run = _record(
        school,
        config,
        trigger=trigger,
        user=user,
        status=ImportRun.Status.FAILED,
        file_name=config.get_kind_display(),
        error=error,
    )
    if trigger == ImportRun.Trigger.SCHEDULED:
        current = SyncSource.objects.filter(pk=config.pk, generation=config.generation).first()
        if current is not None:
            SyncSource.objects.filter(pk=config.pk, generation=config.generation).update(
                **_reschedule(current, now=now, retry=True)
            )
    return SyncOutcome(run, False, error)


def _waiting_decision(school: School, digest: str) -> ImportRun | None:
    """A run of this very file that still waits for an administrator's decision."""
    for run in ImportRun.objects.filter(school=school, digest=digest).exclude(upload=""):
        if may_act(run) and (
            run.status == ImportRun.Status.STOPPED or refused_as_another_schools(run)
        ):
            return run
    return None


def _where_raised(exc: BaseException) -> str:
    """Where in the code an exception was raised (module and line): never its text, which
    may quote what the source sent."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return "?"
    return f"{tb.tb_frame.f_globals.get('__name__', '?')}:{tb.tb_lineno}"


def sync_run(
    *,
    school: School,
    trigger: str = ImportRun.Trigger.MANUAL,
    dry_run: bool = False,
    user: User | None = None,
    now: dt.datetime | None = None,
) -> SyncOutcome:
    """Run the school's sync now: fetch, then import under the rules and guards of any import.

    ``ValidationError`` when the school has no sync. Everything else ends in the history: a
    source that could not give a file (``failed``, saying why), nothing new (``unchanged``),
    the import's own run (``applied``, ``stopped``, ``failed``; ``preview`` for a dry run,
    which changes neither the register nor the sync's state nor the drop folder), a run that
    did not start because another run of the school's sync is going (``failed``, saying so),
    or one that stopped on an error nobody foresaw (``failed``: "the sync stopped
    unexpectedly", and the kind of error in the log)."""
    now = now or timezone.now()
    config = SyncSource.objects.filter(school=school).first()
    if config is None:
        raise ValidationError(f"No sync is set up for {school.name}.")
    token = ""
    if not dry_run:
        token = _take_lease(config) or ""
        if not token:
            if not SyncSource.objects.filter(pk=config.pk).exists():
                raise ValidationError(f"No sync is set up for {school.name}.")
            return _already_running(school, config, trigger=trigger, user=user, now=now)
    try:
        if token:
            # The state as it is under the lease (an administrator's decision since counts).
            sync_note_decisions(school=school)
            current = SyncSource.objects.filter(pk=config.pk, lease_token=token).first()
            if current is None:  # removed in the meantime
                raise ValidationError(f"No sync is set up for {school.name}.")
            config = current
        folder = school_folder(school.pk)
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        # The fetched file is personal data: it waits in the school's own private store, and
        # goes with the folder whatever happens (a folder a killed run left is removed once it
        # is older than the import lock: homelink/sync/taken.py).
        with tempfile.TemporaryDirectory(
            dir=folder, prefix=WORK_PREFIX, ignore_cleanup_errors=True
        ) as work:
            return _fetch_and_import(
                school,
                config,
                token,
                Path(work),
                trigger=trigger,
                dry_run=dry_run,
                user=user,
                now=now,
            )
    except ValidationError:
        raise
    except Exception as exc:
        # Whatever it was, the run is in the history and the schedule goes on. The message
        # names the kind of error only: its text may hold what the source sent (names).
        kind = type(exc).__name__
        logger.error(
            "sync of school %s stopped unexpectedly: %s at %s", school.pk, kind, _where_raised(exc)
        )
        return _failed(
            school,
            config,
            token,
            trigger=trigger,
            user=user,
            now=now,
            error=f"the sync stopped unexpectedly: {kind}",
            retry=True,
        )
    finally:
        if token:
            _release_lease(config, token)


def _fetch_and_import(
    school: School,
    config: SyncSource,
    token: str,
    work: Path,
    *,
    trigger: str,
    dry_run: bool,
    user: User | None,
    now: dt.datetime,
) -> SyncOutcome:
    try:
        source = source_for(config, now=now)
        fetched = source.fetch(work, dry_run=dry_run)
    except (SourceError, SyncKeyMissing, SecretUnreadable) as exc:
        return _failed(
            school,
            config,
            token,
            trigger=trigger,
            user=user,
            now=now,
            error=str(exc),
            retry=isinstance(exc, SourceError) and exc.retry,
        )
    return _import_fetched(
        school,
        config,
        token,
        source,
        fetched,
        trigger=trigger,
        dry_run=dry_run,
        user=user,
        now=now,
    )


def _import_fetched(
    school: School,
    config: SyncSource,
    token: str,
    source: Any,
    fetched: Fetched,
    *,
    trigger: str,
    dry_run: bool,
    user: User | None,
    now: dt.datetime,
) -> SyncOutcome:
    detail = {"full": fetched.full, **fetched.detail}
    unchanged = fetched.unchanged
    digest = ""
    if not unchanged:
        assert fetched.path is not None, "a source gives a file or says why not"
        digest = file_digest(fetched.path)
        if digest == config.last_digest:
            unchanged = "the same file as the last sync: nothing to import"
    if unchanged:
        run = _record(
            school,
            config,
            trigger=trigger,
            user=user,
            status=ImportRun.Status.UNCHANGED,
            file_name=fetched.file_name or config.get_kind_display(),
            summary={"unchanged": unchanged, "sync": detail},
            digest=digest,
        )
        if not dry_run:
            if fetched.path is not None:
                source.finish(fetched, imported=True)
            _after_success(config, token, now=now, trigger=trigger, fetched=fetched, digest=digest)
        return SyncOutcome(run, False)
    assert fetched.path is not None
    waiting = _waiting_decision(school, digest)
    if waiting is not None:
        # The same file again: the earlier run still offers the decision; a second would
        # only ask it twice.
        error = (
            f"the same file is still waiting for a decision on the imports page (import of "
            f"{timezone.localtime(waiting.started_at):%d %b %Y %H:%M})"
        )
        if not dry_run:
            source.finish(fetched, imported=False)
        return _failed(
            school,
            config,
            token,
            trigger=trigger,
            user=user,
            now=now,
            error=error,
            retry=False,
            file_name=fetched.file_name,
            digest=digest,
            summary={"sync": detail},
        )
    fmt = fetched.format or detect_format(fetched.path)
    try:
        stored = store_file(school.pk, fetched.path)
    except UploadTooLarge:
        if not dry_run:
            source.finish(fetched, imported=False)
        return _failed(
            school,
            config,
            token,
            trigger=trigger,
            user=user,
            now=now,
            error="the file is larger than the largest import accepted",
            retry=False,
            file_name=fetched.file_name,
            digest=digest,
        )
    with transaction.atomic():
        request = ImportRun.objects.create(
            school=school,
            started_by=user if user is not None and user.pk else None,
            started_via=VIA,
            source=config.kind,
            trigger=trigger,
            file_name=fetched.file_name[:255],
            digest=digest,
            format=fmt.value,
            status=ImportRun.Status.QUEUED,
            options={
                "dry_run": dry_run,
                "update_only": False,
                "confirm_leavers": False,
                "force": False,
                "mapping": "",
                # Carried out here, by this process, not by a queued task: should the process
                # stop, nothing else would (homelink.mis.tasks.imports_abandon).
                "in_place": True,
            },
            upload=stored,
        )
    transient = False
    try:
        carry_out(school_id=school.pk, run_id=request.pk, upload=stored)
    except TRANSIENT as exc:
        # The database failed under the import (it restarted, a lock waited too long): the
        # file is not at fault, so it stays in the source and the run is tried again.
        transient = True
        logger.warning("sync of school %s: the database failed: %s", school.pk, type(exc).__name__)
    except Exception as exc:
        # Recorded on the run by the import; the log says which run, never what it held.
        logger.error("sync of school %s: import run failed: %s", school.pk, type(exc).__name__)
    request.refresh_from_db()
    run = request.followed_by or request
    run.options = {**run.options, "sync": detail}
    run.save(update_fields=["options"])
    if dry_run:
        # A preview from the command line: the file is not kept for the console to apply.
        release_upload(school.pk, run.upload, run.mapping_upload)
        run.refresh_from_db()
        return SyncOutcome(run, False, run.error)
    if run.status == ImportRun.Status.APPLIED:
        source.finish(fetched, imported=True)
        _after_success(config, token, now=now, trigger=trigger, fetched=fetched, digest=digest)
        return SyncOutcome(run, True)
    if transient and run.status == ImportRun.Status.QUEUED and request.finished_at is None:
        # The import could not even record that it failed.
        ImportRun.objects.filter(pk=request.pk).update(
            status=ImportRun.Status.FAILED,
            error="the import could not start; nothing changed",
            finished_at=timezone.now(),
        )
        run.refresh_from_db()
    error = run.error or "the import did not finish"
    if run.status == ImportRun.Status.STOPPED:
        error = f"waiting for a decision on the imports page: {error}"
    elif transient:
        error = f"{error} (the database failed: the file was left to be taken again)"
    busy = bool(run.options.get("busy"))
    if busy or transient:
        # Another import of the school was running, or the database failed: the sync tries
        # again itself, so its copy is not left for the console to retry as well; the source
        # keeps its file.
        release_upload(school.pk, request.upload, request.mapping_upload)
        run.refresh_from_db()
    else:
        source.finish(fetched, imported=False)
    _after_failure(config, token, now=now, trigger=trigger, error=error, retry=busy or transient)
    return SyncOutcome(run, False, error)


# --- keeping the state true --------------------------------------------------------------------


def sync_note_decisions(*, school: School | None = None) -> int:
    """A file the sync had to stop (the leavers guard, another school's name) that an
    administrator then applied brought the register up to date from the sync's source: the
    sync's state says so too (no error, no failed attempts, the success and the file's digest),
    instead of "waiting for a decision" until the next night. Called by each sweep, at the start
    of a run, and by :func:`~homelink.sync.selectors.sync_status` when the state shows a
    failure; how many syncs it changed."""
    failing = SyncSource.objects.filter(attempts__gt=0, last_attempt_at__isnull=False)
    if school is not None:
        failing = failing.filter(school=school)
    noted = 0
    for config in failing:
        decision = (
            decisions(config.school_id, config.kind)
            .filter(finished_at__gt=config.last_attempt_at)
            .order_by("-finished_at", "-pk")
            .first()
        )
        if decision is None or decision.finished_at is None:
            continue
        # Unless a run wrote the state meanwhile.
        noted += SyncSource.objects.filter(
            pk=config.pk,
            generation=config.generation,
            attempts=config.attempts,
            last_attempt_at=config.last_attempt_at,
        ).update(
            attempts=0,
            last_error="",
            last_success_at=decision.finished_at,
            last_digest=decision.digest,
            alerted_at=None,
        )
    return noted


def sync_release_abandoned() -> list[int]:
    """The runs of syncs whose process stopped (a worker killed, a machine rebooted), found by a
    lease held longer than the import lock lives: the lease is freed, the school's imports left
    queued or running are recorded as abandoned and their stored copies deleted, and the
    run's work folder goes. The school ids. (The daily retention purge does the same for any
    import; this does it within minutes for a sync's.)"""
    released = []
    stale = _stale_before()
    held = SyncSource.objects.exclude(lease_token="").filter(running_since__lt=stale)
    for pk, school_id, token in held.values_list("pk", "school_id", "lease_token"):
        with transaction.atomic():
            if not held.filter(pk=pk, lease_token=token).update(lease_token="", running_since=None):
                continue  # its run ended, or another sweep got there first
            imports_abandon(school_id=school_id)
            taken_forget(work_folders(school_id))
        logger.warning("sync of school %s: a run that stopped was cleared up", school_id)
        released.append(school_id)
    return released


def sync_claim_due(*, now: dt.datetime | None = None) -> list[int]:
    """Claim the syncs that are due, for the caller to run: the school ids.

    Each is claimed with a conditional UPDATE that moves its ``next_due_at`` past the import
    lock's life, so of several workers sweeping at once only one's UPDATE matches (PostgreSQL
    re-checks the condition once the first commits; SQLite writes one at a time). The run sets
    the real next time when it ends; a worker that dies mid-run leaves the claim to run out."""
    now = now or timezone.now()
    hold = now + dt.timedelta(seconds=settings.HOMELINK_IMPORT_LOCK_SECONDS)
    claimed = []
    due = SyncSource.objects.filter(next_due_at__lte=now)
    for pk, school_id in due.values_list("pk", "school_id"):
        if due.filter(pk=pk).update(next_due_at=hold):
            claimed.append(school_id)
    return claimed
