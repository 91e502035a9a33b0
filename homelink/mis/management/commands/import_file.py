"""``homelink import``: import an MIS export into a school's register."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from homelink.mis.guards import ImportRefused, LeaverGuardStop
from homelink.mis.issues import issue_title
from homelink.mis.records import MisFormatError
from homelink.mis.services import ImportBusy, import_file
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
        if as_json:
            payload = {
                "status": outcome.run.status,
                "run": outcome.run.pk,
                "seconds": round(time.monotonic() - started, 3),
                **summary,
            }
            self.stdout.write(json.dumps(payload, ensure_ascii=False))
            return
        self._print(
            outcome.run.status, summary, outcome.run.data_issues, time.monotonic() - started
        )

    def _print(
        self, status: str, summary: dict[str, Any], issues: list[dict[str, Any]], seconds: float
    ) -> None:
        out = self.stdout
        title = "Preview (nothing written)" if status == "preview" else "Imported"
        out.write(self.style.MIGRATE_HEADING(f"{title} in {seconds:.1f}s"))
        for group in ("students", "staff", "adults", "links"):
            counts = {k: v for k, v in summary[group].items() if v}
            if counts:
                out.write(f"  {group:9} " + ", ".join(f"{v} {k}" for k, v in counts.items()))
        if not summary["whole_roll"]:
            out.write("  (not a whole-roll import: no one is marked left)")
        if summary["reasons"]:
            out.write(self.style.MIGRATE_HEADING("Why"))
            for reason, count in summary["reasons"].items():
                out.write(f"  {count:6}  {reason}")
        if summary["data_issues"]:
            out.write(self.style.WARNING("Data issues"))
            for kind, count in summary["data_issues"].items():
                out.write(f"  {count:6}  {issue_title(kind)}")
            for issue in issues[:10]:
                out.write(f"          {issue['message']}")
            if len(issues) > 10:
                out.write("          … (all of them: --json, or the import history)")
        for note in summary.get("notes", [])[:20]:
            out.write(f"  note: {note}")


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
