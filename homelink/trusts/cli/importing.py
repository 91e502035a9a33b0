"""``homelink trust import --trust NAME PATH [--dry-run] [--json]``: import a trust's OneRoster
export into each of its schools.

Each org of the export goes to the school it maps to (homelink/trusts/imports.py): the org a
trust administrator confirmed for the school (``--map ORG=URN`` confirms one here, remembered
for next time), else the one the school's own earlier OneRoster imports recorded. Each school's
part is its ordinary import, one after the other, with its own guards and its own run in its
history; an org that maps to no school is left out, and the command says so.

Prints per school what ``homelink import`` prints, headed by the school and its status
(applied, preview, stopped, refused, busy, failed); ``--json`` prints one object with a
``schools`` list and ``left_out``. Exit status non-zero when any school wrote nothing because
of an error or a guard (the others are still imported: a school stopped by its leavers guard
stops alone); ``--confirm-leavers URN,URN`` lifts that school's guard when the leavers are
right.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError, CommandParser
from django.core.management.color import Style, no_style

from homelink.mis.records import MisFormatError
from homelink.mis.summary import summary_payload, write_summary
from homelink.schools.models import School
from homelink.trusts.cli.common import trust_or_error
from homelink.trusts.imports import (
    OrgPlace,
    PartOutcome,
    TrustImportOutcome,
    org_label,
    trust_import_now,
    trust_map_org,
)
from homelink.trusts.models import Trust

HELP = (
    "Import a trust's OneRoster export (zip or folder) into each of its schools, each org into "
    "the school it maps to (--dry-run: preview, write nothing). Exits non-zero when any school "
    "wrote nothing because of an error or a guard."
)

#: What each status means, after the school's name.
STATUS_WORDS = {
    "applied": "applied",
    "preview": "preview (nothing written)",
    "stopped": "stopped by its leavers guard: nothing written",
    "refused": "refused: nothing written",
    "busy": "not imported: another import of the school was running",
    "failed": "failed: nothing written",
}


def add_arguments(parser: CommandParser) -> None:
    parser.add_argument("path", type=Path, help="the OneRoster export: a zip or a folder")
    parser.add_argument("--trust", required=True, metavar="NAME", help="the trust's name")
    parser.add_argument(
        "--dry-run", action="store_true", help="preview: say what would change, change nothing"
    )
    parser.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="ORG=URN",
        help="confirm that the org with this sourcedId is the school with this URN "
        "(remembered for the trust's next imports); may be given more than once",
    )
    parser.add_argument(
        "--confirm-leavers",
        default="",
        metavar="URN,URN",
        help="allow these schools' imports to mark more than the leavers guard's share of "
        "students as left",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the outcome as one JSON object on stdout"
    )


def _school_of(trust: Trust, urn: str) -> School:
    school = School.objects.filter(trust_place__trust=trust, urn=urn.strip()).first()
    if school is None:
        raise CommandError(
            f"no school with URN {urn.strip()} in {trust.name}. Nothing was changed."
        )
    return school


def _mappings(trust: Trust, given: list[str]) -> list[tuple[str, School]]:
    pairs = []
    for item in given:
        org, sep, urn = item.rpartition("=")
        if not sep or not org.strip() or not urn.strip():
            raise CommandError(
                f"--map {item!r}: give it as ORG=URN, the org's sourcedId and the school's URN. "
                "Nothing was changed."
            )
        pairs.append((org.strip(), _school_of(trust, urn)))
    return pairs


def _part_payload(part: PartOutcome) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "urn": part.school.urn,
        "school": part.school.name,
        "org": part.org.sourced_id,
        "org_name": part.org.name,
    }
    if part.status in ("applied", "preview") and part.run is not None:
        payload.update(summary_payload(part.run, part.summary, part.seconds))
        return payload
    payload.update(status=part.status, run=part.run.pk if part.run else None, error=part.error)
    if part.status == "stopped":
        payload["would_leave"] = (part.summary.get("students") or {}).get("left")
        payload["current_students"] = part.summary.get("current_students")
    return payload


def _left_out_payload(place: OrgPlace) -> dict[str, str]:
    return {"org": place.org.sourced_id, "name": place.org.name, "reason": place.reason}


def payload(outcome: TrustImportOutcome) -> dict[str, Any]:
    """The ``--json`` object."""
    return {
        "trust": outcome.trust.name,
        "file_name": outcome.file_name,
        "dry_run": outcome.dry_run,
        "ok": outcome.ok,
        "schools": [_part_payload(p) for p in outcome.parts],
        "left_out": [_left_out_payload(p) for p in outcome.left_out],
    }


def _why_not(part: PartOutcome) -> str:
    text = part.error.rstrip(".") + "."
    if part.status == "stopped":
        text += (
            f" If this is right, run again with --confirm-leavers {part.school.urn}; nothing of "
            "the other schools changes by running again with the same file."
        )
    elif part.status == "refused":
        text += " Check the org's mapping (--map ORG=URN) if the wrong school was chosen."
    elif part.status == "busy":
        text += " Run the command again when it has finished."
    if "nothing was changed" not in text.casefold():
        text += " Nothing was changed."
    return text


def run(options: dict[str, Any], stdout: Any, style: Style | None = None) -> None:
    style = style or no_style()
    trust = trust_or_error(options["trust"])
    path: Path = options["path"]
    if not path.exists():
        raise CommandError(f"{path}: no such file or folder")
    mappings = _mappings(trust, options["map"])
    confirm = {
        _school_of(trust, urn).pk
        for urn in str(options.get("confirm_leavers") or "").split(",")
        if urn.strip()
    }
    for org, school in mappings:
        try:
            trust_map_org(trust=trust, org_sourced_id=org, school=school, actor="cli")
        except ValidationError as error:
            text = " ".join(m.rstrip(".") + "." for m in error.messages)
            raise CommandError(f"--map {org}={school.urn}: {text}") from None
    try:
        outcome = trust_import_now(
            trust=trust, path=path, dry_run=bool(options["dry_run"]), confirm_leavers=confirm
        )
    except MisFormatError as exc:
        if options["json"]:
            stdout.write(json.dumps({"trust": trust.name, "ok": False, "error": str(exc)}))
        raise CommandError(f"{path.name}: {exc}. Nothing was changed.") from None
    if options["json"]:
        stdout.write(json.dumps(payload(outcome), ensure_ascii=False))
    else:
        _write(stdout, style, outcome)
    failed = [p for p in outcome.parts if p.wrote_nothing_for_a_reason]
    if not outcome.parts:
        raise CommandError(
            f"no organisation of {outcome.file_name} goes to a school of {trust.name}: nothing "
            "was imported. Map each school's org with --map ORG=URN."
        )
    if failed:
        names = ", ".join(f"{p.school.name} ({p.status})" for p in failed)
        text = f"{len(failed)} of {len(outcome.parts)} school(s) wrote nothing: {names}."
        stopped = [p.school.urn for p in failed if p.status == "stopped"]
        if stopped and not outcome.dry_run:
            text += (
                " If their leavers are right, run again with --confirm-leavers "
                f"{','.join(stopped)} (the schools already up to date change nothing)."
            )
        raise CommandError(text)


def _write(stdout: Any, style: Style, outcome: TrustImportOutcome) -> None:
    for part in outcome.parts:
        heading = (
            f"{part.school.name} (URN {part.school.urn}), org {org_label(part.org)}: "
            f"{STATUS_WORDS.get(part.status, part.status)}"
        )
        stdout.write(
            style.SUCCESS(heading) if not part.wrote_nothing_for_a_reason else style.ERROR(heading)
        )
        if part.wrote_nothing_for_a_reason:
            stdout.write(f"  {_why_not(part)}")
            continue
        write_summary(
            stdout,
            style,
            status=part.status,
            summary=part.summary,
            issues=part.run.data_issues if part.run is not None else [],
            seconds=part.seconds,
        )
    for place in outcome.left_out:
        stdout.write(style.WARNING(f"Left out: org {place.label}: {place.reason}"))
