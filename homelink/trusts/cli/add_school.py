"""``homelink trust add-school --trust NAME --school URN``: put a school in a trust. The trust's
staff hold their trust role there from their next request."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import CommandParser

from homelink.schools.selectors import school_by_urn_or_error
from homelink.trusts.cli.common import refusal, trust_or_error
from homelink.trusts.services import trust_add_school

HELP = "Put a school in a trust (a school already in another trust is refused)."


def add_arguments(parser: CommandParser) -> None:
    parser.add_argument("--trust", required=True, metavar="NAME", help="the trust's name")
    parser.add_argument("--school", required=True, metavar="URN", help="the school's URN")


def run(options: dict[str, Any], stdout: Any) -> None:
    trust = trust_or_error(options["trust"])
    school = school_by_urn_or_error(options["school"])
    try:
        trust_add_school(trust=trust, school=school, actor="cli")
    except ValidationError as error:
        raise refusal(error) from None
    stdout.write(f"{school} is now in {trust.name}.")
