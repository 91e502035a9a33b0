"""``homelink generate-ctf``: write a fictional school's CTF export for demos and load tests."""

from __future__ import annotations

import re
from argparse import ArgumentParser, ArgumentTypeError
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from homelink.mis.generate import MAX_NAME_POOL, generate_ctf


def name_pool(text: str) -> tuple[int, int]:
    """``25x40`` → (25, 40), within the generator's lists."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match:
        raise ArgumentTypeError(f"{text!r} is not FORENAMESxSURNAMES, such as 25x40")
    forenames, surnames = int(match[1]), int(match[2])
    most_forenames, most_surnames = MAX_NAME_POOL
    if not (1 <= forenames <= most_forenames and 1 <= surnames <= most_surnames):
        raise ArgumentTypeError(
            f"{text!r}: the pool takes 1 to {most_forenames} forenames and 1 to "
            f"{most_surnames} surnames"
        )
    return forenames, surnames


class Command(BaseCommand):
    help = (
        "Write a realistic SIMS-shaped CTF 19.0 of fictional pupils and contacts. Every mobile is "
        "a fictional 07700 9 number and every email is at example.org or example.com."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("path", type=Path, help="Where to write the CTF (XML) file.")
        parser.add_argument(
            "--pupils", type=int, required=True, help="How many pupils the file lists."
        )
        parser.add_argument(
            "--seed",
            type=int,
            default=0,
            help="Random seed: the same seed and options give the same file (default 0).",
        )
        parser.add_argument(
            "--urn", default="100001", help="The school's URN, 6 digits (default 100001)."
        )
        parser.add_argument(
            "--la", default="838", help="The school's local authority code, 3 digits (default 838)."
        )
        parser.add_argument(
            "--estab",
            default="4512",
            help="The school's establishment number, 4 digits (default 4512).",
        )
        parser.add_argument(
            "--name", default="Example Academy", help="The school's name (default Example Academy)."
        )
        parser.add_argument(
            "--groups",
            type=Path,
            metavar="CSV",
            help="Also write a members CSV of the same pupils' registration groups (a CTF has "
            "none): import it after the CTF.",
        )
        parser.add_argument(
            "--partial",
            action="store_true",
            help="Write a partial CTF: pupils only, with no contacts, phones or emails.",
        )
        most_forenames, most_surnames = MAX_NAME_POOL
        parser.add_argument(
            "--name-pool",
            type=name_pool,
            metavar="FORENAMESxSURNAMES",
            help="Draw every name from a small pool, such as 25x40 (1,000 names: a trust- or "
            "LA-wide export, with hundreds of parents of the same name who are not the same "
            "person). Each adult still has an email and a mobile of their own. Loads the "
            "matching of adults across siblings; the import's cost should not depend on it. "
            f"Default: the full lists ({most_forenames}x{most_surnames}).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["path"]
        if options["pupils"] < 0:
            raise CommandError("--pupils must be 0 or more")
        try:
            stats = generate_ctf(
                path,
                pupils=options["pupils"],
                seed=options["seed"],
                urn=options["urn"],
                la=options["la"],
                estab=options["estab"],
                school_name=options["name"],
                qualifier="partial" if options["partial"] else "full",
                groups_out=options["groups"],
                name_pool=options["name_pool"],
            )
        except ValueError as err:
            raise CommandError(str(err)) from err
        except OSError as err:
            raise CommandError(f"cannot write {path}: {err.strerror}") from err
        summary = (
            f"Wrote {stats.pupils:,} pupils, {stats.contacts:,} contacts "
            f"({stats.adults:,} adults in {stats.families:,} families) to {path}: "
            f"{stats.bytes / 1_000_000:.1f} MB."
        )
        if options["name_pool"] is not None:
            forenames, surnames = options["name_pool"]
            summary += f" Names from a pool of {forenames} forenames x {surnames} surnames."
        if options["groups"] is not None:
            summary += f" {stats.reg_groups} registration groups to {options['groups']}."
        if stats.mobiles_exhausted:
            summary += " The 100,000 fictional mobiles ran out: later adults have none."
        self.stdout.write(summary)
