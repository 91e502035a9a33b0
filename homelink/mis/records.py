"""Plain records: what every MIS format parser produces, and all the import engine reads.

A parser turns a file into a :class:`ParsedFile` whose ``members`` iterator yields one
:class:`MemberRecord` at a time, so memory does not grow with the file. Values are as the file
gave them, trimmed of padding; normalisation (phones to E.164, names for matching) happens in the
engine, where the school's region is known.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field


class MisFormatError(Exception):
    """The file cannot be read as its format: says what is wrong and where (line or element)."""

    def __init__(self, message: str, where: str = "") -> None:
        self.message = message
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)


class Format(enum.StrEnum):
    CTF = "ctf"
    ONEROSTER = "oneroster"
    CSV = "csv"


class Role(enum.StrEnum):
    STUDENT = "student"
    TEACHER = "teacher"
    SUPPORT = "support"
    GOVERNOR = "governor"
    BOARD = "board"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class PhoneRecord:
    """One number as the file typed it: ``kind`` is H (home), M (mobile) or W (work)."""

    kind: str
    number: str


#: The largest contact priority (CTF <Order>) a link stores: a file's larger or negative order is
#: no priority, noted like one that is not a number.
MAX_PRIORITY = 2_147_483_647


@dataclass(frozen=True, slots=True)
class ContactRecord:
    """An adult linked to a student, as one file states it for that student."""

    priority: int | None
    forename: str
    surname: str
    title: str = ""
    #: Relationship code as in the file (CTF: PAM, PAF, OTH, REL…; OneRoster: parent,
    #: guardian, relative); "" when absent. Mapped to a label by the engine.
    relationship: str = ""
    parental_responsibility: bool = False
    email: str = ""
    phones: tuple[PhoneRecord, ...] = ()
    court_order: bool = False
    #: The MIS's own id for the contact, where the format has one (OneRoster sourcedId).
    mis_id: str = ""
    #: Where in the file, for messages: "Pupil 3, Contact 2", "line 14".
    where: str = ""


@dataclass(frozen=True, slots=True)
class MemberRecord:
    """A school member: a student, or an adult member (teacher, support staff, governor…).

    ``None`` means "this file says nothing about it" and leaves the register's value alone
    (a CTF has no registration group; a partial CTF has no contacts).
    """

    mis_id: str
    forename: str
    surname: str
    role: Role = Role.STUDENT
    former_ids: tuple[str, ...] = ()
    admission_no: str = ""
    year: str | None = None
    reg_group: str | None = None
    email: str | None = None
    phones: tuple[PhoneRecord, ...] | None = None
    contacts: tuple[ContactRecord, ...] | None = None
    where: str = ""

    @property
    def is_student(self) -> bool:
        return self.role == Role.STUDENT


@dataclass(slots=True)
class FileHeader:
    """What a file says about itself: who wrote it, for whom, and how complete it is."""

    format: Format
    version: str = ""
    #: CTF: "full" or "partial". OneRoster: "bulk" or "delta". CSV: "".
    qualifier: str = ""
    source_urn: str = ""
    source_la: str = ""
    source_estab: str = ""
    source_name: str = ""
    dest_urn: str = ""
    dest_la: str = ""
    dest_estab: str = ""
    #: OneRoster org sourcedIds named in the file.
    org_ids: tuple[str, ...] = ()
    #: False when the file carries no contacts at all (a partial CTF): links are left alone.
    carries_contacts: bool = True
    #: Kinds of member the file lists: a staff-only CSV cannot mark students as left.
    carries_students: bool = True
    carries_staff: bool = False


@dataclass(slots=True)
class ParsedFile:
    """A file opened by a format module. ``notes`` fills as ``members`` is consumed with what
    the parser ignored or doubted (unknown headers, rows skipped and why)."""

    header: FileHeader
    members: Iterator[MemberRecord]
    notes: list[str] = field(default_factory=list)
    #: How much of the input has been read, 0 to 1, where the format can tell (for a progress
    #: bar); None where it cannot.
    fraction_read: Callable[[], float] | None = None
