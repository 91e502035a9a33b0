"""``homelink privacy``: the school's data protection duties from the command line.

Each subcommand lives in its own module under :mod:`homelink.privacy.cli` (``notify``, ``sar``,
``erase``, ``retention``), which defines ``HELP``, ``add_arguments(parser)`` and
``run(options, stdout) -> None`` (raising ``CommandError`` to refuse).
"""

from __future__ import annotations

import importlib
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

SUBCOMMANDS = ("notify", "sar", "erase", "retention")


class Command(BaseCommand):
    help = "Data protection: privacy notices, subject access, erasure and retention."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="subcommand", required=True)
        for name in SUBCOMMANDS:
            module = importlib.import_module(f"homelink.privacy.cli.{name}")
            module.add_arguments(sub.add_parser(name, help=module.HELP, description=module.HELP))

    def handle(self, *args: Any, **options: Any) -> None:
        module = importlib.import_module(f"homelink.privacy.cli.{options['subcommand']}")
        module.run(options, self.stdout)
