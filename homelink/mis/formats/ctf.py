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
import operator
import os
import re
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, BinaryIO

from lxml import etree

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

__all__ = ["open_ctf", "upn_check_letter"]

_CHUNK = 64 * 1024
# Comments and an XML declaration are all a real prolog holds; a megabyte of them is not a CTF.
_PROLOG_LIMIT = 1024 * 1024

_UPN_LETTERS = "ABCDEFGHJKLMNPQRTUVWXYZ"
_UPN_VALUES = {char: value for value, char in enumerate(_UPN_LETTERS)} | {
    str(digit): digit for digit in range(10)
}
_UPN_WEIGHTS = range(2, 14)
_UPN_SHAPE = re.compile(r"[A-Z]\d{11}[0-9A-Z]")
_WHOLE_NUMBER = re.compile(r"[+-]?\d+")
_TRUE = frozenset({"true", "1", "y", "yes"})
_FALSE = frozenset({"false", "0", "n", "no"})
_BOOLEANS = _TRUE | _FALSE

_DOCTYPE_REFUSED = (
    "the file declares a DOCTYPE (a document type, which can define entities); CTF files never "
    "do, so it is refused"
)

Element = Any  # lxml ships no type stubs; an alias keeps signatures readable.


def upn_check_letter(upn: str) -> str:
    """The DfE check letter for a UPN's characters 2 to 13 (a final letter, as in a temporary
    UPN, counts as its position in the check alphabet)."""
    body = upn[1:13] if len(upn) >= 13 else upn
    try:
        total = sum(map(operator.mul, _UPN_WEIGHTS, map(_UPN_VALUES.__getitem__, body)))
    except KeyError:
        # Not ASCII digits and check letters: worked out one by one, as ever.
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
    parsed = ParsedFile(header=header, members=iter(()), fraction_read=_fraction_read(stream))
    reader.notes = parsed.notes
    parsed.members = reader.members()
    return parsed


def _fraction_read(stream: IO[bytes] | BinaryIO) -> Callable[[], float] | None:
    try:
        size = os.fstat(stream.fileno()).st_size
    except (OSError, AttributeError, ValueError):
        return None
    if not size:
        return None

    def fraction() -> float:
        try:
            return min(stream.tell() / size, 1.0)
        except (OSError, ValueError):  # closed: all of it was read
            return 1.0

    return fraction


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


_TAG = operator.attrgetter("tag")
# A layout longer than this (no CTF element has so many children) is worked out, not kept.
_LAYOUT_LIMIT = 64

Layout = tuple[tuple[int, ...], ...]


class _Fields:
    """Finds the children an element of one kind (a Pupil, a Contact…) is read for.

    Called on an element, it gives the element's children and, for each of ``fields`` (names in
    lower case) in turn, the indexes of the children of that name, whatever its case, in file
    order. Those depend only on the children's tags, which repeat from pupil to pupil, so each
    layout is worked out once and then looked up: one look-up an element rather than one a
    child, which is most of the cost of a roll of thousands."""

    __slots__ = ("_fields", "_layouts")

    def __init__(self, *fields: str) -> None:
        self._fields = fields
        self._layouts: dict[tuple[str, ...], Layout] = {}

    def __call__(self, elem: Element | None) -> tuple[list[Element], Layout]:
        children = [] if elem is None else list(elem)
        tags = tuple(map(_TAG, children))
        layout = self._layouts.get(tags)
        if layout is None:
            found: dict[str, list[int]] = {}
            for index, tag in enumerate(tags):
                found.setdefault(_name(tag), []).append(index)
            layout = tuple(tuple(found.get(field, ())) for field in self._fields)
            if len(tags) <= _LAYOUT_LIMIT and len(self._layouts) < 256:
                self._layouts[tags] = layout
        return children, layout


def _first(children: list[Element], found: tuple[int, ...]) -> Element | None:
    return children[found[0]] if found else None


def _first_text(children: list[Element], found: tuple[int, ...]) -> str:
    """The first of the found children's text, stripped; "" with none."""
    return (children[found[0]].text or "").strip() if found else ""


def _first_name(children: list[Element], found: tuple[int, ...]) -> str:
    """The first of the found children's text as a name: its words, one space apart."""
    # SIMS pads names and addresses with runs of spaces; a name is its words.
    return " ".join((children[found[0]].text or "").split()) if found else ""


_HEADER = _Fields("documentqualifier", "ctfversion", "sourceschool", "destschool")
_SCHOOL = _Fields("urn", "lea", "estab", "schoolname")
_PUPIL = _Fields("upn", "surname", "forename", "basicdetails", "email", "phones", "contacts")
_BASIC = _Fields("ncyearactual", "formerupn")
_CONTACT = _Fields(
    "forename",
    "surname",
    "order",
    "responsibility",
    "title",
    "relationship",
    "email",
    "suppinfo",
    "phones",
)
_PHONE = _Fields("phoneno", "telephonetype")


def _text(elem: Element | None) -> str:
    if elem is None:
        return ""
    return (elem.text or "").strip()


def _line(elem: Element) -> str:
    return f"line {elem.sourceline}" if elem.sourceline else "an unknown line"


def _spellings(word: str) -> tuple[str, ...]:
    """Every upper- and lower-case spelling of ``word``, in any namespace or none: as an event
    filter, it lets through exactly the elements whose ``_name`` is ``word``."""
    found = [""]
    for char in word:
        found = [
            start + case for start in found for case in dict.fromkeys(char.lower() + char.upper())
        ]
    return tuple("{*}" + spelling for spelling in found)


# Once the Header is read, only Pupil elements reach Python: libxml2 still builds the
# attendance, assessments and history blocks (most of a CTF) but reports none of their ~200
# elements a pupil, and they are freed with their Pupil. Filtering in C is most of the speed.
_PUPIL_TAGS = _spellings("pupil")


def _new_parser(tag: tuple[str, ...] | None = None) -> Any:
    return etree.XMLPullParser(
        events=("end",),
        tag=tag,
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
        # The white space between elements (a line break and an indent before each of a
        # pupil's hundreds of elements) is never read: dropped, libxml2 builds and frees half
        # as many nodes. An element's own text is kept whatever it is (even white space alone),
        # and the reader strips it anyway.
        remove_blank_text=True,
        # No ID attributes are looked up: libxml2 need not index them.
        collect_ids=False,
    )


class _Reader:
    def __init__(self, stream: IO[bytes] | BinaryIO, *, close: bool) -> None:
        self._stream = stream
        self._close = close
        # Both parsers are fed the same bytes until the Header has been read: this one reports
        # every element, as the root and Header checks need, then is dropped with its tree (a
        # chunk or so); the other reports only Pupils and reads the whole file.
        self._header_parser: Any = _new_parser()
        self._parser: Any = _new_parser(_PUPIL_TAGS)
        self._root: Element | None = None
        self._started = False
        self._finished = False
        self._partial = False
        self._utf8 = True
        self._header_notes: list[str] = []
        self.notes: list[str] = []

    def close(self) -> None:
        self._header_parser = None
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

    def _feed(self) -> bool:
        """Feed the parsers the next chunk of the file; False once it is all read and they are
        closed (their last events still to be read)."""
        if self._finished:
            return False
        try:
            if self._started:
                chunk = self._stream.read(_CHUNK)
            else:
                self._started = True
                chunk = self._read_prolog()
            if chunk:
                if self._header_parser is not None:
                    self._header_parser.feed(chunk)
                self._parser.feed(chunk)
                return True
            self._finished = True
            if self._header_parser is not None:
                self._header_parser.close()
            self._root = self._parser.close()
        except etree.XMLSyntaxError as err:
            raise _syntax_error(err, utf8=self._utf8) from err
        if self._close:
            self._stream.close()
        return False

    def _pupil_events(self) -> Iterator[tuple[str, Element]]:
        parser = self._parser
        # Events from before the Header was read: a Pupil inside the Header is not the file's.
        for event in parser.read_events():
            if not _inside_header(event[1]):
                yield event
        while self._feed():
            yield from parser.read_events()
        yield from parser.read_events()

    # -- header --

    def read_header(self) -> FileHeader:
        try:
            return self._read_header()
        except etree.XMLSyntaxError as err:
            raise _syntax_error(err, utf8=self._utf8) from err

    def _read_header(self) -> FileHeader:
        first = True
        while True:
            more = self._feed()
            for _event, elem in self._header_parser.read_events():
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
                    header = self._header(elem)
                    self._header_parser = None
                    return header
            if not more:
                raise MisFormatError("the <Header> is missing", "end of file")

    def _header(self, elem: Element) -> FileHeader:
        kids, (qualifiers, versions, sources, dests) = _HEADER(elem)
        qualifier = _first_text(kids, qualifiers).lower()
        if qualifier not in ("full", "partial"):
            found = f"'{qualifier}'" if qualifier else "missing"
            raise MisFormatError(
                f"<DocumentQualifier> is {found}: a CTF says full or partial",
                _line(elem),
            )
        self._partial = qualifier == "partial"
        version = _first_text(kids, versions)
        source, (source_urn, source_la, source_estab, source_name) = _SCHOOL(_first(kids, sources))
        dest, (dest_urn, dest_la, dest_estab, _) = _SCHOOL(_first(kids, dests))
        header = FileHeader(
            format=Format.CTF,
            version=version,
            qualifier=qualifier,
            source_urn=_first_text(source, source_urn),
            source_la=_first_text(source, source_la),
            source_estab=_first_text(source, source_estab),
            source_name=_first_name(source, source_name),
            dest_urn=_first_text(dest, dest_urn),
            dest_la=_first_text(dest, dest_la),
            dest_estab=_first_text(dest, dest_estab),
            carries_contacts=not self._partial,
        )
        if not version:
            self._header_notes.append("Header: no <CTFversion>")
        if not sources:
            self._header_notes.append(
                "Header: no <SourceSchool>: the file does not say who wrote it"
            )
        return header

    # -- pupils --

    def members(self) -> Iterator[MemberRecord]:
        self.notes.extend(self._header_notes)
        count = 0
        ignored_contacts = False
        try:
            for _event, elem in self._pupil_events():
                parent = elem.getparent()
                if parent is None or _name(parent.tag) != "ctfpupildata":
                    continue
                count += 1
                record, had_contacts = self._pupil(elem, count)
                ignored_contacts = ignored_contacts or had_contacts
                # Free the pupil and everything before it (its attendance and history blocks
                # with it): the tree never grows.
                elem.clear()
                while elem.getprevious() is not None:
                    del parent[0]
                yield record
        except etree.XMLSyntaxError as err:
            raise _syntax_error(err, utf8=self._utf8) from err
        finally:
            self.close()
        # A pupil was read from a <CTFpupilData>; with none, nothing was freed to look in.
        if not count and not _has_pupil_data(self._root):
            self.notes.append("the file has no <CTFpupilData>: it lists no pupils")
        if ignored_contacts:
            self.notes.append(
                "the file is partial, so the contacts and phones it holds were ignored"
            )

    def _pupil(self, elem: Element, number: int) -> tuple[MemberRecord, bool]:
        where = f"Pupil {number} ({_line(elem)})"
        kids, (upns, surnames, forenames, basics, emails, phone_blocks, contact_blocks) = _PUPIL(
            elem
        )
        upn = _first_text(kids, upns).upper()
        if not upn:
            raise MisFormatError("the <Pupil> has no <UPN>", where)
        surname = _first_name(kids, surnames)
        forename = _first_name(kids, forenames)
        if not surname or not forename:
            missing = "<Surname>" if not surname else "<Forename>"
            raise MisFormatError(f"the <Pupil> (UPN {upn}) has no {missing}", where)
        self._check_upn(upn, f"{where}: UPN {upn}")

        basic, (years, former_upns) = _BASIC(_first(kids, basics))
        year = _first_text(basic, years) or None
        former: list[str] = []
        for index in former_upns:
            value = _text(basic[index]).upper()
            if value and value != upn and value not in former:
                former.append(value)
                self._check_upn(value, f"{where}: former UPN {value}")

        had_contacts = bool(contact_blocks or phone_blocks)
        email: str | None = None
        phones: tuple[PhoneRecord, ...] | None = None
        contacts: tuple[ContactRecord, ...] | None = None
        if not self._partial:
            had_contacts = False
            email = _first_text(kids, emails)
            phones = self._phones(kids, phone_blocks, f"{where} (UPN {upn})")
            contacts = self._contacts(kids, contact_blocks, upn, number)
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

    def _phones(
        self, kids: list[Element], blocks: tuple[int, ...], where: str
    ) -> tuple[PhoneRecord, ...]:
        if not blocks:
            return ()
        names = _local_names
        phones: list[PhoneRecord] = []
        for block in blocks:
            for phone in kids[block]:
                tag = phone.tag
                if (names.get(tag) or _name(tag)) != "phone":
                    continue
                parts, (numbers, kinds) = _PHONE(phone)
                number = (parts[numbers[0]].text or "").strip() if numbers else ""
                if not number:
                    self.notes.append(f"{where}: a <Phone> with no number ({_line(phone)}) ignored")
                    continue
                kind = (parts[kinds[0]].text or "").strip().upper() if kinds else ""
                kind = kind or "H"
                phones.append(PhoneRecord(kind=kind, number=number))
        return tuple(phones)

    def _contacts(
        self, kids: list[Element], blocks: tuple[int, ...], upn: str, number: int
    ) -> tuple[ContactRecord, ...]:
        found: list[tuple[int, ContactRecord]] = []
        position = 0
        names = _local_names
        for block in blocks:
            for contact in kids[block]:
                tag = contact.tag
                if (names.get(tag) or _name(tag)) != "contact":
                    continue
                position += 1
                where = f"Pupil {number} (UPN {upn}), Contact {position}"
                record = self._contact(contact, where)
                if record is not None:
                    found.append((position, record))
        priorities = [record.priority for _, record in found]
        # (sorted() sees no None: the test before it has ruled that out.)
        if None in priorities or priorities != sorted(set(priorities)):  # type: ignore[type-var]
            # Not already in order without ties, as almost every file is: sort, and note ties.
            counts = Counter(p for p in priorities if p is not None)
            for priority, times in sorted(counts.items()):
                if times > 1:
                    self.notes.append(
                        f"Pupil {number} (UPN {upn}): {times} contacts share <Order> {priority}"
                    )
            # Order is the priority; ties and contacts without one keep their place in the file.
            found.sort(key=_contact_order)
        return tuple(record for _, record in found)

    def _contact(self, elem: Element, where: str) -> ContactRecord | None:
        (
            kids,
            (
                forenames,
                surnames,
                orders,
                responsibilities,
                titles,
                relationships,
                emails,
                supps,
                phone_blocks,
            ),
        ) = _CONTACT(elem)
        forename = _first_name(kids, forenames)
        surname = _first_name(kids, surnames)
        if not forename and not surname:
            self.notes.append(f"{where} ({_line(elem)}) has no name: ignored")
            return None
        order = _first_text(kids, orders)
        priority: int | None = None
        if not order:
            self.notes.append(f"{where} has no <Order>: it has no priority")
        elif _WHOLE_NUMBER.fullmatch(order):
            priority = int(order)
            if not 0 <= priority <= MAX_PRIORITY:
                self.notes.append(
                    f"{where}: <Order> {order} is out of range (0 to {MAX_PRIORITY:,}): no priority"
                )
                priority = None
        else:
            self.notes.append(f"{where}: <Order> '{order}' is not a whole number: no priority")

        responsibility = _first_text(kids, responsibilities).lower()
        if responsibility and responsibility not in _BOOLEANS:
            self.notes.append(
                f"{where}: <Responsibility> '{responsibility}' is neither true nor false: "
                "taken as false"
            )
        email = ""
        if emails:
            found = [text for index in emails if (text := _text(kids[index]))]
            if len(found) > 1:
                self.notes.append(f"{where} has {len(found)} emails: the first is used")
            email = found[0] if found else ""

        court_order = False
        names = _local_names
        for supp in supps:
            for item in kids[supp]:
                tag = item.tag
                if (names.get(tag) or _name(tag)) == "courtorder" and _text(item).lower() in _TRUE:
                    court_order = True

        return ContactRecord(
            priority=priority,
            forename=forename,
            surname=surname,
            title=_first_name(kids, titles),
            relationship=_first_text(kids, relationships).upper(),
            parental_responsibility=responsibility in _TRUE,
            email=email,
            phones=self._phones(kids, phone_blocks, where),
            court_order=court_order,
            where=where,
        )


def _contact_order(item: tuple[int, ContactRecord]) -> tuple[bool, int, int]:
    priority = item[1].priority
    return (priority is None, priority or 0, item[0])


def _inside_header(elem: Element) -> bool:
    header = elem.getroottree().getroot()[0]
    return any(ancestor is header for ancestor in elem.iterancestors())


def _has_pupil_data(root: Element | None) -> bool:
    """Whether a <CTFpupilData> follows the Header (the root's first child) anywhere."""
    if root is None:
        return False
    for top in itertools.islice(root, 1, None):
        for elem in top.iter(etree.Element):
            if _name(elem.tag) == "ctfpupildata":
                return True
    return False


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
