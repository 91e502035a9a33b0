"""``homelink import``: import an MIS export into a school's register."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from homelink.mis.guards import ImportRefused, LeaverGuardStop
from homelink.mis.records import MisFormatError
from homelink.mis.services import ImportBusy, import_file
from homelink.mis.summary import summary_payload, write_summary
from homelink.schools.selectors import school_by_urn_or_error


class Command(BaseCommand):
    help = (
        "Import a CTF (XML), OneRoster (folder or zip) or CSV export into a school's register "
        "under the import rules. --dry-run shows the plan and writes nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path, help="the file, or a OneRoster folder or zip")
        parser.add_argument(
            "--school", required=True, metavar="URN", help="the importing school's URN"
        )
        parser.add_argument(
            "--format", choices=["ctf", "oneroster", "csv"], help="default: detected from the file"
        )
        parser.add_argument(
            "--mapping",
            type=Path,
            help="CSV column mapping (JSON); default: a preset chosen from the header",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="preview: say what would change, change nothing"
        )
        parser.add_argument(
            "--update-only",
            action="store_true",
            help="add and update; never mark anyone left or remove a link",
        )
        parser.add_argument(
            "--confirm-leavers",
            action="store_true",
            help="allow marking more than 10%% of students as left",
        )
        parser.add_argument(
            "--force", action="store_true", help="import a file that names another school"
        )
        parser.add_argument(
            "--json", action="store_true", help="print the summary as one JSON object on stdout"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        school = school_by_urn_or_error(options["school"])
        path: Path = options["path"]
        if not path.exists():
            raise CommandError(f"{path}: no such file or folder")
        as_json = options["json"]
        progress = None if as_json or not sys.stderr.isatty() else _Progress()
        started = time.monotonic()
        try:
            outcome = import_file(
                school=school,
                path=path,
                fmt=options["format"],
                mapping=options["mapping"],
                dry_run=options["dry_run"],
                update_only=options["update_only"],
                confirm_leavers=options["confirm_leavers"],
                force=options["force"],
                progress=progress,
            )
        except LeaverGuardStop as stop:
            if as_json:
                self.stdout.write(
                    json.dumps(
                        {
                            "status": "stopped",
                            "error": str(stop),
                            "would_leave": stop.plan.leaving_students,
                            "current_students": stop.plan.current_students,
                        }
                    )
                )
            raise CommandError(f"{stop} {stop.cli_hint}") from None
        except MisFormatError as exc:
            if as_json:
                self.stdout.write(json.dumps({"status": "failed", "error": str(exc)}))
            raise CommandError(f"{path.name}: {exc}. Nothing was changed.") from None
        except (ImportRefused, ImportBusy) as exc:
            if as_json:
                self.stdout.write(json.dumps({"status": "refused", "error": str(exc)}))
            text = str(exc).rstrip(".") + "."
            if isinstance(exc, ImportRefused) and exc.cli_hint:
                text += f" {exc.cli_hint}"
            if "Nothing was changed" not in text:
                text += " Nothing was changed."
            raise CommandError(text) from None
        finally:
            if progress is not None:
                progress.done()
        summary = outcome.summary
        seconds = time.monotonic() - started
        if as_json:
            payload = summary_payload(outcome.run, summary, seconds)
            self.stdout.write(json.dumps(payload, ensure_ascii=False))
            return
        write_summary(
            self.stdout,
            self.style,
            status=outcome.run.status,
            summary=summary,
            issues=outcome.run.data_issues,
            seconds=seconds,
        )


class _Progress:
    """A progress bar on stderr for a person watching a terminal (a count where the format
    cannot say how much of the file is read)."""

    WIDTH = 30

    def __init__(self) -> None:
        self.started = time.monotonic()

    def __call__(self, count: int, fraction: float | None) -> None:
        rate = count / max(time.monotonic() - self.started, 1e-6)
        if fraction is None:
            line = f"  reading… {count:,} members ({rate:,.0f}/s)"
        else:
            done = int(fraction * self.WIDTH)
            line = f"  [{'#' * done}{'.' * (self.WIDTH - done)}] {fraction:4.0%}  {count:,} members ({rate:,.0f}/s)"
        sys.stderr.write("\r" + line)
        sys.stderr.flush()

    def done(self) -> None:
        sys.stderr.write("\r" + " " * 79 + "\r")
        sys.stderr.flush()
