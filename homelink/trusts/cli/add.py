"""``homelink trust add --name NAME [--schools URN,URN…]``: make a trust, with its first
schools (each must be in no trust yet; if one is, nothing is made)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import CommandParser

from homelink.trusts.cli.common import refusal, schools_or_error
from homelink.trusts.services import trust_add

HELP = "Make a trust, optionally with its first schools (a school is in one trust at most)."


def add_arguments(parser: CommandParser) -> None:
    parser.add_argument("--name", required=True, help="the trust's name")
    parser.add_argument(
        "--schools", default="", metavar="URN,URN…", help="the URNs of the trust's schools"
    )


def run(options: dict[str, Any], stdout: Any) -> None:
    schools = schools_or_error(options["schools"])
    try:
        trust = trust_add(name=options["name"], schools=schools, actor="cli")
    except ValidationError as error:
        raise refusal(error) from None
    if schools:
        names = ", ".join(str(s) for s in schools)
        stdout.write(f"Made the trust {trust.name} with {len(schools)} school(s): {names}.")
    else:
        stdout.write(
            f"Made the trust {trust.name}. Put schools in it with 'homelink trust add-school "
            f'--trust "{trust.name}" --school URN\'.'
        )
