"""``homelink privacy erase --school URN --adult ID [--yes]``: erase an adult at their request.

ID is the ``adult_id`` that ``homelink export`` prints. Without ``--yes`` it prints what would be
removed and asks for confirmation on a terminal (anywhere else it refuses, erasing nothing); an
erasure that would leave a student with no reachable adult always needs ``--yes``.
"""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import CommandError, CommandParser

from homelink.privacy.erasure import ErasurePreview, ErasureRefused, adult_erase, erasure_preview
from homelink.register.models import Adult
from homelink.schools.selectors import school_by_urn_or_error

HELP = (
    "Erase an adult's personal data at their request, keeping a tombstone so that the next "
    "import does not bring them back."
)


def add_arguments(parser: CommandParser) -> None:
    parser.add_argument("--school", required=True, metavar="URN", help="the school's URN")
    parser.add_argument(
        "--adult",
        required=True,
        type=int,
        metavar="ID",
        help="the adult's id (adult_id in 'homelink export --json')",
    )
    parser.add_argument(
        "--yes",
        action="store_true",
        help="erase without asking (also when a student is left with no reachable adult)",
    )


def describe(preview: ErasurePreview) -> list[str]:
    lines = [
        f"Erasing {preview.name} (adult {preview.adult_id}) removes:",
        "  their name, email and mobile",
        f"  links to students: {preview.links}",
        f"  waiting web links: {preview.pending_links}",
        f"  privacy-notice receipts: {preview.receipts}",
        f"  addresses on message copies sent to them: {preview.copies} "
        "(the messages keep their counts)",
        f"  replies they texted (number and words): {preview.replies}",
        f"  their parent account: {preview.account.why}",
    ]
    if preview.bases:
        lines.append(
            "A tombstone (a keyed hash, nothing readable) is kept of their "
            + ", ".join(preview.bases)
            + ": the MIS import skips them until staff lift it."
        )
    else:
        lines.append(
            "Warning: nothing identifies them for a tombstone (no MIS id, name, email or "
            "mobile): an import that lists them again would bring them back."
        )
    if preview.uploads_waiting:
        lines.append(
            f"Warning: {preview.uploads_waiting} MIS file(s) uploaded in the console are still "
            "waiting to be applied or discarded and may name them: they stay on the server "
            "until then (applied, the tombstone skips them). Discard any not needed on the "
            "Imports page."
        )
    if preview.unreachable:
        lines.append(
            f"Warning: {len(preview.unreachable)} student(s) would be left with no adult "
            "who can receive messages:"
        )
        lines.extend(
            f"  {s.forename} {s.surname} ({s.mis_id}){f', {s.reg_group}' if s.reg_group else ''}"
            for s in preview.unreachable
        )
    return lines


def run(options: dict[str, Any], stdout: Any) -> None:
    school = school_by_urn_or_error(options["school"])
    adult = Adult.objects.filter(school=school, pk=options["adult"]).first()
    if adult is None:
        raise CommandError(
            f"no adult {options['adult']} at {school.name}: 'homelink export --school "
            f"{school.urn} --json' lists each adult's adult_id"
        )
    preview = erasure_preview(adult=adult)
    for line in describe(preview):
        stdout.write(line)
    if not options["yes"]:
        if preview.unreachable:
            raise CommandError(
                "nothing erased: a student would be left with no reachable adult; run again "
                "with --yes to erase anyway"
            )
        if not sys.stdin.isatty():
            raise CommandError("nothing erased: not a terminal; run again with --yes to erase")
        stdout.write('Type "erase" to erase them, anything else to stop: ', ending="")
        stdout.flush()
        if sys.stdin.readline().strip().lower() != "erase":
            raise CommandError("nothing erased")
    try:
        result = adult_erase(adult=adult, actor="cli", confirm_unreachable=options["yes"])
    except ErasureRefused as error:
        raise CommandError(f"nothing erased: {error.messages[0]}") from None
    stdout.write(
        f"Erased adult {preview.adult_id}: {result.tombstones} tombstone(s) kept, "
        f"{result.counts['links']} link(s) and "
        f"{result.counts['message_copies_blanked']} message address(es) removed"
        f"{', their account deleted' if result.account_deleted else ''}. "
        "Recorded in the audit trail."
    )
