"""The plan of an import: what it would create, update, remove and skip, and why.

product.md, "The import rules", rule 10: before anything is written the school sees a preview of
the plan. The plan is that preview (its :class:`Report`: complete counts, the first entries of
each kind, the data issues) and also exactly what :mod:`homelink.mis.apply` writes, so the
console, the CLI and the tests all see the same thing.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from homelink.mis.records import FileHeader

#: How many itemised entries of each kind the preview keeps; counts are always complete.
DETAIL_LIMIT = 500

MEMBER_CREATE = (
    "mis_id",
    "kind",
    "role",
    "former_upn",
    "admission_no",
    "forename",
    "surname",
    "year",
    "reg_group",
    "email",
    "mobile",
)
ADULT_CREATE = (
    "title",
    "forename",
    "surname",
    "name_key",
    "email",
    "mobile",
    "court_order",
    "held",
    "mis_id",
)

#: A label for the preview, or a function making one: most are never shown (the preview keeps
#: the first entries of each kind), and a big import makes hundreds of thousands.
Label = str | Callable[[], str]

#: A member or adult is referred to by its id, or by a negative number while it is only planned.
Ref = int


@dataclass(slots=True)
class Report:
    """What the preview shows: complete counts, the first entries of each kind, the issues."""

    counts: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    details: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    issues: list[dict[str, Any]] = field(default_factory=list)
    issue_counts: Counter[str] = field(default_factory=Counter)

    def add(self, action: str, what: str, label: Label, reason: str = "", **extra: Any) -> None:
        key = f"{what}_{action}"
        self.counts[key] += 1
        if reason:
            self.reasons[f"{what} {action}: {reason}"] += 1
        bucket = self.details[action]
        if len(bucket) < DETAIL_LIMIT:
            entry: dict[str, Any] = {"what": what, "who": label() if callable(label) else label}
            if reason:
                entry["reason"] = reason
            entry.update(extra)
            bucket.append(entry)

    def issue(self, kind: str, message: str, *, student: str = "", where: str = "") -> None:
        self.issue_counts[kind] += 1
        if len(self.issues) < DETAIL_LIMIT * 4:
            item = {"kind": kind, "message": message}
            if student:
                item["student"] = student
            if where:
                item["where"] = where
            self.issues.append(item)


@dataclass(slots=True)
class Plan:
    school_id: int
    header: FileHeader
    students_whole_roll: bool
    staff_whole_roll: bool
    links_removable: bool
    #: New rows as tuples in MEMBER_CREATE / ADULT_CREATE column order: a first import plans
    #: hundreds of thousands of them, and a dict each would cost several times the memory.
    member_creates: dict[Ref, tuple[Any, ...]] = field(default_factory=dict)
    member_updates: dict[int, dict[str, Any]] = field(default_factory=dict)
    adult_creates: dict[Ref, tuple[Any, ...]] = field(default_factory=dict)
    adult_updates: dict[int, dict[str, Any]] = field(default_factory=dict)
    #: (student, adult, (priority, prime, relationship, parental responsibility))
    link_creates: list[tuple[Ref, Ref, int | None, bool, str, bool]] = field(default_factory=list)
    link_updates: dict[int, dict[str, Any]] = field(default_factory=dict)
    link_deletes: list[int] = field(default_factory=list)
    #: Existing students given a prime parent by this import: re-checked when applying, in case
    #: a parent registered (and became prime) while the file was being read.
    new_prime_students: set[int] = field(default_factory=set)
    leaving: list[int] = field(default_factory=list)
    current_students: int = 0
    report: Report = field(default_factory=Report)

    @property
    def leaving_students(self) -> int:
        return self.report.counts["student_left"]

    @property
    def leaver_share(self) -> float:
        return self.leaving_students / self.current_students if self.current_students else 0.0

    @property
    def has_writes(self) -> bool:
        return bool(
            self.member_creates
            or self.member_updates
            or self.adult_creates
            or self.adult_updates
            or self.link_creates
            or self.link_updates
            or self.link_deletes
            or self.leaving
        )

    def summary(self) -> dict[str, Any]:
        counts = self.report.counts
        return {
            "students": {
                "created": counts["student_create"],
                "updated": counts["student_update"],
                "unchanged": counts["student_unchanged"],
                "rejoined": counts["student_rejoin"],
                "left": counts["student_left"],
                "skipped": counts["student_skip"],
            },
            "staff": {
                "created": counts["staff_create"],
                "updated": counts["staff_update"],
                "unchanged": counts["staff_unchanged"],
                "left": counts["staff_left"],
                "skipped": counts["staff_skip"],
            },
            "adults": {
                "created": counts["adult_create"],
                "updated": counts["adult_update"],
                "skipped": counts["adult_skip"],
            },
            "links": {
                "created": counts["link_create"],
                "updated": counts["link_update"],
                "removed": counts["link_remove"],
                "skipped": counts["link_skip"],
            },
            "whole_roll": self.students_whole_roll,
            "links_removable": self.links_removable,
            "current_students": self.current_students,
            "leaver_share": round(self.leaver_share, 4),
            "reasons": dict(sorted(self.report.reasons.items())),
            "data_issues": dict(sorted(self.report.issue_counts.items())),
            "details": dict(self.report.details),
        }
