"""Reads of the MIS import for the console's dashboard: the last applied import, and its data
issues in the register's issue lists' shape (each entry leading to the student's record)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from homelink.mis.issues import issue_kind
from homelink.mis.models import ImportRun
from homelink.register.models import Member
from homelink.register.selectors import ISSUE_LIMIT, IssueGroup, IssueItem
from homelink.schools.models import School


def last_applied_import(school: School) -> ImportRun | None:
    return (
        ImportRun.objects.filter(school=school, status=ImportRun.Status.APPLIED)
        .order_by("-started_at", "-pk")
        .first()
    )


def import_issues(school: School, run: ImportRun) -> IssueGroup:
    """The data issues the run recorded, by kind in the office's words (``mis/issues.py``)."""
    issues: list[dict[str, Any]] = list(run.data_issues or [])
    mis_ids = {i["student"] for i in issues if i.get("student")}
    member_ids = dict(
        Member.objects.filter(school=school, mis_id__in=mis_ids).values_list("mis_id", "pk")
    )
    kinds = Counter(str(i.get("kind", "")) for i in issues)
    summary = "; ".join(
        f"{issue_kind(k).title}: {n}" for k, n in sorted(kinds.items(), key=lambda kn: -kn[1])
    )
    counted = run.summary.get("data_issues") if isinstance(run.summary, dict) else None
    total = sum(counted.values()) if isinstance(counted, dict) else len(issues)
    return IssueGroup(
        "last_import",
        f"From {run.file_name} ({run.started_at:%d %b %Y %H:%M}). {summary}".strip(),
        total,
        [
            IssueItem(
                str(i.get("message", "")),
                member_ids.get(i.get("student", "")),
                issue_kind(str(i.get("kind", ""))).title,
            )
            for i in issues[:ISSUE_LIMIT]
        ],
    )
