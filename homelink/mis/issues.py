"""The office's words for what an import reports: every data issue's title and what to do about
it, the preview's reasons, and the names of the fields it changes.

The importer records short codes (``not_mobile``, ``priority1_tie``…) on each ImportRun, which
keeps the stored runs compact and stable; no page shows a code. The console's dashboard, the
import run page (preview and applied) and ``homelink import`` all read this one mapping, so a
kind of issue added to the rules without a title here fails ``mis/tests/test_issue_codes.py``
(and ``console/tests/test_office_words.py``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class IssueKind:
    #: What it is, in a few words a school office uses.
    title: str
    #: One line: what to do about it, in the MIS where that is where it is put right.
    advice: str


#: Every kind of data issue: those an import records (the rules' modules, ``mis/identity.py``,
#: ``mis/planning.py`` and ``mis/apply.py``) and the lists the dashboard works out from the
#: register (``console/selectors.py``).
ISSUE_KINDS: dict[str, IssueKind] = {
    # --- recorded by an import -----------------------------------------------------------------
    "not_mobile": IssueKind(
        "A number typed as a mobile is not a mobile",
        "In the MIS, correct the contact's mobile number, or change its type to home or work if "
        "it is a landline (no text messages go to it).",
    ),
    "invalid_email": IssueKind(
        "An email address that cannot be right",
        "In the MIS, correct the contact's email address (no email goes to it until then).",
    ),
    "priority1_tie": IssueKind(
        "More than one contact at priority 1",
        "In the MIS, give the contacts different priorities (contact order): all of them at "
        "priority 1 became prime parents.",
    ),
    "no_priority1": IssueKind(
        "No contact at priority 1",
        "In the MIS, give the first person to contact priority 1 (contact order 1): until then "
        "nobody becomes the student's prime parent.",
    ),
    "ambiguous_match": IssueKind(
        "A contact who could be more than one person",
        "In the MIS, check the contact's name, email and mobile: two adults with the same name "
        "need something that tells them apart. Until then the contact is left as it is.",
    ),
    "conflicting_details": IssueKind(
        "One adult with different details under two children",
        "In the MIS, make the contact's email and mobile the same under each child: the "
        "details under the first child were kept.",
    ),
    "held_for_review": IssueKind(
        "A court order: held for review",
        "Check the adult on the student's linked-people screen: they receive nothing and cannot "
        "link with a letter until staff review them. The flag comes from the MIS.",
    ),
    "no_details": IssueKind(
        "No email and no mobile",
        "In the MIS, add an email address or a mobile number for the contact: nothing can reach "
        "them.",
    ),
    "duplicate_member": IssueKind(
        "Listed twice in the file",
        "In the MIS, look for a duplicate record of this person (the second entry was skipped).",
    ),
    # --- worked out by the dashboard -----------------------------------------------------------
    "unreachable": IssueKind(
        "Students with nobody reachable",
        "In the MIS, add an email or mobile for a contact of the student, or print them a "
        "letter so that a parent can register.",
    ),
    "held": IssueKind(
        "Adults held for review",
        "Open the student and review the adult: approve or keep them held.",
    ),
    "likely_duplicate": IssueKind(
        "Likely duplicate registrations",
        "Open the student and compare the two adults; if they are one person, remove the extra "
        "link.",
    ),
    "web_not_in_mis": IssueKind(
        "Registered on the web, not in the MIS",
        "Add the adult as a contact of the student in the MIS, or remove the link if it is wrong.",
    ),
    "shared_email": IssueKind(
        "Same email on unrelated adults",
        "In the MIS, correct the email address of whichever adult it does not belong to.",
    ),
    "last_import": IssueKind(
        "Last import's data issues",
        "Each is corrected in the MIS; the next import picks the correction up.",
    ),
}

#: What a page says for a code this version does not know (an older run, say): never the code.
UNKNOWN = IssueKind(
    "Another data issue",
    "Check this record in the MIS.",
)


def issue_kind(code: str) -> IssueKind:
    return ISSUE_KINDS.get(code, UNKNOWN)


def issue_title(code: str) -> str:
    return issue_kind(code).title


# --- the preview's reasons and fields ------------------------------------------------------------

_WHAT = {
    "student": ("Student", "Students"),
    "staff": ("Staff member", "Staff"),
    "adult": ("Adult", "Adults"),
    "link": ("Link", "Links"),
}
_ACTION = {
    "create": "created",
    "update": "updated",
    "unchanged": "unchanged",
    "skip": "skipped",
    "remove": "removed",
    "left": "marked as left",
    "rejoin": "back on roll",
}


def reason_label(key: str) -> str:
    """A reason as the rules count it ("link skip: listed twice for this student") in the
    office's words ("Links skipped: listed twice for this student")."""
    head, sep, why = key.partition(": ")
    if head == "file":
        return f"The file: {why}" if sep else "The file"
    what, _, action = head.partition(" ")
    if what in _WHAT and action in _ACTION:
        head = f"{_WHAT[what][1]} {_ACTION[action]}"
    else:
        head = head.replace("_", " ")
    return f"{head}: {why}" if sep else head


def what_label(what: str) -> str:
    """One entry's kind ("student", "link") as a word for the itemised table."""
    return _WHAT.get(what, (what.replace("_", " ").capitalize(), ""))[0]


FIELD_LABELS = {
    "mis_id": "MIS id",
    "former_upn": "former UPN",
    "admission_no": "admission number",
    "reg_group": "registration group",
    "year": "year",
    "role": "role",
    "forename": "forename",
    "surname": "surname",
    "title": "title",
    "email": "email",
    "mobile": "mobile",
    "status": "on roll",
    "left_at": "date left",
    "priority": "priority",
    "prime": "prime parent",
    "relationship": "relationship",
    "parental_responsibility": "parental responsibility",
    "court_order": "court order",
    "held": "held for review",
}


def field_label(name: str) -> str:
    return FIELD_LABELS.get(name, name.replace("_", " "))
