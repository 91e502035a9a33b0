"""``homelink sync list [--json]``: every school's scheduled sync and how it is going.

For each: the school, the source (a drop folder's path, or a OneRoster API's address and client
id; never the secret), the time it runs, the next run, the last success, the last error and
whether it is stale (no success for HOMELINK_SYNC_STALE_HOURS). Times are in TIME_ZONE.
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.core.management.base import CommandParser
from django.core.management.color import Style
from django.utils import timezone

from homelink.schools.models import School
from homelink.sync.cli.words import iso, when
from homelink.sync.selectors import SyncStatus, sync_status

HELP = "List every school's scheduled sync: source, time, last success, last error, staleness."


def add_arguments(parser: CommandParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON list on stdout")


def _as_json(school: School, status: SyncStatus) -> dict[str, Any]:
    config = status.config
    assert config is not None
    return {
        "urn": school.urn,
        "school": school.name,
        "kind": config.kind,
        "where": config.where,
        "client_id": config.client_id or None,
        "token_url": config.token_url or None,
        "at": f"{config.at:%H:%M}",
        "next_run_at": iso(config.next_due_at),
        "last_attempt_at": iso(config.last_attempt_at),
        "last_success_at": iso(config.last_success_at),
        "last_error": config.last_error or None,
        "failed_attempts": config.attempts,
        "stale": status.stale,
    }


def _as_text(school: School, status: SyncStatus, stdout: Any, style: Style) -> None:
    config = status.config
    assert config is not None
    source = f"{config.get_kind_display()}: {config.where}"
    if config.client_id:
        source += f" (client id {config.client_id})"
    stdout.write(style.MIGRATE_HEADING(f"{school.urn}  {school.name}"))
    stdout.write(f"  source        {source}")
    stdout.write(f"  runs          every day at {config.at:%H:%M}; next {when(config.next_due_at)}")
    stdout.write(f"  last success  {when(config.last_success_at)}")
    if config.last_error:
        stdout.write(style.WARNING(f"  last error    {config.last_error}"))
    else:
        stdout.write("  last error    none")
    if status.stale:
        hours = f"{settings.HOMELINK_SYNC_STALE_HOURS:g}"
        stdout.write(style.ERROR(f"  stale         yes: no success for more than {hours} hours"))
    else:
        stdout.write("  stale         no")


def run(options: dict[str, Any], stdout: Any, style: Style) -> None:
    now = timezone.now()
    schools = School.objects.filter(sync__isnull=False).order_by("urn")
    statuses = [(school, sync_status(school, now=now)) for school in schools]
    if options["json"]:
        stdout.write(json.dumps([_as_json(s, st) for s, st in statuses], ensure_ascii=False))
        return
    if not statuses:
        stdout.write(
            "No school has a scheduled sync: add one with 'homelink sync add --school URN "
            "--folder PATH' or '--oneroster-url URL --client-id ID'."
        )
        return
    for school, status in statuses:
        _as_text(school, status, stdout, style)
