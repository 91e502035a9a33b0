"""DfE Common Transfer File (CTF) reader (mis-formats.md §1).

The file is read as a stream: the Header is parsed when the file is opened, then one Pupil at a
time as ``members`` is consumed, each Pupil element cleared once its record is built, so a whole
roll of 100,000 pupils costs no more memory than a handful.

CTF files never declare a DOCTYPE, so any file that does is refused before the XML parser sees
it: that is what shuts out entity expansion (billion laughs) and external entities, whatever the
parser's own defences.
"""

from __future__ import annotations

import itertools
import os
import re
from collections import Counter
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import IO, Any, BinaryIO

from lxml import etree

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

__all__ = ["open_ctf", "upn_check_letter"]

_CHUNK = 64 * 1024
# Comments and an XML declaration are all a real prolog holds; a megabyte of them is not a CTF.
_PROLOG_LIMIT = 1024 * 1024

_UPN_LETTERS = "ABCDEFGHJKLMNPQRTUVWXYZ"
_UPN_SHAPE = re.compile(r"[A-Z]\d{11}[0-9A-Z]")
_WHOLE_NUMBER = re.compile(r"[+-]?\d+")
_TRUE = frozenset({"true", "1", "y", "yes"})
_FALSE = frozenset({"false", "0", "n", "no"})

_DOCTYPE_REFUSED = (
    "the file declares a DOCTYPE (a document type, which can define entities); CTF files never "
    "do, so it is refused"
)

Element = Any  # lxml ships no type stubs; an alias keeps signatures readable.


def upn_check_letter(upn: str) -> str:
    """The DfE check letter for a UPN's characters 2 to 13 (a final letter, as in a temporary
    UPN, counts as its position in the check alphabet)."""
    body = upn[1:13] if len(upn) >= 13 else upn
    total = 0
    for weight, char in enumerate(body, start=2):
        total += weight * (int(char) if char.isdigit() else _UPN_LETTERS.index(char))
    return _UPN_LETTERS[total % 23]


def open_ctf(source: Path | BinaryIO) -> ParsedFile:
    """Open a CTF: the header is read now, the pupils as ``members`` is iterated.

    Raises :class:`MisFormatError` for a file that is not a CTF; errors inside a pupil surface
    while iterating ``members``.
    """
    stream: IO[bytes] | BinaryIO
    owned = isinstance(source, str | os.PathLike)
    if isinstance(source, str | os.PathLike):
        try:
            stream = open(source, "rb")  # noqa: SIM115 - closed by the reader when done
        except OSError as err:
            raise MisFormatError(f"cannot open the file: {err.strerror}", str(source)) from err
    else:
        stream = source
    reader = _Reader(stream, close=owned)
    try:
        header = reader.read_header()
    except BaseException:
        reader.close()
        raise
    parsed = ParsedFile(header=header, members=iter(()))
    reader.notes = parsed.notes
    parsed.members = reader.members()
    return parsed


# --- reading -----------------------------------------------------------------------------------

_local_names: dict[str, str] = {}


def _name(tag: str) -> str:
    """Lower-cased local name: CTF element names vary in case between vendors, and a namespace
    (which CTF does not have) is tolerated by ignoring it."""
    name = _local_names.get(tag)
    if name is None:
        name = tag.rpartition("}")[2].lower()
        if len(_local_names) < 4096:
            _local_names[tag] = name
    return name


def _kids(elem: Element) -> dict[str, list[Element]]:
    out: dict[str, list[Element]] = {}
    for child in elem:
        out.setdefault(_name(child.tag), []).append(child)
    return out


def _first(kids: dict[str, list[Element]], name: str) -> Element | None:
    found = kids.get(name)
    return found[0] if found else None


def _text(elem: Element | None) -> str:
    if elem is None:
        return ""
    return (elem.text or "").strip()


def _name_text(elem: Element | None) -> str:
    # SIMS pads names and addresses with runs of spaces; a name is its words.
    return " ".join(_text(elem).split())


def _line(elem: Element) -> str:
    return f"line {elem.sourceline}" if elem.sourceline else "an unknown line"


class _Reader:
    def __init__(self, stream: IO[bytes] | BinaryIO, *, close: bool) -> None:
        self._stream = stream
        self._close = close
        self._batches = self._read_batches()
        # chain() walks each batch of events in C: per-element cost matters on a whole roll.
        self._events: Iterator[tuple[str, Element]] = itertools.chain.from_iterable(self._batches)
        self._partial = False
        self._utf8 = True
        self._header_notes: list[str] = []
        self.notes: list[str] = []

    def close(self) -> None:
        self._batches.close()
        if self._close:
            self._stream.close()

    # -- bytes to events --

    def _read_prolog(self) -> bytes:
        """Everything up to the root element, refused if it declares a DOCTYPE or is not a
        byte encoding the XML parser will read as declared."""
        head = b""
        while True:
            chunk = self._stream.read(_CHUNK)
            head += chunk
            if not head:
                raise MisFormatError("the file is empty", "line 1")
            _check_encoding(head)
            if _scan_prolog(head, final=not chunk) is not None:
                found = _DECLARED_ENCODING.match(head)
                self._utf8 = not found or found.group(1).lower() in (b"utf-8", b"utf8")
                return head
            if len(head) > _PROLOG_LIMIT:
                raise MisFormatError(
                    f"no root element in the first {_PROLOG_LIMIT // 1024} KB: not a CTF"
                )

    def _read_batches(self) -> Generator[Iterator[tuple[str, Element]], None, None]:
        try:
            parser = etree.XMLPullParser(
                events=("end",),
                resolve_entities=False,
                no_network=True,
                load_dtd=False,
                huge_tree=False,
                remove_comments=True,
                remove_pis=True,
            )
            chunk = self._read_prolog()
            try:
                while chunk:
                    parser.feed(chunk)
                    yield parser.read_events()
                    chunk = self._stream.read(_CHUNK)
                parser.close()
                yield parser.read_events()
            except etree.XMLSyntaxError as err:
                raise _syntax_error(err, utf8=self._utf8) from err
        finally:
            if self._close:
                self._stream.close()

    # -- header --

    def read_header(self) -> FileHeader:
        try:
            return self._read_header()
        except etree.XMLSyntaxError as err:
            raise _syntax_error(err, utf8=self._utf8) from err

    def _read_header(self) -> FileHeader:
        first = True
        for _event, elem in self._events:
            if first:
                first = False
                _check_root(elem)
            if elem.getparent() is None:
                raise MisFormatError("the <Header> is missing", _line(elem))
            top = elem
            while (parent := top.getparent()) is not None and parent.getparent() is not None:
                top = parent
            if _name(top.tag) != "header":
                raise MisFormatError(
                    f"the <Header> is missing: <{top.tag}> comes first in <CTfile>",
                    _line(top),
                )
            if top is elem:
                return self._header(elem)
        raise MisFormatError("the <Header> is missing", "end of file")

    def _header(self, elem: Element) -> FileHeader:
        kids = _kids(elem)
        qualifier = _text(_first(kids, "documentqualifier")).lower()
        if qualifier not in ("full", "partial"):
            found = f"'{qualifier}'" if qualifier else "missing"
            raise MisFormatError(
                f"<DocumentQualifier> is {found}: a CTF says full or partial",
                _line(elem),
            )
        self._partial = qualifier == "partial"
        version = _text(_first(kids, "ctfversion"))
        source_elem = _first(kids, "sourceschool")
        dest_elem = _first(kids, "destschool")
        source = _kids(source_elem) if source_elem is not None else {}
        dest = _kids(dest_elem) if dest_elem is not None else {}
        header = FileHeader(
            format=Format.CTF,
            version=version,
            qualifier=qualifier,
            source_urn=_text(_first(source, "urn")),
            source_la=_text(_first(source, "lea")),
            source_estab=_text(_first(source, "estab")),
            source_name=_name_text(_first(source, "schoolname")),
            dest_urn=_text(_first(dest, "urn")),
            dest_la=_text(_first(dest, "lea")),
            dest_estab=_text(_first(dest, "estab")),
            carries_contacts=not self._partial,
        )
        if not version:
            self._header_notes.append("Header: no <CTFversion>")
        if "sourceschool" not in kids:
            self._header_notes.append(
                "Header: no <SourceSchool>: the file does not say who wrote it"
            )
        return header

    # -- pupils --

    def members(self) -> Iterator[MemberRecord]:
        self.notes.extend(self._header_notes)
        count = 0
        saw_pupil_data = False
        ignored_contacts = False
        names = _local_names
        try:
            for _event, elem in self._events:
                tag = elem.tag
                name = names.get(tag) or _name(tag)
                if name == "pupil":
                    parent = elem.getparent()
                    if parent is None or _name(parent.tag) != "ctfpupildata":
                        continue
                    count += 1
                    record, had_contacts = self._pupil(elem, count)
                    ignored_contacts = ignored_contacts or had_contacts
                    # Free the pupil and everything before it: the tree never grows.
                    elem.clear()
                    while elem.getprevious() is not None:
                        del parent[0]
                    yield record
                elif name in _SKIPPED:
                    # Attendance, assessments, history: not ours to read, freed at once.
                    elem.clear()
                elif name == "ctfpupildata":
                    saw_pupil_data = True
        except etree.XMLSyntaxError as err:
            raise _syntax_error(err, utf8=self._utf8) from err
        finally:
            self.close()
        if not saw_pupil_data:
            self.notes.append("the file has no <CTFpupilData>: it lists no pupils")
        if ignored_contacts:
            self.notes.append(
                "the file is partial, so the contacts and phones it holds were ignored"
            )

    def _pupil(self, elem: Element, number: int) -> tuple[MemberRecord, bool]:
        where = f"Pupil {number} ({_line(elem)})"
        kids = _kids(elem)
        upn = _text(_first(kids, "upn")).upper()
        if not upn:
            raise MisFormatError("the <Pupil> has no <UPN>", where)
        surname = _name_text(_first(kids, "surname"))
        forename = _name_text(_first(kids, "forename"))
        if not surname or not forename:
            missing = "<Surname>" if not surname else "<Forename>"
            raise MisFormatError(f"the <Pupil> (UPN {upn}) has no {missing}", where)
        self._check_upn(upn, f"{where}: UPN {upn}")

        basic_elem = _first(kids, "basicdetails")
        basic = _kids(basic_elem) if basic_elem is not None else {}
        year = _text(_first(basic, "ncyearactual")) or None
        former: list[str] = []
        for item in basic.get("formerupn", ()):
            value = _text(item).upper()
            if value and value != upn and value not in former:
                former.append(value)
                self._check_upn(value, f"{where}: former UPN {value}")

        had_contacts = "contacts" in kids or "phones" in kids
        email: str | None = None
        phones: tuple[PhoneRecord, ...] | None = None
        contacts: tuple[ContactRecord, ...] | None = None
        if not self._partial:
            had_contacts = False
            email = _text(_first(kids, "email"))
            phones = self._phones(kids, f"{where} (UPN {upn})")
            contacts = self._contacts(kids, upn, number)
        record = MemberRecord(
            mis_id=upn,
            forename=forename,
            surname=surname,
            role=Role.STUDENT,
            former_ids=tuple(former),
            year=year,
            reg_group=None,
            email=email,
            phones=phones,
            contacts=contacts,
            where=where,
        )
        return record, had_contacts

    def _check_upn(self, upn: str, where: str) -> None:
        if not _UPN_SHAPE.fullmatch(upn):
            self.notes.append(
                f"{where} does not look like a UPN (a letter, 11 digits, then a digit or letter)"
            )
        elif upn[0] != (expected := upn_check_letter(upn)):
            self.notes.append(f"{where} has the wrong check letter (expected {expected})")

    def _phones(self, kids: dict[str, list[Element]], where: str) -> tuple[PhoneRecord, ...]:
        phones: list[PhoneRecord] = []
        for block in kids.get("phones", ()):
            for phone in block:
                if _name(phone.tag) != "phone":
                    continue
                parts = _kids(phone)
                number = _text(_first(parts, "phoneno"))
                if not number:
                    self.notes.append(f"{where}: a <Phone> with no number ({_line(phone)}) ignored")
                    continue
                kind = _text(_first(parts, "telephonetype")).upper() or "H"
                phones.append(PhoneRecord(kind=kind, number=number))
        return tuple(phones)

    def _contacts(
        self, kids: dict[str, list[Element]], upn: str, number: int
    ) -> tuple[ContactRecord, ...]:
        found: list[tuple[int, ContactRecord]] = []
        position = 0
        for block in kids.get("contacts", ()):
            for contact in block:
                if _name(contact.tag) != "contact":
                    continue
                position += 1
                where = f"Pupil {number} (UPN {upn}), Contact {position}"
                record = self._contact(contact, where)
                if record is not None:
                    found.append((position, record))
        counts = Counter(c.priority for _, c in found if c.priority is not None)
        for priority, times in sorted(counts.items()):
            if times > 1:
                self.notes.append(
                    f"Pupil {number} (UPN {upn}): {times} contacts share <Order> {priority}"
                )
        # Order is the priority; ties and contacts without one keep their place in the file.
        found.sort(key=lambda item: (item[1].priority is None, item[1].priority or 0, item[0]))
        return tuple(record for _, record in found)

    def _contact(self, elem: Element, where: str) -> ContactRecord | None:
        kids = _kids(elem)
        forename = _name_text(_first(kids, "forename"))
        surname = _name_text(_first(kids, "surname"))
        if not forename and not surname:
            self.notes.append(f"{where} ({_line(elem)}) has no name: ignored")
            return None
        order = _text(_first(kids, "order"))
        priority: int | None = None
        if not order:
            self.notes.append(f"{where} has no <Order>: it has no priority")
        elif _WHOLE_NUMBER.fullmatch(order):
            priority = int(order)
        else:
            self.notes.append(f"{where}: <Order> '{order}' is not a whole number: no priority")

        responsibility = _text(_first(kids, "responsibility")).lower()
        if responsibility and responsibility not in _TRUE | _FALSE:
            self.notes.append(
                f"{where}: <Responsibility> '{responsibility}' is neither true nor false: "
                "taken as false"
            )
        emails = [_text(e) for e in kids.get("email", ()) if _text(e)]
        if len(emails) > 1:
            self.notes.append(f"{where} has {len(emails)} emails: the first is used")

        court_order = False
        for supp in kids.get("suppinfo", ()):
            for item in supp:
                if _name(item.tag) == "courtorder" and _text(item).lower() in _TRUE:
                    court_order = True

        return ContactRecord(
            priority=priority,
            forename=forename,
            surname=surname,
            title=_name_text(_first(kids, "title")),
            relationship=_text(_first(kids, "relationship")).upper(),
            parental_responsibility=responsibility in _TRUE,
            email=emails[0] if emails else "",
            phones=self._phones(kids, where),
            court_order=court_order,
            where=where,
        )


_SKIPPED = frozenset(
    {
        "attendance",
        "stageassessments",
        "schoolhistory",
        "senhistory",
        "fsmhistory",
        "naw",
        "lookedafter",
        "nawdetails",
    }
)


def _check_root(elem: Element) -> None:
    tree = elem.getroottree()
    if tree.docinfo.doctype:
        # The prolog scan refuses these first; this is the belt to its braces.
        raise MisFormatError(_DOCTYPE_REFUSED, "line 1")
    root = tree.getroot()
    if _name(root.tag) != "ctfile":
        raise MisFormatError(
            f"the root element is <{root.tag}>, not <CTfile>: this is not a Common Transfer File",
            _line(root),
        )


def _syntax_error(err: Any, *, utf8: bool) -> MisFormatError:
    line = getattr(err, "lineno", 0) or 0
    msg = str(getattr(err, "msg", "") or err)
    log = getattr(err, "error_log", None)
    if not line and log is not None and (fatals := log.filter_from_fatals()):
        # With entity resolution off, an undefined entity surfaces as "no element found" at
        # line 0; the thread's libxml2 log (which also holds earlier files' faults, so only
        # its latest entry is ours) has the real fault and line.
        line, msg = fatals[-1].line, fatals[-1].message
    msg = re.sub(r",? line \d+, column \d+$", "", msg.strip())
    # libxml2 words a bad byte several ways ("Input is not proper UTF-8", "Invalid bytes in
    # character encoding"), depending on where in its buffer the byte falls.
    if "UTF-8" in msg or "encoding" in msg.lower():
        if not utf8:
            return MisFormatError(
                f"the file cannot be read in the encoding it declares, at line {line}: {msg}",
                f"line {line}",
            )
        return MisFormatError(
            f"the file is not valid UTF-8 at line {line} and its XML declaration names no "
            "other encoding; CTF files are UTF-8",
            f"line {line}",
        )
    return MisFormatError(f"the file is not well-formed XML at line {line}: {msg}", f"line {line}")


_DECLARED_ENCODING = re.compile(
    rb"""(?:\xef\xbb\xbf)?\s*<\?xml[^>]*?\bencoding\s*=\s*["']([A-Za-z0-9._-]+)["']"""
)


def _check_encoding(head: bytes) -> None:
    if head[:2] in (b"\xff\xfe", b"\xfe\xff") or head[:2] in (b"\x00<", b"<\x00"):
        raise MisFormatError(
            "the file is encoded as UTF-16 or UTF-32; CTF files are UTF-8: export it again",
            "line 1",
        )


def _prolog_line(head: bytes, index: int) -> str:
    return f"line {head.count(10, 0, index) + 1}"


def _scan_prolog(head: bytes, *, final: bool) -> int | None:
    """Where the root element starts, or None when more bytes are needed to know.

    Raises on a DOCTYPE (or any other markup declaration) before the root, and on text there.
    """
    i = 3 if head.startswith(b"\xef\xbb\xbf") else 0
    n = len(head)
    while True:
        while i < n and head[i] in b" \t\r\n":
            i += 1
        if i >= n:
            if final:
                raise MisFormatError("the file has no root element: it is not XML", "end of file")
            return None
        if head[i] != ord("<"):
            raise MisFormatError(
                "the file does not start with XML markup: it is not a CTF",
                _prolog_line(head, i),
            )
        if n - i < 9 and not final:
            return None
        if head.startswith(b"<?", i):
            end = head.find(b"?>", i + 2)
        elif head.startswith(b"<!--", i):
            end = head.find(b"-->", i + 4)
        elif head.startswith(b"<!", i):
            # <!DOCTYPE, or <!ENTITY and friends outside one: all are refused unread.
            raise MisFormatError(_DOCTYPE_REFUSED, _prolog_line(head, i))
        else:
            return i
        if end < 0:
            if final:
                # Unterminated: the XML parser will name the fault.
                return i
            return None
        i = end + (2 if head[i + 1] == ord("?") else 3)
