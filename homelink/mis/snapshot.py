"""The register as the import planner reads it (product.md, "People and links").

Planning reads the school's register once, before the file, into compact rows held in memory: one
query per table, text columns that repeat interned, an adult's details kept only as a digest. A
school of 100,000 pupils fits in memory this way; the rules (see :mod:`homelink.mis.rules`) then
decide against these rows and read the few full records they change.
"""

from __future__ import annotations

import gc
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from sys import intern
from typing import Any, NamedTuple

from django.db import connection
from django.db.models import QuerySet

from homelink.register.models import Adult, Link, Member
from homelink.schools.models import School


class MemberState(NamedTuple):
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


MEMBER_FIELDS = list(MemberState._fields)


class AdultState(NamedTuple):
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


class LinkState(NamedTuple):
    """A link as the planner needs it, filed under its student (``Register.links``)."""

    id: int
    adult_id: int
    source: str
    priority: int | None
    prime: bool
    prime_set_by: str
    relationship: str
    parental_responsibility: bool


LINK_FIELDS = list(LinkState._fields)


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


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector held off while the register is read: the rows are
    never in a cycle, and the collector would otherwise walk the growing register again and
    again as it is built (a second or more of a nightly import at 100,000 pupils)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@contextmanager
def collector_spares_register() -> Iterator[None]:
    """While the import plans, leave what is in memory now (the register just read, Django's
    own objects) out of the cyclic garbage collector's passes (:func:`gc.freeze`): none of it
    becomes garbage in a cycle while planning, and a full pass over it costs a nightly import a
    second or more. Everything returns to the collector afterwards.

    The freeze is the process's: a planner running at the same moment in another thread of the
    process only has its own objects walked again once one of them finishes."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def load_register(school: School) -> Register:
    """One query per table, compact rows: a 100,000-pupil school fits in memory this way.

    Text columns that repeat across a school (names, years, codes, relationships) are interned:
    a big register's rows would otherwise each hold their own copies."""
    with collector_paused():
        return _load_register(school)


def _load_register(school: School) -> Register:
    members: dict[str, MemberState] = {}
    by_former: dict[str, MemberState] = {}
    by_admission: dict[str, MemberState] = {}
    # The rows are made straight from each database row (tuple.__new__: no Python call per row).
    new = tuple.__new__
    for row in _rows(Member.objects.filter(school=school).values_list(*MEMBER_FIELDS)):
        m = new(
            MemberState,
            (
                row[0],
                intern(row[1]),  # kind
                intern(row[2]),  # role
                row[3],
                row[4],
                row[5],
                intern(row[6]),  # forename
                intern(row[7]),  # surname
                intern(row[8]),  # year
                intern(row[9]),  # reg_group
                row[10],
                row[11],
                intern(row[12]),  # status
                row[13],
                row[14],
            ),
        )
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
        pk = row[0]
        adults[pk] = new(
            AdultState,
            (
                pk,
                intern(row[1]),  # name_key
                intern(row[2]),  # source
                row[3],
                row[4],
                row[5],
                row[6],
                row[7],
                details_digest(row[8:]),  # DETAIL_FIELDS
            ),
        )
        if row[7]:
            by_adult_mis_id[row[7]] = pk
    links: dict[int, list[LinkState]] = defaultdict(list)
    rows = Link.objects.filter(school=school).values_list(*LINK_FIELDS, "student_id")
    for row in _rows(rows):
        adult = adults.get(row[1])
        if adult is None:
            continue  # made by a registration after the adults were read: not this import's
        links[row[8]].append(
            new(
                LinkState,
                (
                    row[0],
                    # The adult's own id: one int object per adult, not another for each link.
                    adult.id,
                    intern(row[2]),  # source
                    row[3],
                    row[4],
                    intern(row[5]),  # prime_set_by
                    intern(row[6]),  # relationship
                    row[7],
                ),
            )
        )
    return Register(members, by_former, by_admission, adults, by_adult_mis_id, links)
