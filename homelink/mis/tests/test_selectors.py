"""The dashboard's reads of the MIS import (mis/selectors.py): the last applied import's data
issues, each named in the office's words and leading to the student."""

from __future__ import annotations

from homelink.mis.issues import issue_title
from homelink.mis.selectors import import_issues, last_applied_import
from homelink.register.models import Member
from homelink.register.tests.factories import build, upn
from homelink.schools.models import School


def test_the_last_imports_issues_each_lead_to_the_student(school: School) -> None:
    assert last_applied_import(school) is None
    build(school)
    run = last_applied_import(school)
    assert run is not None
    last = import_issues(school, run)
    assert last.key == "last_import" and last.total >= len(last.items)
    kinds = {i.note for i in last.items}
    # Each import issue is named in the office's words (mis/issues.py), never by its code.
    titles = {issue_title(k) for k in ("not_mobile", "priority1_tie", "held_for_review")}
    assert titles <= kinds
    tie = next(i for i in last.items if i.note == issue_title("priority1_tie"))
    assert tie.member_id == Member.objects.get(school=school, mis_id=upn(3)).pk
