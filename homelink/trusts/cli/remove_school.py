"""``homelink trust remove-school --trust NAME --school URN``: take a school out of a trust. The
trust's staff lose it at once (their next request); the school's own staff are unchanged."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import CommandParser

from homelink.schools.selectors import school_by_urn_or_error
from homelink.trusts.cli.common import refusal, trust_or_error
from homelink.trusts.services import trust_remove_school

HELP = "Take a school out of a trust: the trust's staff lose access to it at once."


def add_arguments(parser: CommandParser) -> None:
    parser.add_argument("--trust", required=True, metavar="NAME", help="the trust's name")
    parser.add_argument("--school", required=True, metavar="URN", help="the school's URN")


def run(options: dict[str, Any], stdout: Any) -> None:
    trust = trust_or_error(options["trust"])
    school = school_by_urn_or_error(options["school"])
    try:
        trust_remove_school(trust=trust, school=school, actor="cli")
    except ValidationError as error:
        raise refusal(error) from None
    stdout.write(
        f"{school} is no longer in {trust.name}: the trust's staff no longer see it. Its own "
        "staff are unchanged."
    )
