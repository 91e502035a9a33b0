"""Files a school's sync holds outside the import history: whole MIS exports, so personal data.

* What a drop folder has already given (its ``done/`` and ``failed/``), kept only a while for
  the data manager to look back at, in every folder the school's sync has used
  (:class:`~homelink.sync.models.TakenFolder`): moving the sync elsewhere or removing it does
  not take them out of retention or erasure.
* Uploads into a drop folder that never finished (``nightly.xml.filepart`` after a cut SFTP
  transfer): never taken, so they would stay for good.
* The private work folder (``.sync-*`` in the school's import store) of a run whose process
  stopped (a worker killed mid-run), once it is older than the import lock lives.

Retention removes the first two once they are older than its uploads period, and the last at
once; an erasure removes them all, since they name the person erased (the register, and the
stored copy of a file still waiting for a decision, are enough)."""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import stat
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from homelink.mis.uploads import school_folder
from homelink.sync.models import SyncSource, TakenFolder
from homelink.sync.sources.folder import DONE, FAILED, unfinished

logger = logging.getLogger(__name__)

#: The work folder of a run in the school's import store starts with this.
WORK_PREFIX = ".sync-"
#: An unfinished upload that has not changed for this long is not arriving any more.
UNFINISHED_GRACE = dt.timedelta(hours=1)


def _folders(school_id: int) -> list[Path]:
    """Every drop folder the school's sync has used, the current one included."""
    folders = set(TakenFolder.objects.filter(school_id=school_id).values_list("folder", flat=True))
    current = SyncSource.objects.filter(school_id=school_id, kind=SyncSource.Kind.FOLDER)
    folders.update(current.exclude(folder="").values_list("folder", flat=True))
    return [Path(folder) for folder in sorted(folders)]


def _entries(where: Path) -> list[os.DirEntry[str]]:
    try:
        return list(os.scandir(where))
    except OSError:
        return []


def _done_and_failed(folder: Path, cutoff: float | None) -> list[Path]:
    found = []
    for sub in (DONE, FAILED):
        for entry in _entries(folder / sub):
            st = entry.stat(follow_symlinks=False)
            # The move into done/ or failed/ set the ctime: when the file was taken.
            if stat.S_ISREG(st.st_mode) and (cutoff is None or st.st_ctime < cutoff):
                found.append(Path(entry.path))
    return found


def _abandoned_uploads(folder: Path, cutoff: float) -> list[Path]:
    found = []
    for entry in _entries(folder):
        st = entry.stat(follow_symlinks=False)
        if (
            stat.S_ISREG(st.st_mode)
            and unfinished(entry.name)
            and max(st.st_ctime, st.st_mtime) < cutoff
        ):
            found.append(Path(entry.path))
    return found


def holds_taken_files(folder: Path) -> bool:
    """Whether a drop folder's done/ or failed/ still keep a file."""
    return bool(_done_and_failed(folder, None))


def taken_files(school_id: int, *, before: dt.datetime | None = None) -> list[Path]:
    """The school's files a sync holds (module docstring): what its drop folders took before
    ``before``, and uploads into them that stopped before then (all when None, but for an
    upload changed within the hour), and the work folders of runs that stopped. Links are never
    followed or counted."""
    cutoff = before.timestamp() if before is not None else None
    # All at once for an erasure, but not an upload still arriving.
    unfinished = (before or timezone.now() - UNFINISHED_GRACE).timestamp()
    found: set[Path] = set()
    for folder in _folders(school_id):
        found.update(_done_and_failed(folder, cutoff))
        found.update(_abandoned_uploads(folder, unfinished))
    found.update(work_folders(school_id))
    return sorted(found)


def _last_change(folder: Path) -> float:
    """The latest change anywhere in a work folder (links not followed)."""
    latest = folder.lstat().st_mtime
    for root, dirs, files in os.walk(folder):
        for name in (*dirs, *files):
            try:
                latest = max(latest, os.lstat(os.path.join(root, name)).st_mtime)
            except OSError:
                continue
    return latest


def work_folders(school_id: int) -> list[Path]:
    """Work folders left in the school's import store by sync runs whose process stopped: none
    of their contents changed for as long as the import lock lives (a run still going keeps
    writing, or holds the lease that keeps it from being taken for dead)."""
    stale = timezone.now().timestamp() - settings.HOMELINK_IMPORT_LOCK_SECONDS
    found = []
    for entry in _entries(school_folder(school_id)):
        if not entry.name.startswith(WORK_PREFIX) or not entry.is_dir(follow_symlinks=False):
            continue
        try:
            if _last_change(Path(entry.path)) < stale:
                found.append(Path(entry.path))
        except OSError:
            continue
    return found


def taken_forget(files: list[Path]) -> int:
    """Delete ``files`` (and work folders, whole) once the caller's transaction commits; how
    many that is."""

    def delete() -> None:
        for path in files:
            try:
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
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
