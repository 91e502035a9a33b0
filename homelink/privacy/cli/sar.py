"""``homelink privacy sar --school URN (--adult ID | --member MISID) --out FILE.zip``: log a
subject access request and write everything held about the person to a zip.

The zip is written next to its final name and renamed into place, so a reader never sees half
a file; an existing file is kept unless ``--overwrite`` says otherwise. The request is logged
(received today unless ``--received`` says when) and the export audited in one transaction
with the write: a file that could not be written leaves no record of a download.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError, CommandParser
from django.db import transaction

from homelink.privacy.sar import find_subject, sar_export, sar_log
from homelink.register.models import Adult
from homelink.schools.selectors import school_by_urn_or_error

HELP = (
    "Subject access: log the request and write everything held about one adult or member "
    "(subject.json and a readable PDF) to a zip."
)


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"--received takes a date as YYYY-MM-DD, not {value!r}") from None


def add_arguments(parser: CommandParser) -> None:
    parser.add_argument("--school", required=True, metavar="URN", help="the school's URN")
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument(
        "--adult",
        type=int,
        metavar="ID",
        help="a linked adult: the adult_id 'homelink export' prints",
    )
    who.add_argument("--member", metavar="MISID", help="a student or staff member, by MIS id")
    parser.add_argument("--out", required=True, metavar="FILE.zip", help="where to write the zip")
    parser.add_argument(
        "--received",
        metavar="YYYY-MM-DD",
        help="the day the request reached the school (default today); due a month later",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace FILE.zip if it exists already"
    )


def write_atomically(path: Path, content: bytes) -> None:
    """Write ``content`` to a temporary file beside ``path``, then rename it into place."""
    handle, temporary = tempfile.mkstemp(prefix=".sar-", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(content)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def run(options: dict[str, Any], stdout: Any) -> None:
    school = school_by_urn_or_error(options["school"])
    out = Path(options["out"])
    if out.exists() and not options["overwrite"]:
        raise CommandError(f"{out} exists already: choose another name, or add --overwrite")
    if not out.parent.is_dir():
        raise CommandError(f"{out.parent} is not a folder")
    received = _date(options["received"]) if options.get("received") else None
    try:
        subject = find_subject(
            school, adult_id=options.get("adult"), mis_id=options.get("member") or ""
        )
        with transaction.atomic():
            request = sar_log(
                school=school,
                actor="cli",
                adult=subject if isinstance(subject, Adult) else None,
                member=None if isinstance(subject, Adult) else subject,
                received_on=received,
            )
            export = sar_export(request=request, actor="cli", via="cli")
            try:
                write_atomically(out, export.content)
            except OSError as error:
                raise CommandError(f"could not write {out}: {error.strerror}") from None
    except ValidationError as error:
        raise CommandError(" ".join(error.messages)) from None
    stdout.write(
        f"Wrote {out} ({len(export.content):,} bytes). Request logged: received "
        f"{request.received_on:%d %b %Y}, due {request.due_on:%d %b %Y}. Read it before "
        "sending, and mark the request complete on the console's Subject access page."
    )
