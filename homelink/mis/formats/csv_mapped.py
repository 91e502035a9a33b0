"""CSV exports read through a column mapping (mis-formats.md §2).

Two layouts:

``members``
    One row per school member (student or adult). Fields: ``upn``, ``admission_no``,
    ``forename``, ``surname``, ``reg_group``, ``year``, ``role``, ``email``, ``mobile``.
    A student's ``mis_id`` is the UPN when the row has one (so the file joins students imported
    from a CTF), else the admission number / unique id; ``admission_no`` is always the admission
    number column. ``role`` takes the role ids 1 Student, 2 Teacher, 3 Support staff, 4 Governor,
    5 School board member, 6 Other, or those names; without a role column every row is a student.
    The layout carries no contacts (``header.carries_contacts`` is False). It is streamed: the file
    is read once at open (to fail early on a broken row and learn which roles it lists, which the
    header must say) and again as ``members`` is consumed.

``contacts``
    One row per student x contact. Student fields as above (no ``role``) plus ``contact_priority``,
    ``contact_title``, ``contact_forename``, ``contact_surname``, ``contact_email``,
    ``contact_mobile``, ``contact_relationship``, ``contact_responsibility``,
    ``contact_court_order``. Rows may come in any order: they are grouped by student (UPN, else
    admission number) in memory as plain tuples. A row whose contact columns are all blank lists
    a student without contacts.

A mapping file is JSON::

    {"layout": "members" | "contacts",
     "columns": {"Header in file": "field", "Another header": "ignore", ...}}

Headers match case-insensitively, ignoring punctuation and repeated spaces. ``"ignore"`` (or
``null``) names a column to skip without a note; any other header the mapping does not name is
ignored with a note. Without a mapping the preset is chosen from the header line (``contacts`` when
it has contact forename and surname columns).

Values are kept as typed, trimmed. A blank ``year`` or ``reg_group`` cell is ``None`` (it leaves
the register's value alone); a blank ``email`` or ``mobile`` cell in a present column means "none".

The reading helpers at the top (:func:`read_table`, :func:`iter_rows`) are shared with the
OneRoster reader: encoding detection (UTF-8 with or without BOM, UTF-16 with BOM, else Windows-1252
as SIMS writes on Windows), delimiter sniffing, padding, blank rows, ragged rows and oversize
fields all behave the same in both.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from homelink.mis.records import (
    MAX_PRIORITY,
    ContactRecord,
    FileHeader,
    Format,
    MemberRecord,
    MisFormatError,
    ParsedFile,
    PhoneRecord,
    Role,
)

#: Longest cell accepted: anything longer is a broken quote or not a register export.
MAX_FIELD = 10_000
_CHUNK = 64 * 1024

Opener = Callable[[], IO[bytes]]


# --------------------------------------------------------------------------- shared reading


@dataclass(frozen=True, slots=True)
class Table:
    """A CSV file whose encoding, delimiter and header line are known."""

    name: str
    opener: Opener
    encoding: str
    delimiter: str
    #: Header cells, trimmed; trailing empty cells dropped (spreadsheets pad the header).
    columns: tuple[str, ...]
    header_line: int


def _detect_encoding(opener: Opener, name: str, notes: list[str]) -> str:
    with opener() as fh:
        first = fh.read(_CHUNK)
        if first.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            # Excel's "Unicode text" export: the only case where NUL bytes are legitimate.
            notes.append(f"{name}: read as UTF-16 (it starts with a UTF-16 byte-order mark)")
            return "utf-16"
        if first.startswith(b"PK\x03\x04"):
            raise MisFormatError(
                "this is a zip file or an Excel workbook, not CSV: save it as CSV first", name
            )
        decoder = codecs.getincrementaldecoder("utf-8")()
        utf8 = True
        chunk = first
        offset = 0
        while chunk:
            nul = chunk.find(b"\x00")
            if nul >= 0:
                raise MisFormatError(
                    "this is not a CSV file: it contains binary data "
                    f"(a NUL byte at offset {offset + nul})",
                    name,
                )
            if utf8:
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError:
                    utf8 = False
            offset += len(chunk)
            chunk = fh.read(_CHUNK)
        if utf8:
            try:
                decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                utf8 = False
    if utf8:
        return "utf-8-sig"
    notes.append(f"{name}: not valid UTF-8, read as Windows-1252 (cp1252)")
    return "cp1252"


def _open_text(opener: Opener, encoding: str) -> io.TextIOWrapper:
    # cp1252 leaves five bytes undefined; a stray one should not sink a whole register.
    errors = "replace" if encoding == "cp1252" else "strict"
    return io.TextIOWrapper(opener(), encoding=encoding, errors=errors, newline="")


def _sniff_delimiter(line: str) -> str:
    counts = dict.fromkeys(",;\t", 0)
    quoted = False
    for ch in line:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in counts:
            counts[ch] += 1
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _raw_rows(
    opener: Opener, name: str, encoding: str, delimiter: str
) -> Generator[tuple[int, list[str]], None, None]:
    """(first line of the record, trimmed cells) for every row that is not blank."""
    line = 1
    try:
        with _open_text(opener, encoding) as fh:
            reader = csv.reader(fh, delimiter=delimiter)
            for cells in reader:
                start, line = line, reader.line_num + 1
                for cell in cells:
                    if len(cell) > MAX_FIELD:
                        raise MisFormatError(
                            f"a cell is longer than {MAX_FIELD:,} characters (an unclosed quote?)",
                            f"{name} line {start}",
                        )
                stripped = [c.strip() for c in cells]
                if any(stripped):
                    yield start, stripped
    except csv.Error as exc:
        raise MisFormatError(
            f"cannot be read as CSV ({exc}; an unclosed quote?)", f"{name} line {line}"
        ) from exc
    except UnicodeDecodeError as exc:
        raise MisFormatError(f"cannot be decoded as {encoding}", name) from exc


def read_table(opener: Opener, name: str, notes: list[str]) -> Table:
    """Detect encoding and delimiter and read the header line (the first non-blank row)."""
    encoding = _detect_encoding(opener, name, notes)
    with _open_text(opener, encoding) as fh:
        try:
            sample = fh.read(_CHUNK)
        except UnicodeDecodeError as exc:
            raise MisFormatError(f"cannot be decoded as {encoding}", name) from exc
    first_line = next((ln for ln in sample.splitlines() if ln.strip(" ,;\t")), "")
    if not first_line:
        raise MisFormatError("the file is empty: no header line", name)
    delimiter = _sniff_delimiter(first_line)
    rows = _raw_rows(opener, name, encoding, delimiter)
    try:
        header_line, cells = next(rows, (0, []))
    finally:
        rows.close()
    if not header_line:
        raise MisFormatError("the file is empty: no header line", name)
    cells = [c.lstrip("\ufeff").removeprefix("ï»¿").strip() for c in cells]
    while cells and not cells[-1]:
        cells.pop()
    return Table(name, opener, encoding, delimiter, tuple(cells), header_line)


def iter_rows(table: Table, short_rows: list[int] | None = None) -> Iterator[tuple[int, list[str]]]:
    """The data rows of ``table``, each exactly as wide as its header.

    Cells beyond the header are accepted when blank (spreadsheets pad rows with delimiters);
    otherwise the row is ragged and refused. A short row is refused too, unless ``short_rows`` is
    given: then it is padded with blanks and its line number appended there.
    """
    width = len(table.columns)
    for line, cells in _raw_rows(table.opener, table.name, table.encoding, table.delimiter):
        if line <= table.header_line:
            continue
        if len(cells) > width and any(cells[width:]):
            raise MisFormatError(
                f"the row has {len(cells)} cells but the header has {width} "
                "(a stray delimiter or an unquoted comma?)",
                f"{table.name} line {line}",
            )
        if len(cells) < width:
            if short_rows is None:
                raise MisFormatError(
                    f"the row has {len(cells)} cells but the header has {width}",
                    f"{table.name} line {line}",
                )
            short_rows.append(line)
            cells = cells + [""] * (width - len(cells))
        yield line, cells[:width]


def path_opener(path: Path) -> Opener:
    def opener() -> IO[bytes]:
        return path.open("rb")

    return opener


# --------------------------------------------------------------------------- mappings

LAYOUTS = ("members", "contacts")
STUDENT_FIELDS = ("upn", "admission_no", "forename", "surname", "reg_group", "year")
MEMBER_FIELDS = (*STUDENT_FIELDS, "role", "email", "mobile")
CONTACT_FIELDS = (
    "contact_priority",
    "contact_title",
    "contact_forename",
    "contact_surname",
    "contact_email",
    "contact_mobile",
    "contact_relationship",
    "contact_responsibility",
    "contact_court_order",
)
IGNORE = "ignore"
VALID_FIELDS: dict[str, tuple[str, ...]] = {
    "members": (*MEMBER_FIELDS, IGNORE),
    # Contacts rows are students: a role column has no meaning there.
    "contacts": (*STUDENT_FIELDS, "email", "mobile", *CONTACT_FIELDS, IGNORE),
}
_REQUIRED: dict[str, tuple[str, ...]] = {
    "members": ("forename", "surname"),
    "contacts": ("forename", "surname", "contact_forename", "contact_surname"),
}


def header_key(text: str) -> str:
    """Header names compare case-insensitively, ignoring punctuation and spacing."""
    return re.sub(r"[^0-9a-z]+", " ", text.casefold().lstrip("\ufeff")).strip()


@dataclass(frozen=True, slots=True)
class Mapping:
    """Which column of a CSV file gives which field. ``columns`` keys are :func:`header_key`s."""

    layout: str
    columns: dict[str, str] = field(default_factory=dict)
    name: str = "custom"

    @classmethod
    def build(cls, layout: str, columns: dict[str, str | None], name: str = "custom") -> Mapping:
        if layout not in LAYOUTS:
            raise MisFormatError(
                f"layout {layout!r} is not one of {', '.join(LAYOUTS)}", f"mapping {name}"
            )
        valid = VALID_FIELDS[layout]
        keyed: dict[str, str] = {}
        for header, target in columns.items():
            target = target or IGNORE
            if target not in valid:
                raise MisFormatError(
                    f"column {header!r} maps to unknown field {target!r}; valid fields for the "
                    f"{layout} layout: {', '.join(valid)}",
                    f"mapping {name}",
                )
            key = header_key(header)
            if key in keyed and keyed[key] != target:
                raise MisFormatError(
                    f"column {header!r} is mapped twice (headers compare case-insensitively)",
                    f"mapping {name}",
                )
            keyed[key] = target
        mapped = set(keyed.values())
        missing = [f for f in _REQUIRED[layout] if f not in mapped]
        if not mapped & {"upn", "admission_no"}:
            missing.append("upn or admission_no")
        if missing:
            raise MisFormatError(
                f"the {layout} layout needs columns for: {', '.join(missing)}", f"mapping {name}"
            )
        return cls(layout, keyed, name)


def load_mapping(path: Path) -> Mapping:
    """Read a mapping JSON file (format in the module docstring)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MisFormatError(f"cannot read the mapping: {exc}", str(path)) from exc
    if not isinstance(data, dict) or not isinstance(data.get("columns"), dict):
        raise MisFormatError(
            'a mapping is a JSON object {"layout": "members"|"contacts", '
            '"columns": {"Header in file": "field", ...}}',
            str(path),
        )
    layout = data.get("layout")
    columns = data["columns"]
    if not isinstance(layout, str):
        raise MisFormatError(f'"layout" must be one of {", ".join(LAYOUTS)}', str(path))
    for header, target in columns.items():
        if target is not None and not isinstance(target, str):
            raise MisFormatError(f"column {header!r}: the field must be a string", str(path))
    return Mapping.build(layout, columns, name=path.name)


def _preset(layout: str, variants: dict[str, tuple[str, ...]]) -> Mapping:
    return Mapping.build(
        layout, {header: target for target, hs in variants.items() for header in hs}, layout
    )


_STUDENT_VARIANTS: dict[str, tuple[str, ...]] = {
    "upn": ("UPN", "Unique Pupil Number"),
    "forename": ("Forename", "First name", "Firstname", "Given name", "Legal forename"),
    "surname": ("Surname", "Last name", "Lastname", "Family name", "Legal surname"),
    "reg_group": (
        "Reg Group",
        "Reg",
        "Registration group",
        "Registration",
        "Form",
        "Form group",
        "Tutor group",
        "Class",
    ),
    "year": ("Year", "School year", "Year group", "NC year", "Year taught in"),
}
_ID_HEADERS = (
    "Admission Number",
    "Admission No",
    "Adno",
    "Adm No",
    "Admission number/unique id",
    "Unique id",
    "ID",
    "Student ID",
    "Pupil ID",
)

PRESETS: dict[str, Mapping] = {
    "members": _preset(
        "members",
        {
            **_STUDENT_VARIANTS,
            "admission_no": (*_ID_HEADERS, "Member ID", "Staff ID", "Staff code"),
            "role": ("Role ID", "Role", "Role name", "Member type"),
            "email": ("Email", "Email address", "E-mail", "E-mail address"),
            "mobile": ("Mobile", "Mobile phone", "Mobile number", "Mobile phone number", "SMS"),
        },
    ),
    "contacts": _preset(
        "contacts",
        {
            **_STUDENT_VARIANTS,
            "admission_no": _ID_HEADERS,
            "contact_priority": (
                "Contact Priority",
                "Priority",
                "Contact Order",
                "Order",
                "Contact Sequence",
                "Priority Order",
            ),
            "contact_responsibility": (
                "Parental responsibility",
                "Responsibility",
                "Contact Parental responsibility",
                "Has parental responsibility",
            ),
            "contact_title": ("Title", "Contact Title"),
            "contact_forename": ("Contact Forename", "Contact First name", "Contact Given name"),
            "contact_surname": ("Contact Surname", "Contact Last name", "Contact Family name"),
            "contact_email": (
                "Email",
                "Email address",
                "E-mail",
                "Contact Email",
                "Contact Email address",
            ),
            "contact_mobile": (
                "Mobile",
                "Mobile phone",
                "Mobile number",
                "Contact Mobile",
                "Contact Mobile phone",
            ),
            "contact_relationship": ("Relationship", "Contact Relationship", "Relation"),
            "contact_court_order": ("Court order", "Contact Court order"),
        },
    ),
}


def _resolve(
    table: Table, mapping: Mapping, notes: list[str] | None
) -> tuple[dict[str, int], list[str], list[str]]:
    """field -> column index; the required fields the file lacks; columns that clash."""
    found: dict[str, int] = {}
    clashes: list[str] = []
    for index, header in enumerate(table.columns):
        target = mapping.columns.get(header_key(header))
        if target is None:
            if notes is not None:
                label = f"column {index + 1} (no header)" if not header else f"column {header!r}"
                notes.append(f"{table.name}: {label} is not in the {mapping.name} mapping: ignored")
            continue
        if target == IGNORE:
            continue
        if target in found:
            clashes.append(
                f"columns {table.columns[found[target]]!r} and {header!r} both give {target}"
            )
            continue
        found[target] = index
    missing = [f for f in _REQUIRED[mapping.layout] if f not in found]
    if "upn" not in found and "admission_no" not in found:
        missing.append("upn or admission_no")
    return found, missing, clashes


def _choose_mapping(table: Table) -> Mapping:
    found, missing, _ = _resolve(table, PRESETS["contacts"], None)
    if {"contact_forename", "contact_surname"} <= found.keys():
        return PRESETS["contacts"]
    found, missing, _ = _resolve(table, PRESETS["members"], None)
    if not missing:
        return PRESETS["members"]
    raise MisFormatError(
        "the header line fits neither the members layout (id or UPN, Forename, Surname, "
        "Registration group, School year, Role ID, Email, Mobile) nor the contacts layout "
        "(Student ID, Forename, Surname, Contact Priority, Parental responsibility, Title, "
        "Contact Forename, Contact Surname, Email, Mobile); give a column mapping. "
        f"Headers found: {', '.join(repr(c) for c in table.columns) or '(none)'}",
        f"{table.name} line {table.header_line}",
    )


# --------------------------------------------------------------------------- values

_ROLES: dict[str, Role] = {
    "1": Role.STUDENT,
    "2": Role.TEACHER,
    "3": Role.SUPPORT,
    "4": Role.GOVERNOR,
    "5": Role.BOARD,
    "6": Role.OTHER,
    "student": Role.STUDENT,
    "pupil": Role.STUDENT,
    "teacher": Role.TEACHER,
    "support staff": Role.SUPPORT,
    "support": Role.SUPPORT,
    "governor": Role.GOVERNOR,
    "school board member": Role.BOARD,
    "board member": Role.BOARD,
    "board": Role.BOARD,
    "other": Role.OTHER,
}
_TRUE = {"yes", "y", "true", "t", "1"}
_FALSE = {"no", "n", "false", "f", "0", ""}


def _role(raw: str) -> Role | None:
    return _ROLES.get(header_key(raw))


def _flag(raw: str, what: str, where: str, notes: list[str]) -> bool:
    value = raw.casefold()
    if value in _TRUE:
        return True
    if value not in _FALSE:
        notes.append(f"{where}: {what} {raw!r} is not yes/no: read as no")
    return False


def _priority(raw: str, where: str, notes: list[str]) -> int | None:
    match = re.fullmatch(r"(\d+)(?:\.0+)?", raw)
    if match:
        priority = int(match.group(1))
        if priority <= MAX_PRIORITY:
            return priority
        notes.append(
            f"{where}: contact priority {raw} is out of range (0 to {MAX_PRIORITY:,}): no priority"
        )
        return None
    notes.append(
        f"{where}: contact priority {raw!r} is not a whole number: no priority"
        if raw
        else f"{where}: contact priority is blank: no priority"
    )
    return None


class _Cells:
    """Field access on one row by mapped column; absent columns read as None."""

    __slots__ = ("cells", "index")

    def __init__(self, index: dict[str, int]) -> None:
        self.index = index
        self.cells: list[str] = []

    def get(self, name: str) -> str | None:
        i = self.index.get(name)
        return None if i is None else self.cells[i]

    def text(self, name: str) -> str:
        return self.get(name) or ""


# --------------------------------------------------------------------------- open


def open_csv(source: Path, mapping: Mapping | None = None) -> ParsedFile:
    """Open a members or contacts CSV; the layout comes from ``mapping`` or the header line."""
    if not source.is_file():
        raise MisFormatError("no such file", str(source))
    notes: list[str] = []
    table = read_table(path_opener(source), source.name, notes)
    mapping = mapping or _choose_mapping(table)
    index, missing, clashes = _resolve(table, mapping, notes)
    if clashes:
        raise MisFormatError("; ".join(clashes), f"{table.name} line {table.header_line}")
    if missing:
        raise MisFormatError(
            f"the {mapping.name} mapping needs columns for {', '.join(missing)}; headers found: "
            f"{', '.join(repr(c) for c in table.columns)}",
            f"{table.name} line {table.header_line}",
        )
    if mapping.layout == "members":
        return _open_members(table, index, notes)
    return _open_contacts(table, index, notes)


def _member_ids(row: _Cells) -> tuple[str, str]:
    """(mis_id, admission_no): the UPN keys a student when the file has one."""
    admission_no = row.text("admission_no")
    return row.text("upn") or admission_no, admission_no


def _open_members(table: Table, index: dict[str, int], notes: list[str]) -> ParsedFile:
    # A first pass, in constant memory: a broken row fails the import before anything is applied,
    # and the header must say which kinds of member the file lists.
    roles: set[Role] = set()
    column = index.get("role")
    for _line, cells in iter_rows(table):
        role = Role.STUDENT if column is None else _role(cells[column])
        if role is not None:
            roles.add(role)
    if column is None:
        notes.append(f"{table.name}: no role column: every row is read as a student")
    header = FileHeader(
        format=Format.CSV,
        qualifier="",
        carries_contacts=False,
        carries_students=Role.STUDENT in roles,
        carries_staff=bool(roles - {Role.STUDENT}),
    )
    return ParsedFile(header, _members(table, index, notes), notes)


def _members(table: Table, index: dict[str, int], notes: list[str]) -> Iterator[MemberRecord]:
    row = _Cells(index)
    seen: set[tuple[bool, str]] = set()
    for line, cells in iter_rows(table):
        row.cells = cells
        where = f"line {line}"
        role = Role.STUDENT
        if "role" in index:
            found = _role(row.text("role"))
            if found is None:
                notes.append(
                    f"{where}: role {row.text('role')!r} is not a role id (1-6) or name: "
                    "row skipped"
                )
                continue
            role = found
        mis_id, admission_no = _member_ids(row)
        if not mis_id:
            notes.append(f"{where}: no UPN or admission number: row skipped")
            continue
        if not (row.text("forename") or row.text("surname")):
            notes.append(f"{where}: no name: row skipped")
            continue
        key = (role == Role.STUDENT, mis_id)
        if key in seen:
            notes.append(f"{where}: {mis_id} is listed again: the first row is kept")
            continue
        seen.add(key)
        mobile = row.get("mobile")
        yield MemberRecord(
            mis_id=mis_id,
            forename=row.text("forename"),
            surname=row.text("surname"),
            role=role,
            admission_no=admission_no,
            year=row.get("year") or None,
            reg_group=row.get("reg_group") or None,
            email=row.get("email"),
            phones=None if mobile is None else ((PhoneRecord("M", mobile),) if mobile else ()),
            contacts=None,
            where=where,
        )


# Compact rows held while grouping a contacts file.
_StudentRow = tuple[int, str, str, str, str | None, str | None, str | None, str | None]
_ContactRow = tuple[int, str, str, str, str, str, str, str, str, str]


def _open_contacts(table: Table, index: dict[str, int], notes: list[str]) -> ParsedFile:
    students: dict[str, _StudentRow] = {}
    contacts: dict[str, list[_ContactRow]] = {}
    row = _Cells(index)
    contact_columns = [index[f] for f in CONTACT_FIELDS if f in index]
    for line, cells in iter_rows(table):
        row.cells = cells
        mis_id, admission_no = _member_ids(row)
        if not mis_id:
            notes.append(f"line {line}: no student id or UPN: row skipped")
            continue
        forename, surname = row.text("forename"), row.text("surname")
        known = students.get(mis_id)
        if known is None:
            students[mis_id] = (
                line,
                admission_no,
                forename,
                surname,
                row.get("year") or None,
                row.get("reg_group") or None,
                row.get("email"),
                row.get("mobile"),
            )
            contacts[mis_id] = []
        elif (known[2], known[3]) != (forename, surname):
            notes.append(
                f"line {line}: student {mis_id} is named {forename} {surname} here but "
                f"{known[2]} {known[3]} on line {known[0]}: the first name is kept"
            )
        if not any(cells[i] for i in contact_columns):
            continue
        if not (row.text("contact_forename") or row.text("contact_surname")):
            notes.append(f"line {line}: contact details without a contact name: contact skipped")
            continue
        contacts[mis_id].append(
            (
                line,
                row.text("contact_priority"),
                row.text("contact_title"),
                row.text("contact_forename"),
                row.text("contact_surname"),
                row.text("contact_email"),
                row.text("contact_mobile"),
                row.text("contact_relationship"),
                row.text("contact_responsibility"),
                row.text("contact_court_order"),
            )
        )
    header = FileHeader(format=Format.CSV, qualifier="", carries_contacts=True)
    return ParsedFile(header, _contact_members(students, contacts, notes), notes)


def _contact_members(
    students: dict[str, _StudentRow], contacts: dict[str, list[_ContactRow]], notes: list[str]
) -> Iterator[MemberRecord]:
    for mis_id, (line, adno, forename, surname, year, reg, email, mobile) in list(students.items()):
        records = []
        for c_line, prio, title, c_fore, c_sur, c_email, c_mobile, rel, resp, court in contacts.pop(
            mis_id
        ):
            where = f"line {c_line}"
            records.append(
                ContactRecord(
                    priority=_priority(prio, where, notes),
                    forename=c_fore,
                    surname=c_sur,
                    title=title,
                    relationship=rel,
                    parental_responsibility=_flag(resp, "parental responsibility", where, notes),
                    email=c_email,
                    phones=(PhoneRecord("M", c_mobile),) if c_mobile else (),
                    court_order=_flag(court, "court order", where, notes),
                    where=where,
                )
            )
        # File order within a priority; unnumbered contacts last.
        records.sort(key=lambda c: (c.priority is None, c.priority or 0))
        yield MemberRecord(
            mis_id=mis_id,
            forename=forename,
            surname=surname,
            role=Role.STUDENT,
            admission_no=adno,
            year=year,
            reg_group=reg,
            email=email,
            phones=None if mobile is None else ((PhoneRecord("M", mobile),) if mobile else ()),
            contacts=tuple(records),
            where=f"line {line}",
        )
