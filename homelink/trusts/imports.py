"""A trust's OneRoster export, imported once for all its schools.

A multi-academy trust's MIS exports one OneRoster set that covers its schools, each an org of the
export. Each org's records go to the school the org maps to, and each school's part is that
school's *ordinary* import: :func:`homelink.mis.services.import_parsed` with an opener that reads
only that org's records (:func:`homelink.mis.formats.oneroster.open_oneroster` with ``org``: the
org's students and staff, and their contacts through the links of the whole file; the header
names that org alone). So identity, the import rules, tombstones, the leavers guard and the
"another school's file" check are each school's own, each school's run is in its own import
history (its own :class:`ImportRun`, source ``upload`` or ``file``), and a school whose leavers
guard trips stops alone while the others go on.

**Which school an org goes to.** The org a trust administrator confirmed for the school
(``TrustSchool.org_sourced_id``, set once by :func:`trust_map_org` and remembered), else the org
the school's own earlier OneRoster imports recorded (``School.oneroster_org_id``) when that
names exactly one org of the file and no other school of the trust names it too. Anything else
is not guessed: the console lists the org with its name from ``orgs.csv`` and asks which school
it is, or to leave it out. Orgs that are not schools (a district, a local or state body: the
trust itself) are never imported. An org mapped to no school is left out, and says so.

**A student enrolled at two orgs** of the file (a dual registration) is read into each school
it is enrolled at, with a note in each school's run: refusing the student would mark the child
as left at a school still teaching it, and each school keeps its own register of its pupils.

**In the console** each school's part goes through the machinery of the school's own console
imports (:mod:`homelink.mis.runs`, :mod:`homelink.mis.tasks`): the upload is stored once in the
trust's folder, and when the trust administrator starts the preview, each school gets a
*request* (a ``queued`` ImportRun, the file hard-linked into the school's own upload folder,
``options`` naming the org, the trust and the trust import) whose preview the worker builds,
queued after commit by id. Each run made from it keeps those options
(:data:`homelink.mis.services.CARRIED_OPTIONS`), so the school's part stays that part whoever
acts on it: the trust administrator's "apply" is the ordinary apply of each school's preview,
and a school stopped by its leavers guard, refused as another school's, or busy waits in that
school's console for the ordinary decision (confirm the leavers, import anyway, try again, or
discard). The trust's page shows each school's newest run of the import.

**On the command line** (``homelink trust import``) the schools' parts are imported one after
the other, in the command's process, through the same ``import_parsed``.

The trust's stored upload holds every school's personal data: it is deleted once each school
has its own copy (a hard link: no second copy on disk), when discarded, or after
:data:`UNSTARTED_HOURS` if never started. A small record of the upload (its file name, who sent
it, the orgs ``orgs.csv`` lists: no personal data) stays beside it for the trust's page.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import secrets
import time
import zipfile
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.utils import timezone

from homelink.audit.services import audit_record
from homelink.mis import runs as mis_runs
from homelink.mis.formats.oneroster import OrgRecord, oneroster_orgs, open_oneroster
from homelink.mis.guards import ImportRefused, LeaverGuardStop
from homelink.mis.models import ImportRun
from homelink.mis.records import Format, MisFormatError, ParsedFile
from homelink.mis.services import ImportBusy, file_digest, import_parsed
from homelink.mis.tasks import run_console_import
from homelink.mis.uploads import (
    delete_uploads,
    found_busy,
    max_upload_bytes,
    may_act,
    refused_as_another_schools,
    school_folder,
    store_file,
)
from homelink.schools.models import School
from homelink.staff.actor import Actor, actor_parts
from homelink.trusts.models import Trust, TrustSchool

#: Org types that are not schools: the bodies above them (OneRoster's orgType vocabulary).
NOT_SCHOOLS = frozenset({"district", "local", "state", "national"})
#: An upload never started (its orgs never mapped) is deleted after this long.
UNSTARTED_HOURS = 24
#: The trust's page lists this many of its latest imports.
RECENT = 10
ORG_ID_MAX = TrustSchool._meta.get_field("org_sourced_id").max_length or 255

_TOKEN = re.compile(r"[0-9a-f]{32}")
#: Runs still at work on a school's part.
WAITING = (ImportRun.Status.QUEUED, ImportRun.Status.RUNNING)


# --- Which school each org goes to ---------------------------------------------------------------


@dataclass(frozen=True)
class OrgPlace:
    """One org of a trust's export and the school of the trust it goes to, if any."""

    org: OrgRecord
    school: School | None
    #: "confirmed" (a trust administrator's mapping), "recorded" (the school's own earlier
    #: OneRoster imports), or "" when it goes nowhere (``reason`` says why).
    how: str = ""
    reason: str = ""

    @property
    def needs_mapping(self) -> bool:
        """Whether a trust administrator is asked which school this org is."""
        return self.school is None and self.org.type not in NOT_SCHOOLS

    @property
    def label(self) -> str:
        return org_label(self.org)


def org_label(org: OrgRecord) -> str:
    return f"{org.name} ({org.sourced_id})" if org.name else org.sourced_id


def _recorded_ids(school: School) -> list[str]:
    return [i for i in dict.fromkeys(p.strip() for p in school.oneroster_org_id.split(",")) if i]


def org_places(trust: Trust, orgs: Sequence[OrgRecord]) -> list[OrgPlace]:
    """Each org of the file with the school of the trust it goes to (see the module's notes).
    Each school takes one org at most, and each org goes to one school at most."""
    places = list(TrustSchool.objects.filter(trust=trust).select_related("school"))
    confirmed = {p.org_sourced_id: p.school for p in places if p.org_sourced_id}
    in_file = {o.sourced_id for o in orgs}
    recorded: dict[str, list[School]] = {}
    doubtful: set[str] = set()
    for place in places:
        if place.org_sourced_id:
            continue
        ids = [i for i in _recorded_ids(place.school) if i in in_file and i not in confirmed]
        if len(ids) == 1:
            recorded.setdefault(ids[0], []).append(place.school)
        else:
            # A school whose earlier imports name several orgs of this file (it once imported
            # a file covering several schools?) is not guessed at.
            doubtful.update(ids)
    found: list[OrgPlace] = []
    for org in orgs:
        sid = org.sourced_id
        candidates = recorded.get(sid, [])
        if sid in confirmed:
            found.append(OrgPlace(org, confirmed[sid], "confirmed"))
        elif org.type in NOT_SCHOOLS:
            found.append(OrgPlace(org, None, reason=f"a {org.type}, not a school"))
        elif len(candidates) == 1 and sid not in doubtful:
            found.append(OrgPlace(org, candidates[0], "recorded"))
        elif candidates or sid in doubtful:
            found.append(
                OrgPlace(
                    org,
                    None,
                    reason="more than one school of the trust has imported it: say which it is",
                )
            )
        else:
            found.append(OrgPlace(org, None, reason="not mapped to a school of the trust"))
    return found


def trust_map_org(
    *, trust: Trust, org_sourced_id: str, school: School, actor: Actor
) -> TrustSchool:
    """Record that the trust's OneRoster org ``org_sourced_id`` is ``school``: its records go
    there in every trust import from now on. An org is one school's: mapped to another school
    before, it moves (recorded in both schools' audit trails)."""
    org = org_sourced_id.strip()
    if not org:
        raise ValidationError("give the organisation's sourcedId")
    if len(org) > ORG_ID_MAX:
        raise ValidationError(f"an organisation's sourcedId is at most {ORG_ID_MAX} characters")
    label, actor_id = actor_parts(actor)
    try:
        with transaction.atomic():
            place = (
                TrustSchool.objects.select_for_update()
                .select_related("school")
                .filter(trust=trust, school=school)
                .first()
            )
            if place is None:
                raise ValidationError(f"{school.name} is not a school of {trust.name}")
            recorded = _recorded_ids(place.school)
            if recorded and org not in recorded:
                raise ValidationError(
                    f"{school.name}'s own OneRoster imports were for the organisation "
                    f"{', '.join(recorded)}, not {org}: choose another school, or leave it out"
                )
            if place.org_sourced_id == org:
                return place
            before = (
                TrustSchool.objects.select_for_update()
                .select_related("school")
                .filter(trust=trust, org_sourced_id=org)
                .exclude(pk=place.pk)
                .first()
            )
            if before is not None:
                before.org_sourced_id = ""
                before.save(update_fields=["org_sourced_id"])
                audit_record(
                    school=before.school,
                    actor_label=label,
                    actor_id=actor_id,
                    action="trust.org_unmapped",
                    obj=before,
                    detail={"trust_id": trust.pk, "org": org, "moved_to": school.pk},
                )
            previous = place.org_sourced_id
            place.org_sourced_id = org
            place.save(update_fields=["org_sourced_id"])
            audit_record(
                school=place.school,
                actor_label=label,
                actor_id=actor_id,
                action="trust.org_mapped",
                obj=place,
                detail={
                    "trust_id": trust.pk,
                    "org": org,
                    **({"was": previous} if previous else {}),
                },
            )
            return place
    except IntegrityError:
        raise ValidationError(
            f"the organisation {org} was mapped at the same moment by someone else: nothing was "
            "changed; look again"
        ) from None


# --- The trust's stored upload -------------------------------------------------------------------


def trust_folder(trust_id: int) -> Path:
    return Path(settings.MEDIA_ROOT) / "trust-imports" / str(trust_id)


@dataclass(frozen=True)
class TrustFile:
    """A trust's upload: the record kept beside it, and the file while it is still there."""

    trust_id: int
    token: str
    file_name: str
    uploaded_at: dt.datetime
    uploaded_by: int | None
    size: int
    orgs: list[OrgRecord]

    @property
    def path(self) -> Path:
        return trust_folder(self.trust_id) / f"{self.token}.zip"

    @property
    def stored(self) -> bool:
        return self.path.is_file()


def _record_path(trust_id: int, token: str) -> Path:
    return trust_folder(trust_id) / f"{token}.json"


def trust_file(trust: Trust, token: str) -> TrustFile | None:
    """One of the trust's uploads by its token (another trust's, or junk, is None)."""
    if not _TOKEN.fullmatch(token or ""):
        return None
    try:
        record = json.loads(_record_path(trust.pk, token).read_text(encoding="utf-8"))
        return TrustFile(
            trust_id=trust.pk,
            token=token,
            file_name=str(record["file_name"]),
            uploaded_at=dt.datetime.fromisoformat(record["uploaded_at"]),
            uploaded_by=record.get("uploaded_by"),
            size=int(record.get("bytes", 0)),
            orgs=[OrgRecord(*org) for org in record["orgs"]],
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def trust_uploads_sweep() -> None:
    """Every trust's uploads never started, past :data:`UNSTARTED_HOURS` (the retention
    sweep's hourly call: otherwise only the trust's next upload would clear them)."""
    for trust_id in Trust.objects.values_list("pk", flat=True):
        _sweep(trust_id)


def _sweep(trust_id: int) -> None:
    """Delete uploads never started, after :data:`UNSTARTED_HOURS`: every school's data."""
    folder = trust_folder(trust_id)
    if not folder.is_dir():
        return
    cutoff = timezone.now().timestamp() - UNSTARTED_HOURS * 3600
    for path in folder.glob("*.zip"):
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink(missing_ok=True)
                # Never started: nothing to show for it either.
                path.with_suffix(".json").unlink(missing_ok=True)
        except OSError:
            continue


def trust_import_upload(*, trust: Trust, user: User, upload: UploadedFile) -> TrustFile:
    """Store a trust's OneRoster export (a zip) and read the orgs its ``orgs.csv`` lists.

    Refused with a ``ValidationError`` (nothing kept) when it is larger than an import may be,
    not a zip, a zip the OneRoster reader refuses (unsafe paths, too large unpacked), or has no
    ``users.csv`` or no ``orgs.csv``: a trust's export must say which schools its records are
    for."""
    _sweep(trust.pk)
    folder = trust_folder(trust.pk)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    token = secrets.token_hex(16)
    path = folder / f"{token}.zip"
    name = (upload.name or "upload.zip").replace("\\", "/").rsplit("/", 1)[-1][:255]
    written = 0
    cap = max_upload_bytes()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in upload.chunks():
                written += len(chunk)
                if written > cap:
                    raise ValidationError("This file is larger than the largest import accepted.")
                out.write(chunk)
        if not zipfile.is_zipfile(path):
            raise ValidationError(
                f"{name} is not a zip file: a trust's import is its MIS's OneRoster export, as "
                "the zip the MIS makes (orgs.csv, users.csv…)."
            )
        try:
            orgs = oneroster_orgs(path)
        except MisFormatError as exc:
            raise ValidationError(f"{name} cannot be read: {exc}. Nothing was imported.") from None
        if not orgs:
            raise ValidationError(
                f"{name} has no orgs.csv (or lists no organisation in it), so it does not say "
                "which school each record is for: a trust's import needs the export's orgs.csv."
            )
        record = {
            "file_name": name,
            "uploaded_at": timezone.now().isoformat(),
            "uploaded_by": user.pk,
            "bytes": written,
            "orgs": [list(org) for org in orgs],
        }
        _record_path(trust.pk, token).write_text(json.dumps(record), encoding="utf-8")
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    found = trust_file(trust, token)
    assert found is not None  # just written
    return found


def _link_into_school(school_id: int, source: Path) -> str:
    """The trust's file in the school's own upload folder, as an upload of its own: a hard
    link (no second copy of the data on disk), or a copy where the folders' filesystems
    differ."""
    folder = school_folder(school_id)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    name = f"{secrets.token_hex(16)}.zip"
    try:
        os.link(source, folder / name)
    except OSError:
        return store_file(school_id, source)
    return f"imports/{school_id}/{name}"


def trust_import_start(
    *,
    trust: Trust,
    user: User,
    token: str,
    decisions: Mapping[str, School | None] | None = None,
) -> list[ImportRun]:
    """Start the preview of each school's part of an upload: record the trust administrator's
    answers for the orgs that map to no school yet (``decisions``: org sourcedId -> school, or
    None to leave it out; a school is remembered by :func:`trust_map_org`), then give each
    mapped school a request for its preview, queued for the worker once committed.

    Refused (``ValidationError``, nothing changed) when the upload is gone or already started,
    when an org waiting for an answer has none, or when no org maps to a school."""
    decisions = dict(decisions or {})
    found = trust_file(trust, token)
    if found is None or not found.stored:
        raise ValidationError("This upload is no longer on the server: upload the file again.")
    linked: list[tuple[int, str]] = []
    try:
        with transaction.atomic():
            # The trust's schools' places are locked while the mapping is read and written,
            # and the start is made once however often it is asked for.
            list(TrustSchool.objects.select_for_update().filter(trust=trust).values_list("pk"))
            if _batch_runs(trust, token):
                raise ValidationError("The preview of this file has already started.")
            _map_answers(trust, user, org_places(trust, found.orgs), decisions)
            places = org_places(trust, found.orgs)
            mapped = [p for p in places if p.school is not None]
            if not mapped:
                raise ValidationError(
                    "No organisation of this export goes to a school of the trust: there is "
                    "nothing to import."
                )
            requests = []
            for place in mapped:
                assert place.school is not None
                stored = _link_into_school(place.school.pk, found.path)
                linked.append((place.school.pk, stored))
                requests.append(_request(trust, user, found, place.school, place.org, stored))
            # Each school now has its own link to the data: the trust's copy goes.
            transaction.on_commit(lambda: found.path.unlink(missing_ok=True))
    except BaseException:
        for school_id, stored in linked:
            delete_uploads(school_id, [stored])
        raise
    return requests


def _map_answers(
    trust: Trust,
    user: User,
    places: list[OrgPlace],
    decisions: Mapping[str, School | None],
) -> None:
    """Record the answers for the orgs that were asked about (any other answer is ignored)."""
    asked = [p for p in places if p.needs_mapping]
    unanswered = [p for p in asked if p.org.sourced_id not in decisions]
    if unanswered:
        raise ValidationError(
            [f"Say which school {p.label} is, or leave it out." for p in unanswered]
        )
    taken = {p.school.pk: p for p in places if p.school is not None}
    for place in asked:
        school = decisions[place.org.sourced_id]
        if school is None:
            continue
        if school.pk in taken:
            raise ValidationError(
                f"{school.name} is chosen for {place.label}, but {taken[school.pk].label} goes "
                "there already: a school is one organisation of the export."
            )
        taken[school.pk] = place
        trust_map_org(trust=trust, org_sourced_id=place.org.sourced_id, school=school, actor=user)


def _request(
    trust: Trust,
    user: User,
    found: TrustFile,
    school: School,
    org: OrgRecord,
    stored: str,
) -> ImportRun:
    """One school's request for the preview of its part (as :func:`mis.runs.import_upload`
    records one for an upload of its own)."""
    run = ImportRun.objects.create(
        school=school,
        started_by=user,
        started_via="console",
        source=ImportRun.Source.UPLOAD,
        file_name=found.file_name,
        digest="",
        format=Format.ONEROSTER.value,
        status=ImportRun.Status.QUEUED,
        options={
            "dry_run": True,
            "update_only": False,
            "confirm_leavers": False,
            "force": False,
            "mapping": "",
            "org": org.sourced_id,
            "trust": trust.pk,
            "trust_import": found.token,
        },
        upload=stored,
    )
    audit_record(
        school=school,
        actor_label=f"user:{user.pk}",
        actor_id=user.pk,
        action="import.uploaded",
        obj=run,
        detail={
            "format": Format.ONEROSTER.value,
            "bytes": found.size,
            "trust_id": trust.pk,
            "org": org.sourced_id,
        },
    )
    run_id, school_id = run.pk, school.pk

    def enqueue() -> None:
        current = ImportRun.objects.filter(pk=run_id, school_id=school_id).first()
        if current is not None:
            run_console_import.enqueue(school_id=school_id, run_id=run_id, upload=current.upload)

    transaction.on_commit(enqueue)
    return run


# --- Where an import stands ----------------------------------------------------------------------


def _batch_runs(trust: Trust, token: str) -> list[ImportRun]:
    """Every run of the trust import at the trust's schools now, oldest first."""
    return list(
        ImportRun.objects.filter(school__trust_place__trust=trust, options__trust_import=token)
        .select_related("school", "started_by")
        .order_by("pk")
    )


@dataclass(frozen=True)
class SchoolPart:
    """One school's part of a trust import, as its newest run has it."""

    school: School
    org: OrgRecord
    run: ImportRun

    @property
    def waiting(self) -> bool:
        return self.run.status in WAITING

    @property
    def stopped(self) -> bool:
        return self.run.status == ImportRun.Status.STOPPED

    @property
    def refused(self) -> bool:
        return refused_as_another_schools(self.run)

    @property
    def busy(self) -> bool:
        return found_busy(self.run)

    @property
    def may_apply(self) -> bool:
        return self.run.status == ImportRun.Status.PREVIEW and may_act(self.run)

    @property
    def may_discard(self) -> bool:
        return may_act(self.run) and (
            self.run.status in (ImportRun.Status.PREVIEW, ImportRun.Status.STOPPED)
            or self.refused
            or self.busy
        )

    @property
    def outcome(self) -> str:
        """What the part came to, as the command line and the page say it: applied, preview,
        stopped, refused, busy, failed, discarded, queued or running."""
        if self.refused:
            return "refused"
        if self.busy:
            return "busy"
        return str(self.run.status)


@dataclass(frozen=True)
class TrustImport:
    """A trust import: the upload, and each school's part once its preview has started."""

    trust: Trust
    file: TrustFile | None
    token: str
    parts: list[SchoolPart]
    #: The orgs of the file whose records went to no school, each with why.
    left_out: list[OrgPlace] = field(default_factory=list)
    #: Before the start: where each org of the file would go now.
    places: list[OrgPlace] = field(default_factory=list)

    @property
    def started(self) -> bool:
        return bool(self.parts)

    @property
    def file_name(self) -> str:
        if self.file is not None:
            return self.file.file_name
        return self.parts[0].run.file_name if self.parts else ""

    @property
    def waiting(self) -> bool:
        return any(p.waiting for p in self.parts)

    @property
    def may_apply(self) -> bool:
        return not self.waiting and any(p.may_apply for p in self.parts)

    @property
    def may_discard(self) -> bool:
        unstarted = not self.started and self.file is not None and self.file.stored
        return unstarted or any(p.may_discard for p in self.parts)

    @property
    def needs_mapping(self) -> list[OrgPlace]:
        return [p for p in self.places if p.needs_mapping]


def trust_import(trust: Trust, token: str) -> TrustImport | None:
    """Where one of the trust's imports stands, or None when the trust has no such import."""
    found = trust_file(trust, token)
    runs = _batch_runs(trust, token) if _TOKEN.fullmatch(token or "") else []
    if found is None and not runs:
        return None
    newest: dict[int, ImportRun] = {}
    for run in runs:
        newest[run.school_id] = run
    orgs = {o.sourced_id: o for o in (found.orgs if found is not None else [])}
    parts = []
    for run in sorted(newest.values(), key=lambda r: (r.school.name, r.school_id)):
        org_id = str(run.options.get("org", ""))
        parts.append(SchoolPart(run.school, orgs.get(org_id) or OrgRecord(org_id, "", "", ""), run))
    places = org_places(trust, found.orgs) if found is not None else []
    taken = {p.org.sourced_id for p in parts}
    left_out = []
    if parts:
        for place in places:
            if place.org.sourced_id in taken:
                continue
            if place.school is not None:
                place = OrgPlace(
                    place.org,
                    None,
                    reason=f"mapped to {place.school.name} since this import started: import "
                    "the file again to bring its records in",
                )
            elif place.needs_mapping:
                place = OrgPlace(place.org, None, reason="left out when the preview started")
            left_out.append(place)
    return TrustImport(
        trust=trust,
        file=found,
        token=token,
        parts=parts,
        left_out=left_out,
        places=[] if parts else places,
    )


def trust_imports_recent(trust: Trust, limit: int = RECENT) -> list[TrustImport]:
    """The trust's latest imports from the console, newest first."""
    folder = trust_folder(trust.pk)
    if not folder.is_dir():
        return []
    records = sorted(folder.glob("*.json"), key=lambda p: (p.stat().st_mtime, p.name), reverse=True)
    found = []
    for record in records:
        current = trust_import(trust, record.stem)
        if current is not None:
            found.append(current)
        if len(found) >= limit:
            break
    return found


# --- Apply, discard ------------------------------------------------------------------------------


def trust_import_apply(*, trust: Trust, user: User, token: str) -> list[ImportRun]:
    """Apply every school's preview of the import that is ready: each the ordinary apply of
    that school's preview (:func:`homelink.mis.runs.import_apply`), queued for the worker. A
    school stopped by its leavers guard, refused or busy is not applied here: it waits for its
    own decision in its own console.

    Refused while any school's preview is still being made, and when no preview waits."""
    with transaction.atomic():
        current = trust_import(trust, token)
        if current is None:
            raise ValidationError("There is no such import.")
        if current.waiting:
            raise ValidationError(
                "Some schools' previews are not ready yet: wait for them, then apply."
            )
        ready = [p for p in current.parts if p.may_apply]
        if not ready:
            raise ValidationError("No school's preview is waiting to be applied.")
        return [mis_runs.import_apply(run=p.run, user=user) for p in ready]


def trust_import_discard(*, trust: Trust, user: User, token: str) -> int:
    """Discard what of the import is not applied: each school's preview, stopped or refused
    run is discarded as its own console discards it; an upload never started is deleted.
    Returns how many schools' parts were discarded."""
    current = trust_import(trust, token)
    if current is None:
        raise ValidationError("There is no such import.")
    if not current.may_discard:
        raise ValidationError("Nothing of this import can be discarded now.")
    discarded = 0
    with transaction.atomic():
        for part in current.parts:
            if part.may_discard:
                mis_runs.import_discard(run=part.run, user=user)
                discarded += 1
    if current.file is not None:
        current.file.path.unlink(missing_ok=True)
        if not current.started:
            _record_path(trust.pk, token).unlink(missing_ok=True)
    return discarded


# --- The command line ----------------------------------------------------------------------------


@dataclass
class PartOutcome:
    """One school's part of an import from the command line."""

    school: School
    org: OrgRecord
    #: applied, preview, stopped (the leavers guard), refused (another school's file), busy
    #: (another import of the school was running), failed (the file could not be read).
    status: str
    run: ImportRun | None
    summary: dict[str, Any]
    error: str = ""
    seconds: float = 0.0

    @property
    def wrote_nothing_for_a_reason(self) -> bool:
        """Stopped by an error or a guard (a preview writes nothing, and that is no failure)."""
        return self.status not in (ImportRun.Status.APPLIED, ImportRun.Status.PREVIEW)


@dataclass
class TrustImportOutcome:
    trust: Trust
    file_name: str
    dry_run: bool
    parts: list[PartOutcome]
    left_out: list[OrgPlace]

    @property
    def ok(self) -> bool:
        return bool(self.parts) and not any(p.wrote_nothing_for_a_reason for p in self.parts)


def trust_import_now(
    *,
    trust: Trust,
    path: Path,
    dry_run: bool = False,
    confirm_leavers: Collection[int] = (),
    via: str = "cli",
    clock: Callable[[], float] | None = None,
) -> TrustImportOutcome:
    """Import a trust's OneRoster export (a zip or a folder) into each of its schools, one
    after the other: each school's part is its ordinary import of the file as it stands.

    ``confirm_leavers``: the pks of the schools whose leavers are confirmed (their guard is
    lifted, as ``homelink import --confirm-leavers`` lifts it). Raises :class:`MisFormatError`,
    having recorded nothing, when the file cannot be opened or has no ``orgs.csv``."""
    tick = clock or time.monotonic
    path = Path(path)
    orgs = oneroster_orgs(path)
    if not orgs:
        raise MisFormatError(
            "no orgs.csv (or no organisation in it), so the export does not say which school "
            "each record is for: a trust's import needs the export's orgs.csv",
            path.name,
        )
    places = org_places(trust, orgs)
    digest = file_digest(path)
    token = secrets.token_hex(16)
    parts = []
    for place in places:
        if place.school is None:
            continue
        parts.append(
            _import_part(
                trust=trust,
                place=place,
                path=path,
                digest=digest,
                token=token,
                dry_run=dry_run,
                confirm=place.school.pk in confirm_leavers,
                via=via,
                tick=tick,
            )
        )
    return TrustImportOutcome(
        trust=trust,
        file_name=path.name,
        dry_run=dry_run,
        parts=parts,
        left_out=[p for p in places if p.school is None],
    )


def _import_part(
    *,
    trust: Trust,
    place: OrgPlace,
    path: Path,
    digest: str,
    token: str,
    dry_run: bool,
    confirm: bool,
    via: str,
    tick: Callable[[], float],
) -> PartOutcome:
    school = place.school
    assert school is not None
    org = place.org.sourced_id

    def opener() -> ParsedFile:
        return open_oneroster(path, org=org)

    def this_run() -> ImportRun | None:
        return (
            ImportRun.objects.filter(school=school, options__trust_import=token)
            .order_by("-pk")
            .first()
        )

    started = tick()
    try:
        outcome = import_parsed(
            school=school,
            opener=opener,
            file_format=Format.ONEROSTER,
            file_name=path.name,
            digest=digest,
            dry_run=dry_run,
            confirm_leavers=confirm,
            via=via,
            source=ImportRun.Source.FILE,
            carried={"org": org, "trust": trust.pk, "trust_import": token},
        )
    except LeaverGuardStop as stop:
        run = this_run()
        return PartOutcome(
            school,
            place.org,
            "stopped",
            run,
            run.summary if run else {},
            str(stop),
            tick() - started,
        )
    except ImportBusy as busy:
        return PartOutcome(school, place.org, "busy", None, {}, str(busy), tick() - started)
    except ImportRefused as refused:
        return PartOutcome(
            school, place.org, "refused", this_run(), {}, str(refused), tick() - started
        )
    except MisFormatError as exc:
        return PartOutcome(
            school, place.org, "failed", this_run(), {}, f"{path.name}: {exc}", tick() - started
        )
    return PartOutcome(
        school,
        place.org,
        str(outcome.run.status),
        outcome.run,
        outcome.summary,
        "",
        tick() - started,
    )
