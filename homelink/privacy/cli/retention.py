"""``homelink privacy retention --school URN [--dry-run]``: apply the school's retention rule.

Prints what it removes (or, with ``--dry-run``, would remove): counts by kind, never who. The
worker runs the same purge once a day for every school (homelink/privacy/tasks.py).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser
from django.utils import timezone

from homelink.privacy.retention import (
    KINDS,
    cutoffs,
    retention_policy,
    retention_preview,
    retention_purge,
)
from homelink.schools.selectors import school_by_urn_or_error

HELP = "Remove what the school's retention rule says it no longer needs (counts are printed)."


def add_arguments(parser: CommandParser) -> None:
    parser.add_argument("--school", required=True, metavar="URN", help="the school's URN")
    parser.add_argument(
        "--dry-run", action="store_true", help="print what would be removed; remove nothing"
    )


def run(options: dict[str, Any], stdout: Any) -> None:
    school = school_by_urn_or_error(options["school"])
    now = timezone.now()
    policy = retention_policy(school)
    cut = cutoffs(policy, now)
    stdout.write(
        f"{school.name}: leavers kept {policy.leavers_months} months after leaving (left before "
        f"{cut.leavers:%d %b %Y} go), messages {policy.messages_months} months (written before "
        f"{cut.messages:%d %b %Y}), audit trail {policy.audit_years} years (before "
        f"{cut.audit:%d %b %Y})."
    )
    if options["dry_run"]:
        counts = retention_preview(school, now=now)
        stdout.write("Would remove (dry run, nothing removed):")
    else:
        counts = retention_purge(school=school, actor="cli", now=now)
        stdout.write("Removed (recorded in the audit trail):")
    for kind, label in KINDS.items():
        stdout.write(f"  {label}: {counts[kind]}")
