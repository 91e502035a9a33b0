"""``homelink trust``: multi-academy trusts from the command line.

Each subcommand lives in its own module under :mod:`homelink.trusts.cli` (``add``,
``add_school``, ``remove_school``, ``list``, ``invite``, and ``importing`` for ``import``), which
defines ``HELP``, ``add_arguments(parser)`` and ``run(options, stdout)`` (or
``run(options, stdout, style)``), raising ``CommandError`` to refuse, as ``homelink privacy``
does. A subcommand whose module is not in this install is listed, and says so when run.
"""

from __future__ import annotations

import importlib
import inspect
from types import ModuleType
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

SUBCOMMANDS = ("add", "add-school", "remove-school", "list", "invite", "credits", "import")
#: Module names that differ from the subcommand's ("import" is a keyword).
MODULES = {"import": "importing"}


def module_path(subcommand: str) -> str:
    name = MODULES.get(subcommand, subcommand.replace("-", "_"))
    return f"homelink.trusts.cli.{name}"


def load(subcommand: str) -> ModuleType | None:
    """The subcommand's module, or None when the module itself is absent (an import error
    inside a module that exists is not hidden)."""
    path = module_path(subcommand)
    try:
        return importlib.import_module(path)
    except ModuleNotFoundError as missing:
        if missing.name == path:
            return None
        raise


class Command(BaseCommand):
    help = (
        "Multi-academy trusts: make one, put schools in it or take them out, list trusts, "
        "invite the trust's staff, and import a trust's OneRoster export."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="subcommand", required=True)
        for name in SUBCOMMANDS:
            module = load(name)
            if module is None:
                sub.add_parser(name, help="(not available in this install)")
                continue
            module.add_arguments(sub.add_parser(name, help=module.HELP, description=module.HELP))

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["subcommand"]
        module = load(name)
        if module is None:
            raise CommandError(f"homelink trust {name} is not available in this install")
        if len(inspect.signature(module.run).parameters) >= 3:
            module.run(options, self.stdout, self.style)
        else:
            module.run(options, self.stdout)
