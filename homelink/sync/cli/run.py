"""``homelink sync run --school URN [--dry-run] [--json]``: run the school's sync now.

The run is the one the worker makes at the scheduled time (the same fetch, import, rules, guards
and history), marked as started by hand. It prints the summary ``homelink import`` prints (and
``--json`` its object, plus ``file_name``: what the source gave). Exit status 0 when the
register is up to date afterwards (applied, or no changes) or for a preview; otherwise non-zero,
saying why: the source gave no file, the file was refused or broken, or a guard stopped it (then
it waits on the console's imports page for an administrator to apply it anyway or discard it).
``--dry-run`` previews: nothing is written, the drop folder is left as it was, and the sync's
state (last success, delta cursor) is unchanged.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError, CommandParser
from django.core.management.color import Style

from homelink.mis.models import ImportRun
from homelink.mis.summary import summary_payload, write_summary
from homelink.mis.uploads import may_act, refused_as_another_schools
from homelink.schools.selectors import school_by_urn_or_error
from homelink.sync.cli.words import refused, source_words
from homelink.sync.services import SyncOutcome, sync_run

HELP = (
    "Run the school's sync now and print the import's summary (--dry-run: preview, write "
    "nothing). Exits non-zero when nothing was written because of an error or a guard."
)

#: A reason that already says nothing was written needs no "Nothing was changed." after it.
_SAID_NOTHING = re.compile(r"nothing (was|is|has been) (changed|imported|written)", re.IGNORECASE)
#: Runs after which the command succeeds.
SUCCEEDED = (ImportRun.Status.APPLIED, ImportRun.Status.PREVIEW, ImportRun.Status.UNCHANGED)
WAITING = (
    " It waits on the console's imports page, where an administrator can apply it anyway or "
    "discard it."
)


def add_arguments(parser: CommandParser) -> None:
    parser.add_argument("--school", required=True, metavar="URN", help="the school's URN")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="preview: say what would change, change nothing (a drop folder's file stays)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the summary as one JSON object on stdout"
    )


def _why(outcome: SyncOutcome, *, dry_run: bool) -> str:
    """Why nothing was written, for the person who ran the command."""
    run = outcome.run
    # A source that gave no file names no file (the history shows the source's name instead).
    named = f"{run.file_name}: " if run.digest else ""
    if run.status == ImportRun.Status.STOPPED or refused_as_another_schools(run):
        reason = run.error or outcome.error
    else:
        reason = outcome.error or run.error or f"the sync ended {run.get_status_display()}"
    text = named + reason.rstrip(".") + "."
    if not _SAID_NOTHING.search(text):
        text += " Nothing was changed."
    if not dry_run and may_act(run):
        text += WAITING
    return text


def _failure_payload(outcome: SyncOutcome, why: str) -> dict[str, Any]:
    run = outcome.run
    payload: dict[str, Any] = {
        "status": run.status,
        "run": run.pk,
        "file_name": run.file_name,
        "error": why,
    }
    if run.status == ImportRun.Status.STOPPED and run.summary:
        payload["would_leave"] = run.summary.get("students", {}).get("left")
        payload["current_students"] = run.summary.get("current_students")
    if may_act(run):
        payload["waiting_for_decision"] = True
    return payload


def run(options: dict[str, Any], stdout: Any, style: Style) -> None:
    school = school_by_urn_or_error(options["school"])
    dry_run = bool(options["dry_run"])
    as_json = bool(options["json"])
    started = time.monotonic()
    try:
        outcome = sync_run(
            school=school, trigger=ImportRun.Trigger.MANUAL, dry_run=dry_run, user=None
        )
    except ValidationError as error:
        raise refused(error) from None
    seconds = time.monotonic() - started
    record = outcome.run
    if record.status == ImportRun.Status.UNCHANGED:
        reason = str(record.summary.get("unchanged", "")) or "nothing new since the last sync"
        if as_json:
            payload = {
                "status": record.status,
                "run": record.pk,
                "seconds": round(seconds, 3),
                "file_name": record.file_name,
                "reason": reason,
            }
            stdout.write(json.dumps(payload, ensure_ascii=False))
        else:
            stdout.write(style.MIGRATE_HEADING(f"No changes in {seconds:.1f}s"))
            stdout.write(f"  {reason}")
        return
    if record.status in SUCCEEDED:
        if as_json:
            payload = {
                **summary_payload(record, record.summary, seconds),
                "file_name": record.file_name,
            }
            stdout.write(json.dumps(payload, ensure_ascii=False))
            return
        stdout.write(f"{school.name}: {record.file_name}, from {source_words(record.source)}")
        write_summary(
            stdout,
            style,
            status=record.status,
            summary=record.summary,
            issues=record.data_issues,
            seconds=seconds,
        )
        return
    # The import may have let go of its stored file since the outcome was made.
    record.refresh_from_db()
    why = _why(outcome, dry_run=dry_run)
    if as_json:
        stdout.write(json.dumps(_failure_payload(outcome, why), ensure_ascii=False))
    raise CommandError(why)
