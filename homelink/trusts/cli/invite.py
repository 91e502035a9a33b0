"""``homelink trust invite --trust NAME --email E --role administrator|sender|viewer``: invite a
person to the trust's staff (the operator's way to make a trust's first administrator; they
invite the rest from the trust's Staff page). Like ``homelink staff add``: the person is
emailed a link, gets the role when they accept, and the link is printed too."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import CommandParser

from homelink.staff.invitations import INVITATION_TTL
from homelink.staff.management.commands.staff import LINK_NOTE
from homelink.staff.models import Role
from homelink.trusts.cli.common import print_link, refusal, trust_or_error
from homelink.trusts.invitations import role_words, trust_invite

HELP = (
    "Invite a person to a role across a trust's schools: they are emailed a link, and get the "
    "role when they accept (choosing their password there, or signing in if they already use "
    f"homelink). The link is printed too: {LINK_NOTE} The link works for "
    f"{INVITATION_TTL.days} days."
)


def add_arguments(parser: CommandParser) -> None:
    parser.add_argument("--trust", required=True, metavar="NAME", help="the trust's name")
    parser.add_argument("--email", required=True, help="the person's email (their login)")
    parser.add_argument("--role", required=True, choices=[r.value for r in Role])


def run(options: dict[str, Any], stdout: Any) -> None:
    trust = trust_or_error(options["trust"])
    try:
        invited = trust_invite(
            trust=trust, email=options["email"], role=options["role"], actor="cli"
        )
    except ValidationError as error:
        raise refusal(error) from None
    print_link(
        stdout,
        f"Invited {invited.invitation.email} to be {role_words(invited.invitation.role)} of "
        f"{trust.name}: they get the role when they accept.",
        invited.url,
        invited.invitation.expires_at,
    )
