"""Every kind of data issue an import records has the office's words for it (mis/issues.py).

The rules record issues from several modules (identity.py, planning.py, apply.py…): all of
``homelink/mis`` is read, so a module added to the rules is covered without a list to update.
"""

from __future__ import annotations

import re
from pathlib import Path

from homelink.mis.issues import ISSUE_KINDS

MIS = Path(__file__).resolve().parent.parent


def recorded_codes() -> dict[str, set[str]]:
    """Each code passed to ``Report.issue``, with the modules that record it."""
    codes: dict[str, set[str]] = {}
    for path in sorted(MIS.rglob("*.py")):
        if "tests" in path.relative_to(MIS).parts:
            continue
        for code in re.findall(r"\.issue\(\s*\"(\w+)\"", path.read_text(encoding="utf-8")):
            codes.setdefault(code, set()).add(str(path.relative_to(MIS)))
    return codes


def test_every_issue_an_import_records_has_a_title_and_advice() -> None:
    codes = recorded_codes()
    assert {
        "ambiguous_match",
        "conflicting_details",
        "duplicate_member",
        "held_for_review",
        "invalid_email",
        "no_details",
        "not_mobile",
        "priority1_tie",
    } <= codes.keys()
    untitled = {code: sorted(where) for code, where in codes.items() if code not in ISSUE_KINDS}
    assert not untitled, f"no title in mis/issues.py for {untitled}"
    for code in codes:
        assert ISSUE_KINDS[code].title and ISSUE_KINDS[code].advice, code
