"""``homelink letters``: print security letters for a set of a school's students."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from homelink.registration.letters import NoStudents, letters_issue
from homelink.registration.services import letter_batch_revoke
from homelink.schools.selectors import school_by_urn_or_error


class Command(BaseCommand):
    help = (
        "Issue a new security code to each current student in a set and write their letters, "
        "a page each, to one PDF. Earlier letters stay valid."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--school", required=True, metavar="URN", help="the school's URN")
        parser.add_argument("--year", metavar="Y", help="only this year group, e.g. 7")
        parser.add_argument("--reg-group", metavar="G", help="only this registration group")
        parser.add_argument(
            "--unregistered-only",
            action="store_true",
            help="only students with no registered adult linked",
        )
        parser.add_argument("--out", required=True, type=Path, metavar="FILE.pdf")

    def handle(self, *args: Any, **options: Any) -> None:
        school = school_by_urn_or_error(options["school"])
        out: Path = options["out"]
        if out.is_dir():
            raise CommandError(f"{out} is a folder: give a file name, e.g. {out / 'letters.pdf'}")
        folder = out.parent
        if not folder.is_dir():
            raise CommandError(f"{folder}: no such folder")
        # Checked before any code is issued, so that a bad path costs nothing.
        if not os.access(folder, os.W_OK):
            raise CommandError(f"{folder}: cannot write there")
        try:
            issued = letters_issue(
                school=school,
                year=options["year"],
                reg_group=options["reg_group"],
                unregistered_only=options["unregistered_only"],
                actor="cli",
            )
        except NoStudents as exc:
            raise CommandError(f"{school.name}: {exc}; no letters were made") from None
        try:
            _write_private(out, issued.pdf)
        except OSError as exc:
            letter_batch_revoke(batch=issued.batch, actor="cli")
            raise CommandError(
                f"{out}: {exc.strerror or exc}; the codes made for it are revoked"
            ) from None
        plural = "" if issued.count == 1 else "s"
        self.stdout.write(
            f"Wrote {issued.count} letter{plural} for {school.name} to {out} "
            f"(batch {issued.batch.pk}). Earlier letters stay valid."
        )


def _write_private(path: Path, data: bytes) -> None:
    """Write the file whole or not at all, readable by its owner only: every page carries a
    live code, and a half-written PDF would be printed short without anyone noticing."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
