"""What the sync subcommands share: the time a sync runs, and times as they print them."""

from __future__ import annotations

import datetime as dt
import re

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError
from django.utils import timezone

from homelink.mis.models import ImportRun

_HH_MM = re.compile(r"(\d{1,2}):(\d{2})")


def parse_at(text: str) -> dt.time:
    """``--at HH:MM`` (24-hour, the server's TIME_ZONE), or a CommandError saying how to write it."""
    match = _HH_MM.fullmatch(text.strip())
    if match is not None:
        hour, minute = int(match[1]), int(match[2])
        if hour < 24 and minute < 60:
            return dt.time(hour, minute)
    raise CommandError(
        f"--at {text!r} is not a time of day: give it as HH:MM on the 24-hour clock, e.g. 02:00 "
        "or 23:30. Nothing was changed."
    )


def refused(error: ValidationError) -> CommandError:
    """A service's refusal, in its own plain words."""
    text = " ".join(m.rstrip(".") + "." for m in error.messages)
    return CommandError(f"{text} Nothing was changed.")


def source_words(kind: str, where: str = "") -> str:
    """A source as a sentence names it: "the drop folder /srv/x", "the OneRoster API at https://…"."""
    if kind == ImportRun.Source.FOLDER:
        return f"the drop folder {where}".rstrip()
    if kind == ImportRun.Source.ONEROSTER_API:
        return f"the OneRoster API at {where}" if where else "the OneRoster API"
    return "a file"


def when(moment: dt.datetime | None, *, never: str = "never") -> str:
    """A stored time in the server's time zone, as the list prints it."""
    if moment is None:
        return never
    return f"{timezone.localtime(moment):%a %d %b %Y %H:%M}"


def iso(moment: dt.datetime | None) -> str | None:
    return None if moment is None else timezone.localtime(moment).isoformat(timespec="seconds")
