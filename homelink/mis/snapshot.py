"""The register as the import planner reads it (product.md, "People and links").

Planning reads the school's register once, before the file, into compact rows held in memory: one
query per table, text columns that repeat interned, an adult's details kept only as a digest. A
school of 100,000 pupils fits in memory this way; the rules (see :mod:`homelink.mis.rules`) then
decide against these rows and read the few full records they change.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from sys import intern
from typing import Any

from django.db import connection
from django.db.models import QuerySet

from homelink.register.models import Adult, Link, Member
from homelink.schools.models import School


@dataclass(slots=True)
class MemberState:
    id: int
    kind: str
    role: str
    mis_id: str
    former_upn: str
    admission_no: str
    forename: str
    surname: str
    year: str
    reg_group: str
    email: str
    mobile: str
    status: str
    registered: bool
    opted_out: bool


MEMBER_FIELDS = list(MemberState.__slots__)


@dataclass(slots=True)
class AdultState:
    """An adult as the planner needs it. Its details are kept only as a digest: they are read
    for the few adults the file changes, not held for the hundreds of thousands it does not."""

    id: int
    name_key: str
    source: str
    registered: bool
    opted_out: bool
    court_order: bool
    held: bool
    mis_id: str
    details: int


ADULT_FIELDS = [
    "id",
    "name_key",
    "source",
    "registered",
    "opted_out",
    "court_order",
    "held",
    "mis_id",
]
DETAIL_FIELDS = ("title", "forename", "surname", "email", "mobile")


def details_digest(values: tuple[str, ...]) -> int:
    """Stands for an adult's DETAIL_FIELDS within one process (str hashes are per process)."""
    return hash(values)


@dataclass(slots=True)
class LinkState:
    """A link as the planner needs it, filed under its student (``Register.links``)."""

    id: int
    adult_id: int
    source: str
    priority: int | None
    prime: bool
    prime_set_by: str
    relationship: str
    parental_responsibility: bool


LINK_FIELDS = list(LinkState.__slots__)


@dataclass(slots=True)
class Register:
    members: dict[str, MemberState]
    by_former: dict[str, MemberState]
    by_admission: dict[str, MemberState]
    adults: dict[int, AdultState]
    by_adult_mis_id: dict[str, int]
    links: dict[int, list[LinkState]]


def batches(items: list[Any], size: int) -> Iterable[list[Any]]:
    """``items`` in lists of ``size``: the length of an ``IN (…)`` a query may carry."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _interning(fields: list[str], names: set[str]) -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
    """A row converter that interns the given text columns: names, years, relationships and
    codes repeat across a school, and a big register's rows would otherwise hold copies."""
    positions = [i for i, name in enumerate(fields) if name in names]

    def convert(row: tuple[Any, ...]) -> tuple[Any, ...]:
        values = list(row)
        for i in positions:
            values[i] = intern(values[i])
        return tuple(values)

    return convert


def _rows(query: QuerySet[Any, Any]) -> Iterator[tuple[Any, ...]]:
    """A ``values_list`` query's rows, streamed 2,000 at a time.

    On SQLite, as the database gives them: Django would convert each boolean (0 or 1) with a
    Python call, a million calls for a big register, and the planner only tests and compares
    them, for which 0 and 1 do. PostgreSQL gives booleans as they are, and its server-side
    cursor (``iterator``) keeps a big register from being fetched whole.
    """
    if connection.vendor != "sqlite":
        yield from query.iterator(2000)
        return
    sql, params = query.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        while rows := cursor.fetchmany(2000):
            yield from rows


def load_register(school: School) -> Register:
    """One query per table, compact rows: a 100,000-pupil school fits in memory this way."""
    members: dict[str, MemberState] = {}
    by_former: dict[str, MemberState] = {}
    by_admission: dict[str, MemberState] = {}
    convert = _interning(
        MEMBER_FIELDS, {"kind", "role", "forename", "surname", "year", "reg_group", "status"}
    )
    for row in _rows(Member.objects.filter(school=school).values_list(*MEMBER_FIELDS)):
        m = MemberState(*convert(row))
        members[m.mis_id] = m
        if m.former_upn:
            by_former[m.former_upn] = m
        if m.admission_no:
            by_admission[m.admission_no] = m
    adults: dict[int, AdultState] = {}
    by_adult_mis_id: dict[str, int] = {}
    for row in _rows(
        Adult.objects.filter(school=school).values_list(*ADULT_FIELDS, *DETAIL_FIELDS)
    ):
        pk, key, source, registered, opted_out, court_order, held, mis_id, *details = row
        a = AdultState(
            pk,
            intern(key),
            intern(source),
            registered,
            opted_out,
            court_order,
            held,
            mis_id,
            details_digest(tuple(details)),
        )
        adults[a.id] = a
        if a.mis_id:
            by_adult_mis_id[a.mis_id] = a.id
    links: dict[int, list[LinkState]] = defaultdict(list)
    convert = _interning(LINK_FIELDS, {"source", "prime_set_by", "relationship"})
    rows = Link.objects.filter(school=school).values_list(*LINK_FIELDS, "student_id")
    for row in _rows(rows):
        link = LinkState(*convert(row[:-1]))
        adult = adults.get(link.adult_id)
        if adult is None:
            continue  # made by a registration after the adults were read: not this import's
        # The adult's own id: one int object per adult, not another for each of its links.
        link.adult_id = adult.id
        links[row[-1]].append(link)
    return Register(members, by_former, by_admission, adults, by_adult_mis_id, links)
