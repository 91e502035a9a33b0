"""The import rules (product.md, "The import rules"): records + the register → a plan.

Planning only reads. It loads the school's register once into compact in-memory state, walks the
file's records, and decides every create, update, removal and skip with its reason. The plan is the
preview; :mod:`homelink.mis.apply` writes it in one short transaction. Keeping the two apart means
parents registering and workers are not locked out while a big file is read, and the console, the
CLI and tests all see exactly the same plan.

Each part of the rules has its own module, to be read beside its section of product.md:

- :mod:`homelink.mis.guards`: "Which file, and what it may change": another school's file, the
  whole roll against adds-and-updates-only, the leavers guard;
- :mod:`homelink.mis.identity`: rule 7, who is the same adult (within a student, across siblings);
- :mod:`homelink.mis.planning`: rules 1 to 6, 8 and 9 for members, links and adults' details;
- :mod:`homelink.mis.plan`: rule 10's preview, the plan and its report;
- :mod:`homelink.mis.snapshot`: the register as the planner reads it.

:func:`build_plan` runs them in order. The names below stay importable from here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from homelink.mis.guards import (
    AnotherSchoolsFile,
    ImportOptions,
    ImportRefused,
    LeaverGuardStop,
    check_leavers,
    check_school,
)
from homelink.mis.plan import ADULT_CREATE, DETAIL_LIMIT, MEMBER_CREATE, Label, Plan, Ref, Report
from homelink.mis.planning import RELATIONSHIPS, Planner, relationship_label
from homelink.mis.records import FileHeader, MemberRecord
from homelink.mis.snapshot import Register, collector_spares_register, load_register
from homelink.schools.models import School

__all__ = [
    "ADULT_CREATE",
    "DETAIL_LIMIT",
    "MEMBER_CREATE",
    "RELATIONSHIPS",
    "AnotherSchoolsFile",
    "ImportOptions",
    "ImportRefused",
    "Label",
    "LeaverGuardStop",
    "Plan",
    "Planner",
    "Ref",
    "Register",
    "Report",
    "build_plan",
    "check_school",
    "load_register",
    "relationship_label",
]


def build_plan(
    school: School,
    header: FileHeader,
    members: Iterable[MemberRecord],
    options: ImportOptions,
    *,
    progress: Callable[[int], None] | None = None,
) -> Plan:
    """Read every record and decide everything; writes nothing."""
    relation = check_school(school, header, options)
    register = load_register(school)
    with collector_spares_register():
        planner = Planner(school, header, register, options, relation)
        if relation == "transfer-in":
            planner.report.reasons[
                "file: a transfer-in (this school is the destination): adds and updates only"
            ] += 1
        elif relation == "forced":
            planner.report.reasons[
                "file: another school's, imported anyway: adds and updates only"
            ] += 1
        for count, record in enumerate(members, 1):
            planner.add(record)
            if progress is not None and count % 200 == 0:
                progress(count)
        planner.finish_contacts()
        planner.finish_adults()
        planner.finish_members()
    check_leavers(planner.plan, options)
    return planner.plan
