"""Files a drop folder has already given (its ``done/`` and ``failed/``): whole MIS exports, so
personal data, kept only a while for the data manager to look back at. Retention removes those
taken more than its uploads period ago; an erasure removes them all, since they name the person
erased (the register, and the stored copy of a file still waiting for a decision, are enough)."""

from __future__ import annotations

import datetime as dt
import logging
import os
import stat
from pathlib import Path

from django.db import transaction

from homelink.sync.models import SyncSource
from homelink.sync.sources.folder import DONE, FAILED

logger = logging.getLogger(__name__)


def taken_files(school_id: int, *, before: dt.datetime | None = None) -> list[Path]:
    """The school's drop-folder files already taken, moved there before ``before`` (all when
    None). Links are never followed or counted."""
    config = SyncSource.objects.filter(school_id=school_id, kind=SyncSource.Kind.FOLDER).first()
    if config is None or not config.folder:
        return []
    cutoff = before.timestamp() if before is not None else None
    found = []
    for sub in (DONE, FAILED):
        where = Path(config.folder) / sub
        try:
            entries = list(os.scandir(where))
        except OSError:
            continue
        for entry in entries:
            st = entry.stat(follow_symlinks=False)
            # The move into done/ or failed/ set the ctime: when the file was taken.
            if stat.S_ISREG(st.st_mode) and (cutoff is None or st.st_ctime < cutoff):
                found.append(Path(entry.path))
    return sorted(found)


def taken_forget(files: list[Path]) -> int:
    """Delete ``files`` once the caller's transaction commits; how many that is."""

    def delete() -> None:
        for path in files:
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                # The process may not be the one the folder belongs to (a web server that
                # cannot write the drop folder): the purge stands; the file is named by folder.
                logger.warning(
                    "a drop-folder file in %s not deleted: %s", path.parent, exc.strerror
                )

    if files:
        transaction.on_commit(delete)
    return len(files)
