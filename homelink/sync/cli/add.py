"""``homelink sync add``: set the school's scheduled sync (a drop folder or a OneRoster API).

``--folder PATH`` names a folder on this server, made if missing (relative paths are taken from
the current folder). ``--oneroster-url URL --client-id ID [--token-url URL]`` reads the client
secret from standard input: one line piped in, or typed at a prompt that does not show it. The
secret is sealed with HOMELINK_SYNC_KEY before it is stored and is never printed. Adding again
changes the school's sync (a school has one); ``--at`` keeps the current time when left out.
"""

from __future__ import annotations

import getpass
import sys
from pathlib import Path
from typing import IO, Any

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError, CommandParser
from django.core.management.color import Style

from homelink.schools.selectors import school_by_urn_or_error
from homelink.sync.addresses import check_url
from homelink.sync.cli.words import parse_at, refused, when
from homelink.sync.services import sync_set_folder, sync_set_oneroster

HELP = (
    "Set the school's scheduled sync: a drop folder on this server, or a OneRoster API (the "
    "client secret is read from standard input)."
)

NOTHING_GIVEN = (
    "no client secret was given: pipe it in on standard input, one line (for example "
    "`printf '%s\\n' \"$SECRET\" | homelink sync add ...`), or run the command at a terminal to "
    "be asked for it. Nothing was changed."
)


def add_arguments(parser: CommandParser) -> None:
    parser.add_argument("--school", required=True, metavar="URN", help="the school's URN")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--folder",
        metavar="PATH",
        help="a drop folder on this server that the MIS export or an SFTP upload fills",
    )
    where.add_argument(
        "--oneroster-url",
        metavar="URL",
        help="the OneRoster 1.1 or 1.2 REST API's base address "
        "(…/ims/oneroster/v1p1 or …/ims/oneroster/rostering/v1p2)",
    )
    parser.add_argument("--client-id", metavar="ID", help="OneRoster: the OAuth 2.0 client id")
    parser.add_argument(
        "--token-url",
        metavar="URL",
        default="",
        help="OneRoster: the OAuth 2.0 token address, when the MIS gives one "
        "(default: <URL>/token)",
    )
    parser.add_argument(
        "--at",
        metavar="HH:MM",
        help="when it runs every day, on the 24-hour clock in TIME_ZONE (default: 02:00, or "
        "the time already set)",
    )


def read_secret(stdin: IO[str]) -> str:
    """One line from standard input, never echoed: at a terminal, asked for without showing it."""
    try:
        if stdin.isatty():
            secret = getpass.getpass("OneRoster client secret (not shown as you type): ")
        else:
            secret = stdin.readline()
    except (EOFError, KeyboardInterrupt):
        raise CommandError(NOTHING_GIVEN) from None
    secret = secret.strip()
    if not secret:
        raise CommandError(NOTHING_GIVEN)
    return secret


def run(options: dict[str, Any], stdout: Any, style: Style) -> None:
    at = parse_at(options["at"]) if options["at"] is not None else None
    school = school_by_urn_or_error(options["school"])
    if options["folder"] is not None:
        if options["client_id"] is not None or options["token_url"]:
            raise CommandError(
                "--client-id and --token-url are for a OneRoster API (--oneroster-url), not a "
                "drop folder. Nothing was changed."
            )
        if not options["folder"].strip():
            raise CommandError("--folder needs the folder's path. Nothing was changed.")
        folder = Path(options["folder"]).expanduser().absolute()
        try:
            config = sync_set_folder(school=school, folder=folder, at=at, actor_label="cli")
        except ValidationError as error:
            raise refused(error) from None
        stdout.write(
            style.SUCCESS(
                f"{school.name} ({school.urn}) now syncs from the drop folder {config.folder} "
                f"every day at {config.at:%H:%M}; the next run is {when(config.next_due_at)}."
            )
        )
        stdout.write(
            "Point the MIS's scheduled export (or an SFTP upload) at this folder: each run takes "
            "the newest complete file and moves it to done/ or failed/ inside it. "
            f"'homelink sync run --school {school.urn}' runs it now."
        )
        return
    if not (options["client_id"] or "").strip():
        raise CommandError(
            "--oneroster-url needs --client-id: the client id the MIS issued for homelink. "
            "Nothing was changed."
        )
    # The addresses first, so that nobody types a secret only to be told the address is wrong.
    try:
        check_url(options["oneroster_url"])
        if options["token_url"].strip():
            check_url(options["token_url"], field="token_url")
    except ValidationError as error:
        raise refused(error) from None
    secret = read_secret(options.get("stdin") or sys.stdin)
    try:
        config = sync_set_oneroster(
            school=school,
            url=options["oneroster_url"],
            client_id=options["client_id"],
            secret=secret,
            token_url=options["token_url"],
            at=at,
            actor_label="cli",
        )
    except ValidationError as error:
        raise refused(error) from None
    stdout.write(
        style.SUCCESS(
            f"{school.name} ({school.urn}) now syncs from the OneRoster API at {config.url} "
            f"(client id {config.client_id}) every day at {config.at:%H:%M}; the next run is "
            f"{when(config.next_due_at)}."
        )
    )
    stdout.write(
        "The client secret is stored encrypted and is never shown again. "
        f"'homelink sync run --school {school.urn} --dry-run' tries it now without writing."
    )
