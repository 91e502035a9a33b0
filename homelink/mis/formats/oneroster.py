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
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
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


def open_oneroster(source: Path) -> ParsedFile:
    """Open a OneRoster CSV set: a folder, or a .zip of one."""
    notes: list[str] = []
    if source.is_dir():
        return _parse(_Source(_folder_openers(source), notes), notes)
    if not source.is_file():
        raise MisFormatError("no such file or folder", str(source))
    try:
        with zipfile.ZipFile(source) as zf:
            return _parse(_Source(_zip_openers(zf, source.name), notes), notes)
    except zipfile.BadZipFile as exc:
        raise MisFormatError(
            f"not a zip file ({exc}): give a OneRoster zip or folder", source.name
        ) from exc


def _parse(src: _Source, notes: list[str]) -> ParsedFile:
    if not src.has("users.csv"):
        raise MisFormatError(
            "no users.csv: this is not a OneRoster export (or it has no users file)",
            ", ".join(sorted(src.openers)) or "empty",
        )
    version, qualifier = _manifest(src, notes)
    primary_roles, secondary_roles, role_orgs = _roles(src, notes)
    users, user_orgs = _users(src, primary_roles, secondary_roles, notes)
    org_ids = _orgs(src, notes) or tuple(dict.fromkeys([*user_orgs, *role_orgs]))
    reg_groups = _reg_groups(src, notes)

    students = [u for u in users if u.role == "student"]
    contact_users = [u for u in users if u.role in CONTACT_ROLES]
    staff = [u for u in users if u.role and u.role != "student" and u.role not in CONTACT_ROLES]
    disabled = [u.sid for u in users if not u.enabled]
    if disabled:
        notes.append(
            f"users.csv: {len(disabled)} user(s) with enabledUser false kept (a disabled login "
            f"says nothing about the person): {', '.join(disabled)}"
        )
    # Checked even when no contact is eligible, so the notes say which agent links were ignored.
    links = _links(users, students, contact_users, qualifier == "delta", notes)
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
    src: _Source, notes: list[str]
) -> tuple[dict[str, str], dict[str, list[str]], list[str]]:
    primary: dict[str, str] = {}
    secondary: dict[str, list[str]] = {}
    orgs: list[str] = []
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
            orgs.append(org)
        if columns.text(cells, "roleType").casefold() == "primary":
            if user in primary and primary[user] != role:
                notes.append(
                    f"roles.csv line {line}: {user} has a second primary role {role}: "
                    f"the first, {primary[user]}, is kept"
                )
            primary.setdefault(user, role)
        else:
            secondary.setdefault(user, []).append(role)
    return primary, secondary, orgs


def _users(
    src: _Source,
    primary: dict[str, str],
    secondary: dict[str, list[str]],
    notes: list[str],
) -> tuple[list[_User], list[str]]:
    columns, rows = src.rows("users.csv")
    columns.require("sourcedId", "givenName", "familyName")
    if not columns.has("role") and not primary and not secondary:
        raise MisFormatError(
            "users.csv has no role column and there is no roles.csv: cannot tell students "
            "from parents and staff",
            f"users.csv line {columns.table.header_line}",
        )
    users: list[_User] = []
    orgs: list[str] = []
    seen: set[str] = set()
    has_email = columns.has("email")
    for line, cells in rows:
        where = f"users.csv line {line}"
        sid = columns.text(cells, "sourcedId")
        if not sid:
            notes.append(f"{where}: no sourcedId: row skipped")
            continue
        if _deleted(columns.text(cells, "status")):
            notes.append(
                f"{where}: {sid} has status tobedeleted: skipped (an import never deletes)"
            )
            continue
        if sid in seen:
            notes.append(f"{where}: {sid} is listed again: the first row is kept")
            continue
        seen.add(sid)
        role = _role(sid, columns.text(cells, "role").casefold(), primary, secondary, where, notes)
        orgs.extend(_split_ids(columns.text(cells, "orgSourcedIds")))
        if org := columns.text(cells, "primaryOrgSourcedId"):
            orgs.append(org)
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
            )
        )
    for user in users:
        if not user.role:
            notes.append(f"users.csv line {user.line}: {_who(user)} has no role: skipped")
        elif user.role not in _MEMBER_ROLES and user.role not in CONTACT_ROLES:
            notes.append(
                f"users.csv line {user.line}: {_who(user)} has role {user.role!r}, not a "
                "OneRoster role: read as another adult member"
            )
    return users, orgs


def _role(
    sid: str,
    column: str,
    primary: dict[str, str],
    secondary: dict[str, list[str]],
    where: str,
    notes: list[str],
) -> str:
    if sid in primary:
        role = primary[sid]
        others = [r for r in secondary.get(sid, []) if r in CONTACT_ROLES]
        if others and role not in CONTACT_ROLES:
            notes.append(
                f"{where}: {sid} has primary role {role} and secondary role "
                f"{', '.join(others)}: read as a {role}, not as a contact"
            )
        return role
    if sid in secondary:
        role = secondary[sid][0]
        notes.append(f"{where}: {sid} has no primary role in roles.csv: its secondary role {role}")
        return role
    if column and (primary or secondary):
        notes.append(f"{where}: {sid} is not in roles.csv: role {column} from users.csv")
    return column


def _orgs(src: _Source, notes: list[str]) -> tuple[str, ...]:
    if not src.has("orgs.csv"):
        return ()
    columns, rows = src.rows("orgs.csv")
    columns.require("sourcedId")
    return tuple(
        dict.fromkeys(
            columns.text(cells, "sourcedId")
            for _line, cells in rows
            if columns.text(cells, "sourcedId") and not _deleted(columns.text(cells, "status"))
        )
    )


def _reg_groups(src: _Source, notes: list[str]) -> dict[str, str] | None:
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
            notes.append(
                f"enrollments.csv line {line}: {user} is in a second homeroom {homeroom!r}: "
                f"the first, {groups[user]!r}, is kept"
            )
            continue
        groups[user] = homeroom
    return groups


def _links(
    users: list[_User],
    students: list[_User],
    contacts: list[_User],
    delta: bool,
    notes: list[str],
) -> dict[str, list[_User | None]]:
    """Student sourcedId -> its contacts in priority order. ``None`` holds the place of an agent
    a delta file does not include."""
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
                notes.append(
                    f"users.csv line {student.line}: student {_who(student)} names agent "
                    f"{agent_id}, who is not in this delta: its place in the priority order is kept"
                )
            elif agent is None:
                notes.append(
                    f"users.csv line {student.line}: student {_who(student)} names agent "
                    f"{agent_id}, who is not in users.csv: ignored"
                )
            elif agent.role not in CONTACT_ROLES:
                notes.append(
                    f"users.csv line {student.line}: student {_who(student)} names "
                    f"{agent.role or 'role-less user'} {_who(agent)} as an agent: ignored (only "
                    "parents, guardians and relatives are contacts)"
                )
            elif agent not in chosen:
                chosen.append(agent)
    from_contact_side = 0
    for contact in contacts:
        linked = False
        for student_id in contact.agents:
            target = by_id.get(student_id)
            if target is None or target.role != "student":
                what = "who is not in users.csv" if target is None else f"a {target.role}"
                notes.append(
                    f"users.csv line {contact.line}: {contact.role} {_who(contact)} names "
                    f"{student_id}, {what}: ignored"
                )
                continue
            linked = True
            if contact not in links[student_id]:
                links[student_id].append(contact)
                from_contact_side += 1
        if not linked and not any(contact in chosen for chosen in links.values()):
            notes.append(
                f"users.csv line {contact.line}: {contact.role} {_who(contact)} is linked to "
                "no student: ignored"
            )
    for adult in users:
        if adult.role in CONTACT_ROLES or adult.role == "student":
            continue
        named = [by_id[a] for a in adult.agents if a in by_id and by_id[a].role == "student"]
        if named:
            notes.append(
                f"users.csv line {adult.line}: {adult.role or 'role-less user'} {_who(adult)} "
                f"names student(s) {', '.join(_who(s) for s in named)} as agents: ignored (only "
                "parents, guardians and relatives are contacts)"
            )
    if from_contact_side:
        notes.append(
            f"{from_contact_side} contact link(s) are known only from the parent's or guardian's "
            "agentSourcedIds: they are placed after the student's own agents in priority order"
        )
    return links


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
