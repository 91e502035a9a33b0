"""OneRoster CSV 1.0, 1.1 and 1.2 (mis-formats.md §3), from a folder or a zip.

What is read, and the choices made where the specification or real exports leave room:

* **Files.** ``manifest.csv`` (version, and ``file.users`` bulk/delta), ``users.csv``, ``roles.csv``
  (1.2), ``orgs.csv`` (org ids), and ``classes.csv`` + ``enrollments.csv`` for registration groups.
  A zip, or a folder, whose files sit in one subfolder is read from that subfolder. Zip members
  with absolute or ``..`` paths are refused, as is a zip whose members would unpack to more than
  :data:`MAX_ZIP_BYTES` (200 MB) or :data:`MAX_ZIP_MEMBERS` members: a real roster is far smaller.
* **Version and qualifier.** ``oneroster.version`` from the manifest; without a manifest, 1.2 when
  ``roles.csv`` is present, else 1.1. ``file.users`` gives bulk or delta; when it is missing (or
  the manifest is) the file is read as bulk and a note says so.
* **Headers** match case-insensitively, ignoring spaces, underscores and a byte-order mark. A
  header that is not a OneRoster column (``dataLastModified``, ``prefferedGivenName``…) is ignored
  with one note naming it; ``metadata.*`` extension columns are ignored silently, as the
  specification allows them. Trailing cells missing from a row read as blank (one note per file).
* **Roles.** 1.2 takes roles from ``roles.csv``: the user's primary role wins, secondary roles are
  only used when a user has no primary role. 1.0/1.1 take the ``role`` column (also the fallback
  for a 1.2 user absent from ``roles.csv``). Students are students; ``teacher`` is a teacher;
  ``aide`` and ``counselor`` are support staff; administrators (any kind), ``principal`` and
  ``proctor`` are other adult members. ``parent``, ``guardian`` and ``relative`` are contacts, never
  members. A user whose primary role is teacher but who also holds a secondary guardian role (the
  1.2 sample) is a teacher and is not taken as a contact.
* **Ids.** A member's ``mis_id`` is the ``sourcedId`` (stable across exports); the school-facing
  ``identifier`` goes to ``admission_no``. A contact's ``mis_id`` is its ``sourcedId``.
* **Contacts and priority.** OneRoster has no priority and no parental responsibility. Links are
  taken from both sides: a student's ``agentSourcedIds`` naming a parent, guardian or relative, and
  a parent's/guardian's/relative's ``agentSourcedIds`` naming a student. The priority is the
  agent's position among the eligible agents of the student's own list (first = 1); links known
  only from the contact's side follow, in the order their rows appear in ``users.csv``. Parents and
  guardians have parental responsibility; relatives do not. An agent id naming anyone else (a
  teacher, as in both moodle samples) or no user in the file is ignored with a note; in a delta,
  an agent the file does not include keeps its place in the priority order (it is probably an
  unchanged parent, and promoting the next agent would make the wrong adult priority 1). A delta
  that lists a changed parent but not the student changes nothing: records are per student.
* **No contacts at all.** A ``users.csv`` with no parent, guardian or relative says nothing about
  contacts (an LMS roster usually leaves them out): the header says ``carries_contacts=False`` and
  students carry ``contacts=None`` so existing links are left alone.
* **Phones and email.** ``sms`` is a mobile (``M``), ``phone`` a home number (``H``). A blank email
  in a present column is "", an absent column is ``None`` (says nothing).
* **Years.** The first of ``grades``: ``KG`` is reception (``R``), ``01``…``13`` lose the leading
  zero, anything else is kept as given.
* **Status.** Rows whose ``status`` is ``tobedeleted`` are skipped with a note: an import never
  deletes on a file's say-so (a delta only adds and updates). A user with ``enabledUser`` false is
  kept (a disabled login says nothing about whether the person is still at the school or still a
  parent) and counted in a note.
* **One organisation of a trust's export** (``org=``): a multi-academy trust's export covers
  several orgs (its schools), and is read once per school (homelink/trusts/imports.py). A user
  belongs to the orgs of its ``orgSourcedIds`` and ``primaryOrgSourcedId``, and in 1.2 those of
  its ``roles.csv`` rows for the role it is read as. The read keeps the students and staff of
  that org and, through the links worked out over the whole file, their contacts; the header
  says ``org_ids=(org,)`` and carries students, staff or contacts only when that org's records
  do, exactly as if the file held that org's records alone. A student enrolled at two orgs of
  the file is read into each (a dual registration: refusing it would mark the child as left at
  the school still teaching it), with a note in each. Notes about one person are kept only in
  the read of an org the person belongs to (or, for a contact, whose students they are), so no
  school's import history names another school's people. Every other org's records are read
  too, and a broken file fails every org's read alike.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import IO, NamedTuple

from homelink.mis.formats.csv_mapped import Opener, Table, iter_rows, path_opener, read_table
from homelink.mis.records import (
    ContactRecord,
    FileHeader,
    Format,
    MemberRecord,
    MisFormatError,
    ParsedFile,
    PhoneRecord,
    Role,
)

MAX_ZIP_BYTES = 200 * 1024 * 1024
MAX_ZIP_MEMBERS = 1000

_MEMBER_ROLES: dict[str, Role] = {
    "student": Role.STUDENT,
    "teacher": Role.TEACHER,
    "aide": Role.SUPPORT,
    "counselor": Role.SUPPORT,
    "administrator": Role.OTHER,
    "siteadministrator": Role.OTHER,
    "districtadministrator": Role.OTHER,
    "systemadministrator": Role.OTHER,
    "principal": Role.OTHER,
    "proctor": Role.OTHER,
}
CONTACT_ROLES = ("parent", "guardian", "relative")
_RESPONSIBLE = ("parent", "guardian")

# Known columns per file, as header keys (see _key). Anything else is noted and ignored.
_COLUMNS: dict[str, frozenset[str]] = {
    name: frozenset(c.casefold() for c in cols.split())
    for name, cols in {
        "manifest.csv": "propertyName value",
        "users.csv": "sourcedId status dateLastModified enabledUser orgSourcedIds role username "
        "userIds givenName familyName middleName identifier email sms phone agentSourcedIds "
        "grades password userMasterIdentifier resourceSourcedIds preferredGivenName "
        "preferredMiddleName preferredFamilyName primaryOrgSourcedId pronouns",
        "roles.csv": "sourcedId status dateLastModified userSourcedId roleType role beginDate "
        "endDate orgSourcedId userProfileSourcedId",
        "orgs.csv": "sourcedId status dateLastModified name type identifier parentSourcedId",
        "classes.csv": "sourcedId status dateLastModified title grades courseSourcedId classCode "
        "classType location schoolSourcedId termSourcedIds subjects subjectCodes periods "
        "resources",
        "enrollments.csv": "sourcedId status dateLastModified classSourcedId schoolSourcedId "
        "userSourcedId role primary beginDate endDate",
    }.items()
}


def _key(header: str) -> str:
    return "".join(header.lstrip("\ufeff").split()).replace("_", "").casefold()


class _User(NamedTuple):
    line: int
    sid: str
    given: str
    family: str
    identifier: str
    email: str | None
    sms: str | None
    phone: str | None
    agents: tuple[str, ...]
    grade: str
    role: str  # casefolded OneRoster role, "" when none is known
    enabled: bool
    #: The orgs of ``orgSourcedIds`` and ``primaryOrgSourcedId`` (roles.csv's are added later).
    orgs: tuple[str, ...] = ()


class OrgRecord(NamedTuple):
    """One organisation of ``orgs.csv``."""

    sourced_id: str
    name: str
    type: str  # casefolded: school, district, department, local, state, national…
    parent: str


class _Notes(list[str]):
    """The parser's notes, in order. A note about people is held with their ids, so that the
    read of one org keeps only the notes naming its own people and nobody else (:meth:`kept`)."""

    def __init__(self) -> None:
        super().__init__()
        self.subjects: dict[int, tuple[str, ...]] = {}

    def about(self, sids: str | tuple[str, ...], text: str) -> None:
        self.subjects[len(self)] = (sids,) if isinstance(sids, str) else sids
        self.append(text)

    def kept(self, keep: Callable[[str], bool]) -> list[str]:
        return [
            note
            for i, note in enumerate(self)
            if all(keep(sid) for sid in self.subjects.get(i, ()))
        ]


class _Columns:
    """A table's known columns by key; reports unknown headers once each."""

    def __init__(self, table: Table, notes: list[str]) -> None:
        self.table = table
        self.index: dict[str, int] = {}
        known = _COLUMNS[table.name.casefold()]
        for i, header in enumerate(table.columns):
            key = _key(header)
            if not key:
                notes.append(f"{table.name}: column {i + 1} has no header: ignored")
            elif key in known:
                self.index.setdefault(key, i)
            elif not key.startswith("metadata."):
                notes.append(f"{table.name}: column {header!r} is not a OneRoster column: ignored")

    def require(self, *names: str) -> None:
        missing = [n for n in names if n.casefold() not in self.index]
        if missing:
            raise MisFormatError(
                f"required column(s) {', '.join(missing)} missing; the header line has: "
                f"{', '.join(self.table.columns)}",
                f"{self.table.name} line {self.table.header_line}",
            )

    def has(self, name: str) -> bool:
        return name.casefold() in self.index

    def get(self, cells: list[str], name: str) -> str | None:
        i = self.index.get(name.casefold())
        return None if i is None else cells[i]

    def text(self, cells: list[str], name: str) -> str:
        return self.get(cells, name) or ""


class _Source:
    """The CSV files of one OneRoster set, by lower-case file name."""

    def __init__(self, openers: dict[str, Opener], notes: list[str]) -> None:
        self.openers = openers
        self.notes = notes

    def has(self, name: str) -> bool:
        return name in self.openers

    def rows(self, name: str) -> tuple[_Columns, Iterator[tuple[int, list[str]]]]:
        table = read_table(self.openers[name], name, self.notes)
        columns = _Columns(table, self.notes)
        return columns, self._rows(table)

    def _rows(self, table: Table) -> Iterator[tuple[int, list[str]]]:
        short: list[int] = []
        yield from iter_rows(table, short)
        if short:
            self.notes.append(
                f"{table.name}: {len(short)} row(s) shorter than the header (first at line "
                f"{short[0]}): the missing cells read as blank"
            )


def _split_ids(raw: str) -> tuple[str, ...]:
    ids: dict[str, None] = {}
    for part in raw.split(","):
        part = part.strip().strip("\"'").strip()
        if part:
            ids[part] = None
    return tuple(ids)


def _year(grades: str) -> str:
    first = _split_ids(grades)[0] if grades.strip() else ""
    if first.casefold() == "kg":
        return "R"
    if first.isdigit() and 1 <= int(first) <= 13:
        return str(int(first))
    return first


def _deleted(status: str) -> bool:
    return status.strip().casefold() == "tobedeleted"


def _who(user: _User) -> str:
    return f"{user.sid} ({user.given} {user.family})".strip()


# --------------------------------------------------------------------------- sources


def _folder_openers(folder: Path) -> dict[str, Opener]:
    def listing(where: Path) -> dict[str, Opener]:
        return {p.name.casefold(): path_opener(p) for p in where.iterdir() if p.is_file()}

    files = listing(folder)
    if "users.csv" in files:
        return files
    inner = [d for d in sorted(folder.iterdir()) if d.is_dir() and "users.csv" in listing(d)]
    if len(inner) > 1:
        raise MisFormatError(
            f"several subfolders hold a users.csv ({', '.join(d.name for d in inner)}): "
            "give one roster at a time",
            str(folder),
        )
    return listing(inner[0]) if inner else files


def _zip_openers(zf: zipfile.ZipFile, name: str) -> dict[str, Opener]:
    infos = zf.infolist()
    if len(infos) > MAX_ZIP_MEMBERS:
        raise MisFormatError(
            f"the zip has {len(infos):,} members; a OneRoster export has a few dozen at most "
            f"(limit {MAX_ZIP_MEMBERS:,})",
            name,
        )
    total = 0
    files: list[tuple[PurePosixPath, zipfile.ZipInfo]] = []
    for info in infos:
        raw = info.filename.replace("\\", "/")
        path = PurePosixPath(raw)
        if raw.startswith("/") or ".." in path.parts or (path.parts and ":" in path.parts[0]):
            raise MisFormatError(
                f"the zip member {info.filename!r} has an unsafe path (absolute or with '..'): "
                "refusing the whole zip",
                name,
            )
        if info.is_dir() or "__MACOSX" in path.parts or path.name.startswith("._"):
            continue
        total += info.file_size
        files.append((path, info))
    if total > MAX_ZIP_BYTES:
        raise MisFormatError(
            f"the zip would unpack to {total:,} bytes, over the {MAX_ZIP_BYTES // 2**20} MB "
            "limit for a OneRoster export (a zip bomb?)",
            name,
        )
    folders = sorted({p.parent for p, _ in files if p.name.casefold() == "users.csv"}, key=str)
    if len(folders) > 1:
        raise MisFormatError(
            "the zip holds several users.csv files ("
            + ", ".join(str(f / "users.csv") for f in folders)
            + "): zip one roster at a time",
            name,
        )
    folder = folders[0] if folders else PurePosixPath(".")

    def opener(info: zipfile.ZipInfo) -> Opener:
        def open_member() -> IO[bytes]:
            return io.BufferedReader(
                _Capped(zf.open(info), info.file_size, f"{name}: {info.filename}")
            )

        return open_member

    return {p.name.casefold(): opener(i) for p, i in files if p.parent == folder}


class _Capped(io.RawIOBase):
    """A zip member that may not yield more than its declared size (belt and braces over
    ``zipfile``'s own checks, since the size limit above trusts the declared sizes)."""

    def __init__(self, raw: IO[bytes], limit: int, where: str) -> None:
        super().__init__()
        self._raw = raw
        self._left = limit
        self._where = where

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        try:
            data = self._raw.read(len(buffer))
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
            raise MisFormatError(f"the zip is damaged: {exc}", self._where) from exc
        self._left -= len(data)
        if self._left < 0:
            raise MisFormatError("the member is larger than the zip says", self._where)
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._raw.close()
        super().close()


# --------------------------------------------------------------------------- open


def open_oneroster(source: Path, *, org: str | None = None) -> ParsedFile:
    """Open a OneRoster CSV set: a folder, or a .zip of one. With ``org``, only the records of
    that organisation (see the module's notes: "One organisation of a trust's export")."""
    notes = _Notes()
    if source.is_dir():
        return _parse(_Source(_folder_openers(source), notes), notes, org)
    if not source.is_file():
        raise MisFormatError("no such file or folder", str(source))
    try:
        with zipfile.ZipFile(source) as zf:
            return _parse(_Source(_zip_openers(zf, source.name), notes), notes, org)
    except zipfile.BadZipFile as exc:
        raise MisFormatError(
            f"not a zip file ({exc}): give a OneRoster zip or folder", source.name
        ) from exc


def oneroster_orgs(source: Path) -> list[OrgRecord]:
    """The organisations a OneRoster set's ``orgs.csv`` lists (none without one), read without
    the users: for a trust's export, which schools it covers. Raises :class:`MisFormatError`
    as :func:`open_oneroster` does for a zip or folder it would refuse."""
    notes = _Notes()
    if source.is_dir():
        return _org_records(_Source(_folder_openers(source), notes))
    if not source.is_file():
        raise MisFormatError("no such file or folder", str(source))
    try:
        with zipfile.ZipFile(source) as zf:
            src = _Source(_zip_openers(zf, source.name), notes)
            if not src.has("users.csv"):
                raise MisFormatError(
                    "no users.csv: this is not a OneRoster export (or it has no users file)",
                    ", ".join(sorted(src.openers)) or "empty",
                )
            return _org_records(src)
    except zipfile.BadZipFile as exc:
        raise MisFormatError(
            f"not a zip file ({exc}): give a OneRoster zip or folder", source.name
        ) from exc


def _parse(src: _Source, notes: _Notes, org: str | None = None) -> ParsedFile:
    if not src.has("users.csv"):
        raise MisFormatError(
            "no users.csv: this is not a OneRoster export (or it has no users file)",
            ", ".join(sorted(src.openers)) or "empty",
        )
    version, qualifier = _manifest(src, notes)
    primary_roles, secondary_roles, role_orgs = _roles(src, notes)
    users, row_orgs, named_orgs = _users(src, primary_roles, secondary_roles, role_orgs, notes)
    orgs = _org_records(src)
    org_ids = tuple(dict.fromkeys(o.sourced_id for o in orgs)) or tuple(
        dict.fromkeys([*named_orgs, *(org_id for _user, _role, org_id in role_orgs)])
    )
    reg_groups = _reg_groups(src, notes)

    students = [u for u in users if u.role == "student"]
    contact_users = [u for u in users if u.role in CONTACT_ROLES]
    if org is None:
        disabled = [u.sid for u in users if not u.enabled]
        if disabled:
            notes.append(_disabled_note(disabled))
    # Checked even when no contact is eligible, so the notes say which agent links were ignored.
    links, from_contact_side = _links(users, students, contact_users, qualifier == "delta", notes)
    if org is not None:
        return _parse_org(
            org,
            orgs,
            version,
            qualifier,
            users,
            row_orgs,
            links,
            from_contact_side,
            reg_groups,
            notes,
        )
    staff = [u for u in users if u.role and u.role != "student" and u.role not in CONTACT_ROLES]
    _note_contact_side(sum(from_contact_side.values()), notes)
    carries_contacts = bool(contact_users)
    if not carries_contacts:
        notes.append(
            "users.csv lists no parents, guardians or relatives: the export says nothing about "
            "contacts, so existing links are left alone"
        )
    header = FileHeader(
        format=Format.ONEROSTER,
        version=version,
        qualifier=qualifier,
        org_ids=org_ids,
        carries_contacts=carries_contacts,
        carries_students=bool(students),
        carries_staff=bool(staff),
    )
    members = _members(users, links if carries_contacts else None, reg_groups)
    return ParsedFile(header, members, notes)


def _disabled_note(disabled: list[str]) -> str:
    return (
        f"users.csv: {len(disabled)} user(s) with enabledUser false kept (a disabled login "
        f"says nothing about the person): {', '.join(disabled)}"
    )


def _note_contact_side(count: int, notes: list[str]) -> None:
    if count:
        notes.append(
            f"{count} contact link(s) are known only from the parent's or guardian's "
            "agentSourcedIds: they are placed after the student's own agents in priority order"
        )


def _parse_org(
    org: str,
    orgs: list[OrgRecord],
    version: str,
    qualifier: str,
    users: list[_User],
    row_orgs: dict[str, tuple[str, ...]],
    links: dict[str, list[_User | None]],
    from_contact_side: dict[str, int],
    reg_groups: dict[str, str] | None,
    notes: _Notes,
) -> ParsedFile:
    """The records of one org of the file (a trust's export read for one of its schools)."""
    members = [u for u in users if u.role and u.role not in CONTACT_ROLES and org in u.orgs]
    students = [u for u in members if u.role == "student"]
    linked = {c.sid for s in students for c in links[s.sid] if c is not None}
    contacts = [u for u in users if u.role in CONTACT_ROLES and (u.sid in linked or org in u.orgs)]
    kept = {u.sid for u in members} | {u.sid for u in contacts}
    kept.update(sid for sid, its in row_orgs.items() if org in its)
    named = {o.sourced_id: o.name for o in orgs}
    others = [o for o in dict.fromkeys(o for u in users for o in u.orgs) if o != org]
    others += [o for o in named if o != org and o not in others]
    own = f"{org} ({named[org]})" if named.get(org) else org
    out = [
        f"only the records of organisation {own} are read from this export; those of "
        f"{len(others)} other organisation(s) are left out"
    ]
    out += notes.kept(lambda sid: sid in kept)
    _note_contact_side(sum(from_contact_side.get(s.sid, 0) for s in students), out)
    for student in students:
        if len(student.orgs) > 1:
            out.append(
                f"users.csv line {student.line}: student {_who(student)} is enrolled at "
                f"{len(student.orgs)} organisations of this export ({', '.join(student.orgs)}): "
                "read into each school it is enrolled at"
            )
    disabled = [u.sid for u in (*members, *contacts) if not u.enabled]
    if disabled:
        out.append(_disabled_note(disabled))
    nowhere = sum(1 for u in users if u.role and u.role not in CONTACT_ROLES and not u.orgs)
    if nowhere:
        out.append(
            f"users.csv: {nowhere} student(s) or staff name no organisation (orgSourcedIds): "
            "they are in no school's part of the export"
        )
    carries_contacts = bool(contacts)
    if not carries_contacts:
        out.append(
            "users.csv lists no parents, guardians or relatives for this organisation: the "
            "export says nothing about its contacts, so existing links are left alone"
        )
    header = FileHeader(
        format=Format.ONEROSTER,
        version=version,
        qualifier=qualifier,
        org_ids=(org,),
        carries_contacts=carries_contacts,
        carries_students=bool(students),
        carries_staff=any(u.role != "student" for u in members),
    )
    return ParsedFile(
        header, _members(members, links if carries_contacts else None, reg_groups), out
    )


def _manifest(src: _Source, notes: list[str]) -> tuple[str, str]:
    inferred = "1.2" if src.has("roles.csv") else "1.1"
    if not src.has("manifest.csv"):
        notes.append(
            f"no manifest.csv: read as OneRoster {inferred} "
            f"({'with' if inferred == '1.2' else 'without'} roles.csv) and as a bulk file"
        )
        return inferred, "bulk"
    columns, rows = src.rows("manifest.csv")
    columns.require("propertyName", "value")
    props = {
        columns.text(cells, "propertyName").casefold(): columns.text(cells, "value")
        for _line, cells in rows
    }
    version = props.get("oneroster.version", "")
    if not version:
        notes.append(f"manifest.csv has no oneroster.version: read as {inferred}")
        version = inferred
    elif version not in ("1.0", "1.1", "1.2"):
        notes.append(f"manifest.csv: oneroster.version {version!r} is not 1.0, 1.1 or 1.2")
    qualifier = props.get("file.users", "").casefold()
    if qualifier not in ("bulk", "delta"):
        said = f"says {qualifier!r}" if qualifier else "does not say"
        notes.append(f"manifest.csv: file.users {said} bulk or delta: read as bulk")
        qualifier = "bulk"
    return version, qualifier


def _roles(
    src: _Source, notes: _Notes
) -> tuple[dict[str, str], dict[str, list[str]], list[tuple[str, str, str]]]:
    """Primary and secondary roles by user, and the (user, role, org) of each row naming an
    org, in file order."""
    primary: dict[str, str] = {}
    secondary: dict[str, list[str]] = {}
    orgs: list[tuple[str, str, str]] = []
    if not src.has("roles.csv"):
        return primary, secondary, orgs
    columns, rows = src.rows("roles.csv")
    columns.require("userSourcedId", "role")
    for line, cells in rows:
        if _deleted(columns.text(cells, "status")):
            continue
        user = columns.text(cells, "userSourcedId")
        role = columns.text(cells, "role").casefold()
        if not user or not role:
            notes.append(f"roles.csv line {line}: no userSourcedId or role: ignored")
            continue
        if org := columns.text(cells, "orgSourcedId"):
            orgs.append((user, role, org))
        if columns.text(cells, "roleType").casefold() == "primary":
            if user in primary and primary[user] != role:
                notes.about(
                    user,
                    f"roles.csv line {line}: {user} has a second primary role {role}: "
                    f"the first, {primary[user]}, is kept",
                )
            primary.setdefault(user, role)
        else:
            secondary.setdefault(user, []).append(role)
    return primary, secondary, orgs


def _users(
    src: _Source,
    primary: dict[str, str],
    secondary: dict[str, list[str]],
    role_orgs: list[tuple[str, str, str]],
    notes: _Notes,
) -> tuple[list[_User], dict[str, tuple[str, ...]], list[str]]:
    """The users; the orgs of every row by sourcedId (skipped rows too, for the notes); and
    the orgs the users' own rows name, in file order."""
    columns, rows = src.rows("users.csv")
    columns.require("sourcedId", "givenName", "familyName")
    if not columns.has("role") and not primary and not secondary:
        raise MisFormatError(
            "users.csv has no role column and there is no roles.csv: cannot tell students "
            "from parents and staff",
            f"users.csv line {columns.table.header_line}",
        )
    users: list[_User] = []
    row_orgs: dict[str, tuple[str, ...]] = {}
    seen: set[str] = set()
    named_orgs: list[str] = []
    by_role: dict[str, list[tuple[str, str]]] = {}
    for user_id, role_name, org_id in role_orgs:
        by_role.setdefault(user_id, []).append((role_name, org_id))
    has_email = columns.has("email")
    for line, cells in rows:
        where = f"users.csv line {line}"
        sid = columns.text(cells, "sourcedId")
        if not sid:
            notes.append(f"{where}: no sourcedId: row skipped")
            continue
        orgs = _split_ids(columns.text(cells, "orgSourcedIds"))
        if org := columns.text(cells, "primaryOrgSourcedId").strip():
            orgs = tuple(dict.fromkeys([*orgs, org]))
        if _deleted(columns.text(cells, "status")):
            row_orgs.setdefault(sid, orgs)
            notes.about(
                sid, f"{where}: {sid} has status tobedeleted: skipped (an import never deletes)"
            )
            continue
        if sid in seen:
            notes.about(sid, f"{where}: {sid} is listed again: the first row is kept")
            continue
        seen.add(sid)
        role = _role(sid, columns.text(cells, "role").casefold(), primary, secondary, where, notes)
        named_orgs.extend(orgs)
        # In 1.2 the orgs of the user's roles.csv rows for the role it is read as count too.
        orgs = tuple(dict.fromkeys([*orgs, *(o for r, o in by_role.get(sid, ()) if r == role)]))
        row_orgs[sid] = orgs  # a row listed before as tobedeleted is this one now
        users.append(
            _User(
                line=line,
                sid=sid,
                given=columns.text(cells, "givenName"),
                family=columns.text(cells, "familyName"),
                identifier=columns.text(cells, "identifier"),
                email=columns.text(cells, "email") if has_email else None,
                sms=columns.get(cells, "sms"),
                phone=columns.get(cells, "phone"),
                agents=_split_ids(columns.text(cells, "agentSourcedIds")),
                grade=_year(columns.text(cells, "grades")),
                role=role,
                enabled=columns.text(cells, "enabledUser").casefold() != "false",
                orgs=orgs,
            )
        )
    for user in users:
        if not user.role:
            notes.about(user.sid, f"users.csv line {user.line}: {_who(user)} has no role: skipped")
        elif user.role not in _MEMBER_ROLES and user.role not in CONTACT_ROLES:
            notes.about(
                user.sid,
                f"users.csv line {user.line}: {_who(user)} has role {user.role!r}, not a "
                "OneRoster role: read as another adult member",
            )
    return users, row_orgs, named_orgs


def _role(
    sid: str,
    column: str,
    primary: dict[str, str],
    secondary: dict[str, list[str]],
    where: str,
    notes: _Notes,
) -> str:
    if sid in primary:
        role = primary[sid]
        others = [r for r in secondary.get(sid, []) if r in CONTACT_ROLES]
        if others and role not in CONTACT_ROLES:
            notes.about(
                sid,
                f"{where}: {sid} has primary role {role} and secondary role "
                f"{', '.join(others)}: read as a {role}, not as a contact",
            )
        return role
    if sid in secondary:
        role = secondary[sid][0]
        notes.about(
            sid, f"{where}: {sid} has no primary role in roles.csv: its secondary role {role}"
        )
        return role
    if column and (primary or secondary):
        notes.about(sid, f"{where}: {sid} is not in roles.csv: role {column} from users.csv")
    return column


def _org_records(src: _Source) -> list[OrgRecord]:
    """The orgs of ``orgs.csv`` in file order, once each (none without the file)."""
    if not src.has("orgs.csv"):
        return []
    columns, rows = src.rows("orgs.csv")
    columns.require("sourcedId")
    found: dict[str, OrgRecord] = {}
    for _line, cells in rows:
        sid = columns.text(cells, "sourcedId").strip()
        if not sid or _deleted(columns.text(cells, "status")) or sid in found:
            continue
        found[sid] = OrgRecord(
            sourced_id=sid,
            name=columns.text(cells, "name").strip(),
            type=columns.text(cells, "type").strip().casefold(),
            parent=columns.text(cells, "parentSourcedId").strip(),
        )
    return list(found.values())


def _reg_groups(src: _Source, notes: _Notes) -> dict[str, str] | None:
    """Student sourcedId -> homeroom title; None when the export has no homeroom data."""
    if not (src.has("classes.csv") and src.has("enrollments.csv")):
        if src.has("classes.csv") or src.has("enrollments.csv"):
            notes.append(
                "registration groups need both classes.csv and enrollments.csv: "
                "the export has only one, so no registration groups are set"
            )
        return None
    columns, rows = src.rows("classes.csv")
    columns.require("sourcedId")
    homerooms: dict[str, str] = {}
    for _line, cells in rows:
        if _deleted(columns.text(cells, "status")):
            continue
        if columns.text(cells, "classType").casefold() == "homeroom":
            label = columns.text(cells, "title") or columns.text(cells, "classCode")
            homerooms[columns.text(cells, "sourcedId")] = label
    if not homerooms:
        notes.append("classes.csv has no homeroom classes: no registration groups are set")
        return None
    columns, rows = src.rows("enrollments.csv")
    columns.require("classSourcedId", "userSourcedId")
    groups: dict[str, str] = {}
    for line, cells in rows:
        if _deleted(columns.text(cells, "status")):
            continue
        if columns.has("role") and columns.text(cells, "role").casefold() != "student":
            continue
        homeroom = homerooms.get(columns.text(cells, "classSourcedId"))
        if not homeroom:
            continue
        user = columns.text(cells, "userSourcedId")
        if user in groups and groups[user] != homeroom:
            notes.about(
                user,
                f"enrollments.csv line {line}: {user} is in a second homeroom {homeroom!r}: "
                f"the first, {groups[user]!r}, is kept",
            )
            continue
        groups[user] = homeroom
    return groups


def _links(
    users: list[_User],
    students: list[_User],
    contacts: list[_User],
    delta: bool,
    notes: _Notes,
) -> tuple[dict[str, list[_User | None]], dict[str, int]]:
    """Student sourcedId -> its contacts in priority order. ``None`` holds the place of an agent
    a delta file does not include. And per student, how many of its links are known only from
    the contact's side."""
    by_id = {u.sid: u for u in users}
    links: dict[str, list[_User | None]] = {}
    for student in students:
        chosen = links.setdefault(student.sid, [])
        for agent_id in student.agents:
            agent = by_id.get(agent_id)
            if agent is None and delta:
                # An unchanged parent is absent from a delta: promoting the next agent into
                # its place would make the wrong adult a prime parent.
                chosen.append(None)
                notes.about(
                    student.sid,
                    f"users.csv line {student.line}: student {_who(student)} names agent "
                    f"{agent_id}, who is not in this delta: its place in the priority order is kept",
                )
            elif agent is None:
                notes.about(
                    student.sid,
                    f"users.csv line {student.line}: student {_who(student)} names agent "
                    f"{agent_id}, who is not in users.csv: ignored",
                )
            elif agent.role not in CONTACT_ROLES:
                notes.about(
                    (student.sid, agent.sid),
                    f"users.csv line {student.line}: student {_who(student)} names "
                    f"{agent.role or 'role-less user'} {_who(agent)} as an agent: ignored (only "
                    "parents, guardians and relatives are contacts)",
                )
            elif agent not in chosen:
                chosen.append(agent)
    from_contact_side: dict[str, int] = {}
    for contact in contacts:
        linked = False
        for student_id in contact.agents:
            target = by_id.get(student_id)
            if target is None or target.role != "student":
                what = "who is not in users.csv" if target is None else f"a {target.role}"
                notes.about(
                    (contact.sid, student_id) if target is not None else contact.sid,
                    f"users.csv line {contact.line}: {contact.role} {_who(contact)} names "
                    f"{student_id}, {what}: ignored",
                )
                continue
            linked = True
            if contact not in links[student_id]:
                links[student_id].append(contact)
                from_contact_side[student_id] = from_contact_side.get(student_id, 0) + 1
        if not linked and not any(contact in chosen for chosen in links.values()):
            notes.about(
                contact.sid,
                f"users.csv line {contact.line}: {contact.role} {_who(contact)} is linked to "
                "no student: ignored",
            )
    for adult in users:
        if adult.role in CONTACT_ROLES or adult.role == "student":
            continue
        named = [by_id[a] for a in adult.agents if a in by_id and by_id[a].role == "student"]
        if named:
            notes.about(
                (adult.sid, *(s.sid for s in named)),
                f"users.csv line {adult.line}: {adult.role or 'role-less user'} {_who(adult)} "
                f"names student(s) {', '.join(_who(s) for s in named)} as agents: ignored (only "
                "parents, guardians and relatives are contacts)",
            )
    return links, from_contact_side


def _phones(user: _User) -> tuple[PhoneRecord, ...] | None:
    if user.sms is None and user.phone is None:
        return None
    return tuple(
        PhoneRecord(kind, number) for kind, number in (("M", user.sms), ("H", user.phone)) if number
    )


def _contact(user: _User, priority: int) -> ContactRecord:
    return ContactRecord(
        priority=priority,
        forename=user.given,
        surname=user.family,
        relationship=user.role,
        parental_responsibility=user.role in _RESPONSIBLE,
        email=user.email or "",
        phones=_phones(user) or (),
        mis_id=user.sid,
        where=f"users.csv line {user.line}",
    )


def _members(
    users: list[_User],
    links: dict[str, list[_User | None]] | None,
    reg_groups: dict[str, str] | None,
) -> Iterator[MemberRecord]:
    for user in users:
        if not user.role or user.role in CONTACT_ROLES:
            continue
        role = _MEMBER_ROLES.get(user.role, Role.OTHER)
        student = role == Role.STUDENT
        contacts = None
        if student and links is not None:
            contacts = tuple(
                _contact(c, n) for n, c in enumerate(links[user.sid], start=1) if c is not None
            )
        yield MemberRecord(
            mis_id=user.sid,
            forename=user.given,
            surname=user.family,
            role=role,
            admission_no=user.identifier,
            year=(user.grade or None) if student else None,
            reg_group=reg_groups.get(user.sid) if student and reg_groups is not None else None,
            email=user.email,
            phones=_phones(user),
            contacts=contacts,
            where=f"users.csv line {user.line}",
        )
