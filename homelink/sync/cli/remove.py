"""``homelink sync remove --school URN``: stop the school's scheduled sync.

The import history stays, and so do the files in a drop folder: only the schedule, the source
and its stored secret go. Imports by hand (``homelink import``, the console) are unaffected.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import CommandParser
from django.core.management.color import Style

from homelink.schools.selectors import school_by_urn_or_error
from homelink.sync.cli.words import refused, source_words
from homelink.sync.selectors import sync_status
from homelink.sync.services import sync_remove

HELP = "Stop the school's scheduled sync (its import history stays)."


def add_arguments(parser: CommandParser) -> None:
    parser.add_argument("--school", required=True, metavar="URN", help="the school's URN")


def run(options: dict[str, Any], stdout: Any, style: Style) -> None:
    school = school_by_urn_or_error(options["school"])
    config = sync_status(school).config
    try:
        removed = sync_remove(school=school, actor_label="cli")
    except ValidationError as error:
        raise refused(error) from None
    if not removed or config is None:
        # Already so: a script that removes twice has what it asked for.
        stdout.write(f"{school.name} ({school.urn}) has no scheduled sync: nothing to remove.")
        return
    stdout.write(
        style.SUCCESS(
            f"{school.name} ({school.urn}) no longer syncs from "
            f"{source_words(config.kind, config.where)}; its import history stays."
        )
    )
    if config.kind == config.Kind.FOLDER:
        stdout.write(f"The files in {config.folder} are left where they are.")
