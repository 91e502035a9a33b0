"""``import_file``: the one way a file enters the register (CLI, console, worker and tests)."""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from homelink.audit.services import audit_record
from homelink.mis.apply import apply_plan
from homelink.mis.guards import ImportOptions, ImportRefused, LeaverGuardStop
from homelink.mis.models import ImportRun
from homelink.mis.plan import Plan
from homelink.mis.records import Format, MisFormatError, ParsedFile
from homelink.mis.rules import build_plan
from homelink.register.models import Adult, Link, Member
from homelink.schools.models import School


class ImportBusy(Exception):
    """Another import of this school is running."""


@dataclass
class ImportOutcome:
    run: ImportRun
    summary: dict[str, Any]
    plan: Plan
    notes: list[str] = field(default_factory=list)

    @property
    def applied(self) -> bool:
        return self.run.status == ImportRun.Status.APPLIED


def detect_format(path: Path) -> Format:
    """From the name, then the first bytes: a folder or zip is OneRoster, XML is a CTF."""
    if path.is_dir() or zipfile.is_zipfile(path):
        return Format.ONEROSTER
    suffix = path.suffix.lower()
    if suffix == ".xml":
        return Format.CTF
    if suffix in {".csv", ".txt", ".tsv"}:
        return Format.CSV
    with path.open("rb") as fh:
        head = fh.read(512).lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"<"):
        return Format.CTF
    return Format.CSV


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    if path.is_dir():
        for member in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(member.relative_to(path).as_posix().encode())
            digest.update(member.read_bytes())
        return digest.hexdigest()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


#: Options of a run that every run made from it keeps (its apply, a forced preview): a trust
#: import's part of the file (homelink/trusts/imports.py): the OneRoster org read, the trust
#: and the trust import it belongs to.
CARRIED_OPTIONS = ("org", "trust", "trust_import")


def carried_options(options: dict[str, Any]) -> dict[str, Any]:
    return {key: options[key] for key in CARRIED_OPTIONS if options.get(key)}


def open_mis_file(
    path: Path, fmt: Format, mapping: Path | None = None, org: str | None = None
) -> ParsedFile:
    """Open a file as its format; ``org``: only that OneRoster org's records (a trust's export
    read for one of its schools)."""
    if org and fmt != Format.ONEROSTER:
        raise MisFormatError("only a OneRoster export can be read for one organisation")
    # Imported here so that one format's optional dependencies never burden another's import.
    if fmt == Format.CTF:
        from homelink.mis.formats.ctf import open_ctf

        return open_ctf(path)
    if fmt == Format.ONEROSTER:
        from homelink.mis.formats.oneroster import open_oneroster

        return open_oneroster(path, org=org or None)
    from homelink.mis.formats.csv_mapped import load_mapping, open_csv

    return open_csv(path, load_mapping(mapping) if mapping else None)


def _take_lock(school: School, run_fields: dict[str, Any]) -> ImportRun:
    """The school's import lock is its one ``running`` ImportRun (a partial unique index)."""
    stale = timezone.now() - timedelta(seconds=settings.HOMELINK_IMPORT_LOCK_SECONDS)
    ImportRun.objects.filter(
        school=school, status=ImportRun.Status.RUNNING, started_at__lt=stale
    ).update(status=ImportRun.Status.FAILED, error="abandoned: the importing process stopped")
    try:
        with transaction.atomic():
            return ImportRun.objects.create(school=school, **run_fields)
    except IntegrityError:
        raise ImportBusy(
            f"another import of {school.name} is running; try again when it has finished"
        ) from None


def import_file(
    *,
    school: School,
    path: Path,
    fmt: str | None = None,
    mapping: Path | None = None,
    dry_run: bool = False,
    update_only: bool = False,
    confirm_leavers: bool = False,
    force: bool = False,
    started_by: AbstractBaseUser | None = None,
    via: str = "cli",
    progress: Callable[[int, float | None], None] | None = None,
    file_name: str | None = None,
) -> ImportOutcome:
    """Read ``path``, plan under the import rules, and (unless ``dry_run``) apply the plan.

    Raises :class:`MisFormatError` for a file that cannot be read, :class:`ImportRefused` for
    another school's file or when the leavers guard stops it, :class:`ImportBusy` when the school
    is already importing. In each case nothing in the register changed; the ImportRun records it.
    """
    path = Path(path)
    file_format = Format(fmt) if fmt else detect_format(path)
    return import_parsed(
        school=school,
        opener=lambda: open_mis_file(path, file_format, mapping),
        file_format=file_format,
        file_name=file_name or path.name,
        digest=file_digest(path),
        mapping_name=mapping.name if mapping else "",
        dry_run=dry_run,
        update_only=update_only,
        confirm_leavers=confirm_leavers,
        force=force,
        started_by=started_by,
        via=via,
        progress=progress,
    )


def import_parsed(
    *,
    school: School,
    opener: Callable[[], ParsedFile],
    file_format: Format,
    file_name: str,
    digest: str = "",
    mapping_name: str = "",
    dry_run: bool = False,
    update_only: bool = False,
    confirm_leavers: bool = False,
    force: bool = False,
    started_by: AbstractBaseUser | None = None,
    via: str = "cli",
    progress: Callable[[int, float | None], None] | None = None,
    source: str = ImportRun.Source.FILE,
    trigger: str = ImportRun.Trigger.MANUAL,
    carried: dict[str, Any] | None = None,
) -> ImportOutcome:
    """The import itself, once the file is known: take the school's import lock, open the file
    with ``opener``, plan, and apply (see :func:`import_file`). ``carried``: options the run
    records for the runs made from it (:data:`CARRIED_OPTIONS`)."""
    options = ImportOptions(update_only=update_only, confirm_leavers=confirm_leavers, force=force)
    run = _take_lock(
        school,
        {
            "started_by": started_by if started_by is not None and started_by.pk else None,
            "started_via": via,
            "source": source,
            "trigger": trigger,
            "file_name": file_name[:255],
            "digest": digest,
            "format": file_format.value,
            "options": {
                "dry_run": dry_run,
                "update_only": update_only,
                "confirm_leavers": confirm_leavers,
                "force": force,
                "mapping": mapping_name,
                **carried_options(carried or {}),
            },
        },
    )
    try:
        parsed = opener()
        fraction = parsed.fraction_read
        plan = build_plan(
            school,
            parsed.header,
            parsed.members,
            options,
            progress=None
            if progress is None
            else lambda n: progress(n, fraction() if fraction else None),
        )
    except LeaverGuardStop as stop:
        _finish(run, ImportRun.Status.STOPPED, stop.plan.summary(), str(stop), stop.plan)
        raise
    except (MisFormatError, ImportRefused) as exc:
        if isinstance(exc, ImportRefused) and exc.forceable:
            # Another school's file: the console offers to import it anyway (a new request,
            # forced), so the run says so rather than only carrying the message.
            run.options = {**run.options, "another_school": True}
            run.save(update_fields=["options"])
        _finish(run, ImportRun.Status.FAILED, {}, str(exc), None)
        raise
    except BaseException:
        _finish(run, ImportRun.Status.FAILED, {}, "the import stopped unexpectedly", None)
        raise

    summary = plan.summary()
    summary["notes"] = parsed.notes[:200]
    summary["format"] = file_format.value
    summary["file"] = {
        "version": parsed.header.version,
        "qualifier": parsed.header.qualifier,
        "source_urn": parsed.header.source_urn,
        "dest_urn": parsed.header.dest_urn,
    }
    if dry_run:
        _finish(run, ImportRun.Status.PREVIEW, summary, "", plan)
        return ImportOutcome(run, summary, plan, parsed.notes)
    try:
        with transaction.atomic():
            yielded = apply_plan(plan)
            if (
                file_format == Format.ONEROSTER
                and not school.oneroster_org_id
                and parsed.header.org_ids
            ):
                school.oneroster_org_id = ",".join(parsed.header.org_ids)[:255]
                school.save(update_fields=["oneroster_org_id"])
            summary["yielded_to_people"] = yielded
            audit_record(
                school=school,
                actor_label=via if started_by is None else f"user:{started_by.pk}",
                actor_id=started_by.pk if started_by is not None else None,
                action="import.applied",
                obj=run,
                detail={k: summary[k] for k in ("students", "staff", "adults", "links")},
            )
            _finish(run, ImportRun.Status.APPLIED, summary, "", plan)
        _refresh_statistics(summary)
    except BaseException:
        _finish(
            run,
            ImportRun.Status.FAILED,
            summary,
            "the import could not be written; nothing changed",
            plan,
        )
        raise
    return ImportOutcome(run, summary, plan, parsed.notes)


#: Rows an import must create before PostgreSQL's statistics are refreshed at once.
ANALYZE_AFTER = 5_000


def _refresh_statistics(summary: dict[str, Any]) -> None:
    """After a big first import, tell PostgreSQL about the new rows straight away: until
    autovacuum gets round to it, the planner takes the tables for empty and the first send to
    the school (a join of links, adults and students) can run a hundred times slower."""
    created = sum(
        int(summary.get(kind, {}).get("created", 0)) for kind in ("students", "adults", "links")
    )
    if created < ANALYZE_AFTER or connection.vendor != "postgresql":
        return
    tables = [model._meta.db_table for model in (Member, Adult, Link)]
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE " + ", ".join(connection.ops.quote_name(t) for t in tables))


def _finish(
    run: ImportRun, status: str, summary: dict[str, Any], error: str, plan: Plan | None
) -> None:
    run.status = status
    run.summary = summary
    run.error = error
    run.data_issues = plan.report.issues if plan is not None else []
    run.finished_at = timezone.now()
    run.save(update_fields=["status", "summary", "error", "data_issues", "finished_at"])
