"""An import's summary on the command line: the text ``homelink import`` prints and its
``--json`` object. ``homelink sync run`` prints the same for the import its sync made, so a data
manager reads one summary whichever command imported the file."""

from __future__ import annotations

from typing import Any

from django.core.management.base import OutputWrapper
from django.core.management.color import Style

from homelink.mis.issues import issue_title
from homelink.mis.models import ImportRun

#: Data issues listed one by one under their counts; the rest are in --json and the history.
ISSUES_SHOWN = 10
NOTES_SHOWN = 20
#: The order counts are printed in, whatever order the summary's keys came back in (PostgreSQL's
#: jsonb keeps a run's stored summary in an order of its own).
COUNTS = ("created", "updated", "unchanged", "rejoined", "left", "removed", "skipped")


def _in_order(counts: dict[str, int]) -> list[tuple[str, int]]:
    known = [(k, counts[k]) for k in COUNTS if k in counts]
    return known + [(k, v) for k, v in counts.items() if k not in COUNTS]


def summary_payload(run: ImportRun, summary: dict[str, Any], seconds: float) -> dict[str, Any]:
    """The ``--json`` object of an import that ran to the end (applied, or a preview)."""
    return {"status": run.status, "run": run.pk, "seconds": round(seconds, 3), **summary}


def write_summary(
    out: OutputWrapper,
    style: Style,
    *,
    status: str,
    summary: dict[str, Any],
    issues: list[dict[str, Any]],
    seconds: float,
) -> None:
    """What an applied import or a preview did, for a person reading a terminal."""
    title = "Preview (nothing written)" if status == ImportRun.Status.PREVIEW else "Imported"
    out.write(style.MIGRATE_HEADING(f"{title} in {seconds:.1f}s"))
    for group in ("students", "staff", "adults", "links"):
        counts = [(k, v) for k, v in _in_order(summary[group]) if v]
        if counts:
            out.write(f"  {group:9} " + ", ".join(f"{v} {k}" for k, v in counts))
    if not summary["whole_roll"]:
        out.write("  (not a whole-roll import: no one is marked left)")
    if summary["reasons"]:
        out.write(style.MIGRATE_HEADING("Why"))
        for reason, count in sorted(summary["reasons"].items()):
            out.write(f"  {count:6}  {reason}")
    if summary["data_issues"]:
        out.write(style.WARNING("Data issues"))
        for kind, count in sorted(summary["data_issues"].items()):
            out.write(f"  {count:6}  {issue_title(kind)}")
        for issue in issues[:ISSUES_SHOWN]:
            out.write(f"          {issue['message']}")
        if len(issues) > ISSUES_SHOWN:
            out.write("          … (all of them: --json, or the import history)")
    for note in summary.get("notes", [])[:NOTES_SHOWN]:
        out.write(f"  note: {note}")
