"""Where a scheduled sync takes its data from: one module per kind of source, one interface.

A source *fetches*: it leaves a file the existing parsers read unchanged (a CTF, a CSV, a
OneRoster zip) in the work folder it is given, or says that nothing changed, or raises
:class:`SourceError` saying in plain English why it could not. After the import the runner calls
:meth:`Source.finish` (never on a dry run), so that a drop folder can move its file away. The
runner (:mod:`homelink.sync.services`) does everything else: the import itself, under exactly
the rules and guards of a manual one, the history, the schedule and the alerts.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from homelink.mis.records import Format


class SourceError(Exception):
    """The source could not give a file. ``str()`` is for the school's data manager (no
    secret, no personal data); ``retry`` says whether trying again within the hour may help
    (a server down, a file still arriving) or only someone's action will (a refused client id)."""

    def __init__(self, message: str, *, retry: bool = True) -> None:
        super().__init__(message)
        self.retry = retry


@dataclass
class Fetched:
    """What a source gave for one run."""

    #: The file (or OneRoster zip) to import; None when ``unchanged`` says why there is none.
    path: Path | None
    #: The name the import history shows (a drop folder's file name, "oneroster-full.zip").
    file_name: str
    #: The format, when the source knows it (else detected from the file, as for an upload).
    format: Format | None = None
    #: False for a OneRoster delta: it only adds and updates (and so never marks anyone left).
    full: bool = True
    #: Non-empty: the source says nothing changed since the last sync, and this is why.
    unchanged: str = ""
    #: Kept on the school's sync once the run succeeds: where the next delta starts.
    cursor: str = ""
    #: Shown in the history beside the summary (pages fetched, records, the file's time...).
    detail: dict[str, Any] = field(default_factory=dict)


class Source(Protocol):
    def fetch(self, workdir: Path, *, dry_run: bool) -> Fetched:
        """Fetch into ``workdir`` (a private folder the runner removes afterwards)."""
        ...

    def finish(self, fetched: Fetched, *, imported: bool) -> None:
        """After a real (not dry) run: ``imported`` when the file went in or changed nothing,
        False when it was refused, broken or stopped by a guard."""
        ...


def source_for(config: Any, *, now: dt.datetime) -> Source:
    """The source of a :class:`~homelink.sync.models.SyncSource`."""
    from homelink.sync.models import SyncSource

    if config.kind == SyncSource.Kind.FOLDER:
        from homelink.sync.sources.folder import FolderSource

        return FolderSource(config, now=now)
    from homelink.sync.sources.oneroster_api import OneRosterSource

    return OneRosterSource(config, now=now)
