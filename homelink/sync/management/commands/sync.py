"""``homelink sync``: a school's scheduled MIS sync from the command line.

Each subcommand lives in its own module under :mod:`homelink.sync.cli` (``add``, ``remove``,
``list``, ``run``), which defines ``HELP``, ``add_arguments(parser)`` and
``run(options, stdout, style) -> None`` (raising ``CommandError`` to refuse). The worker starts
due syncs by itself (:mod:`homelink.sync.tasks`): no cron is needed.
"""

from __future__ import annotations

import importlib
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

SUBCOMMANDS = ("add", "remove", "list", "run")


class Command(BaseCommand):
    help = (
        "Scheduled MIS sync: set a school's drop folder or OneRoster API and its time, remove "
        "it, list every school's, or run one now."
    )
    # Tests hand the client secret in through call_command(..., stdin=...), as for staff add.
    stealth_options = ("stdin",)

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="subcommand", required=True)
        for name in SUBCOMMANDS:
            module = importlib.import_module(f"homelink.sync.cli.{name}")
            module.add_arguments(sub.add_parser(name, help=module.HELP, description=module.HELP))

    def handle(self, *args: Any, **options: Any) -> None:
        module = importlib.import_module(f"homelink.sync.cli.{options['subcommand']}")
        module.run(options, self.stdout, self.style)
