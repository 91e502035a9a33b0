"""``homelink privacy notify --school URN [--dry-run] [--json]``: send the school's privacy
notice to every adult from the MIS not yet told (by email, else a short SMS with a link), the
same as the console's button. ``--dry-run`` prints the counts only and queues nothing."""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError, CommandParser

from homelink.privacy.notices import notify_untold
from homelink.schools.selectors import school_by_urn_or_error

HELP = (
    "Send the school's privacy notice to every adult from the MIS not yet told "
    "(--dry-run: print the counts only)."
)


def add_arguments(parser: CommandParser) -> None:
    parser.add_argument("--school", required=True, metavar="URN", help="the school's URN")
    parser.add_argument("--dry-run", action="store_true", help="print the counts, send nothing")
    parser.add_argument("--json", action="store_true", help="print the counts as one JSON object")


def run(options: dict[str, Any], stdout: Any) -> None:
    school = school_by_urn_or_error(options["school"])
    dry_run = bool(options["dry_run"])
    try:
        result = notify_untold(school=school, actor="cli", via="cli", dry_run=dry_run)
    except ValidationError as error:
        raise CommandError(" ".join(error.messages)) from None
    plan = result.plan
    if options["json"]:
        stdout.write(
            json.dumps(
                {
                    "untold": result.untold,
                    **plan.as_json(),
                    "dry_run": dry_run,
                    "message_id": result.message.pk if result.message is not None else None,
                }
            )
        )
        return
    stdout.write(
        f"{school.name}: {result.untold} adult(s) from the MIS not yet told; "
        f"{plan.email} by email, {plan.sms} by SMS ({plan.credits} SMS credits), "
        f"{plan.unreachable} with no email or mobile to use."
    )
    if dry_run:
        stdout.write("Dry run: nothing was sent.")
    elif result.message is None:
        stdout.write("Nothing to send.")
    else:
        stdout.write(f"Queued as message {result.message.pk}.")
