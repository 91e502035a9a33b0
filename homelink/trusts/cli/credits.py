"""``homelink trust credits --trust NAME [+N|-N|off]``: the trust's pool of SMS credits, which
pays for its trust-wide sends instead of each school's own credits while it is open."""

from __future__ import annotations

import re
from typing import Any

from django.core.management.base import CommandError, CommandParser

from homelink.messaging.services import SendError
from homelink.trusts.cli.common import trust_or_error
from homelink.trusts.sending import trust_pool_change

HELP = (
    "Show the trust's pool of SMS credits, add (+N) or remove (-N) credits (adding opens it), "
    "or close it (off: each school's own credits pay again)."
)
CHANGE = re.compile(r"^[+-]\d{1,9}$")


def add_arguments(parser: CommandParser) -> None:
    parser.add_argument("--trust", required=True, metavar="NAME", help="the trust's name")
    parser.add_argument("change", nargs="?", metavar="+N|-N|off", help="the change, if any")


def run(options: dict[str, Any], stdout: Any) -> None:
    trust = trust_or_error(options["trust"])
    change = options.get("change")
    if change is not None:
        if change != "off" and not CHANGE.match(change):
            raise CommandError(
                f"{change!r} is not a change of credits: give +N, -N or off. Nothing was changed."
            )
        try:
            trust = trust_pool_change(trust=trust, change=None if change == "off" else int(change))
        except SendError as error:
            raise CommandError(f"{error.messages[0]} Nothing was changed.") from None
    if trust.sms_credits is None:
        stdout.write(f"{trust.name} has no pool: each school's own credits pay for its texts.")
    else:
        stdout.write(f"{trust.name}'s pool: {trust.sms_credits:,} SMS credits.")
