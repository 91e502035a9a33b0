"""The drop folder: a folder on the server that the MIS's scheduled export (SIMS writes a CTF or
a CSV there every night) or an SFTP upload fills.

What is taken. The candidates are the regular files directly in the folder; ``done/`` and
``failed/`` (inside it) keep what was taken before. Never a candidate: hidden files (``.x``,
which is also how rsync names a file it is still receiving), names an editor or an unfinished
upload leaves (``~x``, ``x~``, ``*.part``, ``*.tmp``, ``*.partial``, ``*.filepart`` as WinSCP
writes, ``*.crdownload``), ``Thumbs.db`` and ``desktop.ini``, sub-folders, and symbolic links:
a link is never followed (it could point anywhere on the server), only left where it is and
named in the message when no file is found.

When a file is complete. A file is *still arriving* while anything in it changed less than
``HOMELINK_SYNC_SETTLE_SECONDS`` ago, by the server's clock: its ctime (which every write and
rename moves, and which an uploader cannot set) or its mtime, whichever is later (an mtime in
the future, a timestamp kept from another machine, is not believed). Then we look twice: the
file is copied into the run's private work folder through a descriptor opened without following
links, and if its size, mtime or ctime differ after the copy from before it, it was still being
written. So the import reads a snapshot that nobody can change or swap for a link under it.

While any file in the folder (an unfinished upload too) is still arriving, nothing is taken and
the source says so (``retry``): that file is most likely tonight's export, and taking an older
one instead would import stale data and leave the new one until the next night.

The newest complete file (by mtime, then name) is taken. A file larger than
``HOMELINK_IMPORT_MAX_BYTES`` is refused unread. After a real run, :meth:`FolderSource.finish`
moves the taken file to ``done/`` (imported, or the same as last time) or ``failed/`` (refused,
broken or stopped by a guard), and the older complete files to ``done/`` as superseded, so that
they are not taken the next night; a name already there gets the run's time in front, so that
nothing is overwritten. A dry run leaves the folder exactly as it was.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import logging
import os
import stat
import time
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

from homelink.mis.uploads import max_upload_bytes
from homelink.sync.models import SyncSource
from homelink.sync.sources import Fetched, SourceError

logger = logging.getLogger(__name__)

DONE = "done"
FAILED = "failed"
#: Left by an upload or an editor that has not finished (WinSCP's ``.filepart``, ...).
UNFINISHED_SUFFIXES = (".part", ".tmp", ".partial", ".filepart", ".crdownload")
#: What Windows leaves in any folder it shows.
SYSTEM_NAMES = frozenset({"thumbs.db", "desktop.ini"})
#: At most this many names in one message.
NAMES_SHOWN = 3
# Why something in the folder is never taken, in the order a message lists them.
LINKS = "links, which homelink never follows"
UNREADABLE_NAMES = "names that are not UTF-8 text (rename them)"
FOLDERS = "folders (send a OneRoster export as a .zip)"
NOT_FILES = "things that are not files"
UNFINISHED = "uploads or edits that did not finish"
REASONS = (LINKS, UNREADABLE_NAMES, FOLDERS, NOT_FILES, UNFINISHED)
_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
# O_NONBLOCK: a file swapped for a pipe between the look and the open must not hang the worker.
_OPEN_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


@dataclass(frozen=True)
class _Entry:
    """One file as it was seen: enough to tell later whether it is still the same file."""

    name: str
    size: int
    mtime_ns: int
    ctime_ns: int
    ino: int
    dev: int

    @classmethod
    def of(cls, name: str, st: os.stat_result) -> _Entry:
        return cls(name, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)

    def changed_at(self, wall: float) -> float:
        """When the file last changed, in seconds since the epoch."""
        ctime, mtime = self.ctime_ns / 1e9, self.mtime_ns / 1e9
        return ctime if mtime > wall + 1 else max(ctime, mtime)

    def same_as(self, st: os.stat_result) -> bool:
        return stat.S_ISREG(st.st_mode) and (
            st.st_ino,
            st.st_dev,
            st.st_size,
            st.st_mtime_ns,
            st.st_ctime_ns,
        ) == (self.ino, self.dev, self.size, self.mtime_ns, self.ctime_ns)


@dataclass
class _Scan:
    #: Complete candidates, newest first.
    complete: list[_Entry] = field(default_factory=list)
    #: Files (candidates or not) that changed within the settle time, newest first.
    arriving: list[_Entry] = field(default_factory=list)
    #: What else the folder holds, by why it is never taken.
    skipped: dict[str, list[str]] = field(default_factory=dict)

    def skip(self, reason: str, name: str) -> None:
        self.skipped.setdefault(reason, []).append(_shown(name))


def unfinished(name: str) -> bool:
    lowered = name.lower()
    return name.startswith("~") or name.endswith("~") or lowered.endswith(UNFINISHED_SUFFIXES)


def _shown(name: str) -> str:
    """A file name as a message may show it: printable, not absurdly long."""
    name = name.encode("utf-8", "replace").decode("utf-8")
    name = "".join(c if c.isprintable() else "?" for c in name)
    return name if len(name) <= 80 else name[:77] + "..."


def _names(items: list[str]) -> str:
    shown = ", ".join(items[:NAMES_SHOWN])
    more = len(items) - NAMES_SHOWN
    return shown + (f" and {more} more" if more > 0 else "")


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KB"
    if n < 1024**3:
        return f"{n / 1024**2:.1f} MB"
    return f"{n / 1024**3:.1f} GB"


def _zone() -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(settings.TIME_ZONE)


def _when(moment: dt.datetime) -> str:
    """A local date and time as people write it: "Tuesday 13 May 2025 at 02:00"."""
    local = moment.astimezone(_zone())
    return f"{local:%A} {local.day} {local:%B %Y} at {local:%H:%M}"


def _local_iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, tz=_zone()).isoformat(timespec="seconds")


def _scan(folder_fd: int, *, settle: float, wall: float) -> _Scan:
    scan = _Scan()
    for name in os.listdir(folder_fd):
        try:
            st = os.lstat(name, dir_fd=folder_fd)
        except FileNotFoundError:
            continue  # moved away while we looked
        lowered = name.lower()
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            # Not text in any encoding we know: it could be neither shown nor recorded.
            scan.skip(UNREADABLE_NAMES, name)
            continue
        if stat.S_ISLNK(st.st_mode):
            scan.skip(LINKS, name)
            continue
        if stat.S_ISDIR(st.st_mode):
            if name not in (DONE, FAILED) and not name.startswith("."):
                scan.skip(FOLDERS, name)
            continue
        if not stat.S_ISREG(st.st_mode):
            scan.skip(NOT_FILES, name)
            continue
        if lowered in SYSTEM_NAMES or name in (DONE, FAILED):
            continue
        entry = _Entry.of(name, st)
        if wall - entry.changed_at(wall) < settle:
            # Hidden and unfinished names too: rsync and WinSCP write the file under such a
            # name and rename it once it is whole.
            scan.arriving.append(entry)
        elif name.startswith("."):
            continue
        elif unfinished(name):
            scan.skip(UNFINISHED, name)
        else:
            scan.complete.append(entry)
    scan.complete.sort(key=lambda e: (e.mtime_ns, e.name), reverse=True)
    scan.arriving.sort(key=lambda e: (e.ctime_ns, e.name), reverse=True)
    return scan


class FolderSource:
    """The :class:`~homelink.sync.sources.Source` of a drop folder (module docstring)."""

    def __init__(self, config: SyncSource, *, now: dt.datetime) -> None:
        self.config = config
        self.now = now
        self.folder = Path(config.folder)
        #: What :meth:`fetch` took and found superseded, for :meth:`finish` to move.
        self._taken: _Entry | None = None
        self._superseded: list[_Entry] = []

    # --- fetch -----------------------------------------------------------------------------

    def fetch(self, workdir: Path, *, dry_run: bool) -> Fetched:
        self._taken, self._superseded = None, []
        settle = float(settings.HOMELINK_SYNC_SETTLE_SECONDS)
        folder_fd = self._open_folder()
        try:
            if not dry_run:
                self._check_writable(folder_fd)
            wall = time.time()
            try:
                scan = _scan(folder_fd, settle=settle, wall=wall)
            except OSError as exc:
                raise self._unreadable(exc) from None
            if scan.arriving:
                raise SourceError(self._arriving_message(scan.arriving[0], settle, wall))
            if not scan.complete:
                raise SourceError(self._nothing_message(folder_fd, scan))
            newest, older = scan.complete[0], scan.complete[1:]
            cap = max_upload_bytes()
            if newest.size > cap:
                where = "it stays in the folder on a dry run"
                if not dry_run:
                    try:
                        self._move_if_same(folder_fd, newest, FAILED)
                        for entry in older:
                            self._move_if_same(folder_fd, entry, DONE)
                        where = "it was moved to failed/"
                    except OSError as exc:
                        raise self._unreadable(exc) from None
                raise SourceError(
                    f"the newest file in the drop folder, {_shown(newest.name)} "
                    f"({_size(newest.size)}), is larger than the largest import accepted "
                    f"({_size(cap)}), so it was not read ({where}); if it is a real export, ask "
                    "whoever runs the homelink server to raise HOMELINK_IMPORT_MAX_BYTES",
                    retry=False,
                )
            copy = self._copy(folder_fd, newest, workdir, cap=cap, settle=settle)
        finally:
            os.close(folder_fd)
        self._taken, self._superseded = newest, older
        detail: dict[str, object] = {
            "modified": _local_iso(newest.mtime_ns / 1e9),
            "bytes": newest.size,
        }
        if older:
            detail["superseded"] = [e.name for e in older]
        # The format is detected from the copy, which keeps the file's name, as for an upload.
        return Fetched(path=copy, file_name=newest.name, detail=detail)

    def _open_folder(self) -> int:
        folder = self.config.folder
        if not folder or not self.folder.is_absolute():
            raise SourceError(
                "no drop folder is set for this school's sync: set one on the imports page",
                retry=False,
            )
        try:
            return os.open(folder, _OPEN_DIR)
        except FileNotFoundError:
            raise SourceError(
                f"the drop folder {folder} does not exist: ask whoever runs the homelink server "
                "to create it, or set the sync to another folder on the imports page",
                retry=False,
            ) from None
        except NotADirectoryError:
            raise SourceError(
                f"the drop folder {folder} is not a folder: set the sync to a folder on the "
                "imports page",
                retry=False,
            ) from None
        except OSError as exc:
            raise self._unreadable(exc) from None

    def _unreadable(self, exc: OSError) -> SourceError:
        if exc.errno in (errno.EACCES, errno.EPERM):
            return SourceError(
                f"homelink is not allowed to read the drop folder {self.config.folder}: ask "
                "whoever runs the homelink server to give the homelink service read and write "
                "access to it",
                retry=False,
            )
        # An input/output error, a network share that went away: it may pass.
        return SourceError(
            f"the drop folder {self.config.folder} could not be read "
            f"({exc.strerror or type(exc).__name__})"
        )

    def _check_writable(self, folder_fd: int) -> None:
        """Before anything is imported: the taken file can be moved away afterwards (else the
        same file would be taken again each night)."""
        if not os.access(self.config.folder, os.W_OK | os.X_OK):
            raise SourceError(
                f"homelink may read the drop folder {self.config.folder} but not move files "
                "out of it into done/ and failed/: ask whoever runs the homelink server to give "
                "the homelink service write access to it",
                retry=False,
            )
        for name in (DONE, FAILED):
            try:
                st = os.lstat(name, dir_fd=folder_fd)
            except FileNotFoundError:
                continue
            if not stat.S_ISDIR(st.st_mode):
                raise SourceError(self._not_a_subfolder(name), retry=False)

    def _not_a_subfolder(self, name: str) -> str:
        return (
            f"{self.folder / name} is not a folder (a link is never followed): homelink moves "
            f"the files it took into a folder of that name, so rename or remove what is there"
        )

    def _arriving_message(self, entry: _Entry, settle: float, wall: float) -> str:
        ago = max(0.0, wall - entry.changed_at(wall))
        return (
            f"a file is still arriving in the drop folder ({_shown(entry.name)}, "
            f"{_size(entry.size)} so far, last changed {ago:.1f} seconds ago): a file is taken "
            f"once it has not changed for {settle:g} seconds"
        )

    def _nothing_message(self, folder_fd: int, scan: _Scan) -> str:
        # The later of the newest file kept in done/ or failed/ and the last run that took one:
        # a file's time may be kept from the machine it came from, so it can be older.
        times = [t for t in (self._last_arrival(folder_fd), self.config.last_success_at) if t]
        since = _when(max(times)) if times else "the sync was set up"
        message = f"no file arrived in the drop folder since {since}"
        if scan.skipped:
            message += "; it holds only what is never imported: " + "; ".join(
                f"{reason}: {_names(sorted(scan.skipped[reason]))}"
                for reason in REASONS
                if reason in scan.skipped
            )
        return message

    def _last_arrival(self, folder_fd: int) -> dt.datetime | None:
        """When the newest file in done/ or failed/ was written (a move keeps the time; one
        in the future, from a machine whose clock is ahead, is not believed)."""
        newest: float | None = None
        wall = time.time()
        for name in (DONE, FAILED):
            try:
                sub_fd = os.open(name, _OPEN_DIR | os.O_NOFOLLOW, dir_fd=folder_fd)
            except OSError:
                continue
            try:
                for child in os.listdir(sub_fd):
                    try:
                        st = os.lstat(child, dir_fd=sub_fd)
                    except OSError:
                        continue
                    if stat.S_ISREG(st.st_mode) and st.st_mtime <= wall + 1:
                        newest = st.st_mtime if newest is None else max(newest, st.st_mtime)
            except OSError:
                pass
            finally:
                os.close(sub_fd)
        return None if newest is None else dt.datetime.fromtimestamp(newest, tz=dt.UTC)

    def _copy(
        self, folder_fd: int, entry: _Entry, workdir: Path, *, cap: int, settle: float
    ) -> Path:
        """Copy the file into ``workdir``: the import reads this snapshot, never the folder."""
        changed = SourceError(
            f"a file is still arriving in the drop folder ({_shown(entry.name)} changed while "
            f"it was read): a file is taken once it has not changed for {settle:g} seconds"
        )
        target = workdir / entry.name
        try:
            src = os.open(entry.name, _OPEN_FILE, dir_fd=folder_fd)
        except PermissionError:
            raise self._file_unreadable(entry) from None
        except OSError:
            # Gone, or swapped for a link (ELOOP), since we looked.
            raise changed from None
        try:
            if not entry.same_as(os.fstat(src)):
                raise changed
            written = 0
            out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            with os.fdopen(out, "wb") as sink:
                while block := os.read(src, 1 << 20):
                    written += len(block)
                    if written > cap:
                        raise changed  # it grew past the cap while we read it
                    sink.write(block)
            # The second look: the file we copied did not change while we copied it.
            if written != entry.size or not entry.same_as(os.fstat(src)):
                raise changed
        except SourceError:
            target.unlink(missing_ok=True)
            raise
        except PermissionError:
            target.unlink(missing_ok=True)
            raise self._file_unreadable(entry) from None
        except OSError as exc:
            target.unlink(missing_ok=True)
            raise self._unreadable(exc) from None
        finally:
            os.close(src)
        return target

    def _file_unreadable(self, entry: _Entry) -> SourceError:
        return SourceError(
            f"homelink is not allowed to read {_shown(entry.name)} in the drop folder: ask "
            "whoever runs the homelink server to let the homelink service read the files put "
            "there",
            retry=False,
        )

    # --- finish ----------------------------------------------------------------------------

    def finish(self, fetched: Fetched, *, imported: bool) -> None:
        """Move the taken file to done/ (``imported``) or failed/, and the older ones to done/.

        Never raises: the import has already happened. A file that changed since it was taken
        is left for the next run (it is a new one); a move that fails is logged, and the next
        run finds the same file again ("no changes")."""
        taken, superseded = self._taken, self._superseded
        self._taken, self._superseded = None, []
        if taken is None or fetched.file_name != taken.name:
            return
        try:
            folder_fd = os.open(self.config.folder, _OPEN_DIR)
        except OSError as exc:
            logger.warning("drop folder %s: cannot open it to move files: %s", self.folder, exc)
            return
        try:
            self._move_if_same(folder_fd, taken, DONE if imported else FAILED)
            for entry in superseded:
                self._move_if_same(folder_fd, entry, DONE)
        except (OSError, SourceError) as exc:
            logger.warning("drop folder %s: a file could not be moved: %s", self.folder, exc)
        finally:
            os.close(folder_fd)

    def _move_if_same(self, folder_fd: int, entry: _Entry, to: str) -> None:
        """Move ``entry`` into the sub-folder ``to`` if it is still the file we saw."""
        try:
            st = os.lstat(entry.name, dir_fd=folder_fd)
        except FileNotFoundError:
            return  # another run moved it
        if not entry.same_as(st):
            logger.info(
                "drop folder %s: %s changed after it was seen; left", self.folder, entry.name
            )
            return
        sub_fd = self._subfolder(folder_fd, to)
        try:
            name = self._free_name(sub_fd, entry.name)
            os.rename(entry.name, name, src_dir_fd=folder_fd, dst_dir_fd=sub_fd)
        finally:
            os.close(sub_fd)

    def _subfolder(self, folder_fd: int, name: str) -> int:
        with contextlib.suppress(FileExistsError):
            os.mkdir(name, 0o700, dir_fd=folder_fd)
        try:
            # O_NOFOLLOW: a link put in place of done/ must not send the files elsewhere.
            return os.open(name, _OPEN_DIR | os.O_NOFOLLOW, dir_fd=folder_fd)
        except OSError as exc:
            if exc.errno in (errno.ENOTDIR, errno.ELOOP):
                raise SourceError(self._not_a_subfolder(name), retry=False) from None
            raise

    def _free_name(self, sub_fd: int, name: str) -> str:
        """``name``, or the run's local time in front of it when a file of that name is there."""
        stamp = self.now.astimezone(_zone()).strftime("%Y%m%d-%H%M%S")
        candidates = [name, f"{stamp}-{name}"] + [f"{stamp}-{n}-{name}" for n in range(2, 1000)]
        for candidate in candidates:
            try:
                os.lstat(candidate, dir_fd=sub_fd)
            except FileNotFoundError:
                return candidate
        raise SourceError(f"too many files named {_shown(name)} in the drop folder", retry=False)
