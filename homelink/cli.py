"""The ``homelink`` console script: Django's manage.py under the product's own command names."""

from __future__ import annotations

import os
import sys

# Commands whose names are not valid module names (or shadow a keyword) live under another name.
ALIASES = {"import": "import_file", "generate-ctf": "generate_ctf"}


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "homelink.settings")
    args = list(sys.argv if argv is None else argv)
    if len(args) > 1:
        args[1] = ALIASES.get(args[1], args[1])
    if len(args) > 1 and args[1] == "demo":
        # The demo is for trying homelink on one machine: its outbox, development key and plain
        # http cookies are what make it work there. Before Django reads the settings, and in
        # the environment so that its worker and server inherit it.
        os.environ["HOMELINK_DEV"] = "1"
    from django.core.management import execute_from_command_line

    execute_from_command_line(args)


if __name__ == "__main__":
    main()
