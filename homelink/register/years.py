"""Year groups in the order a school thinks of them: Nursery, Reception, Year 1 … Year 13.

A student's ``year`` is kept as the MIS wrote it: a CTF's ``NCyearActual`` ("N1", "N2", "R", "1" …
"13", "X" for a pupil outside the National Curriculum years), a CSV's "Year 7" or "Reception", a
OneRoster grade ("KG", "07"). Sorted as text, "R" comes after "11" and "10" before "2"; menus,
checkboxes and lists of years use :func:`in_school_order` instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# "Year 7", "Yr 7", "Y7", "Year R", "YR": the word says nothing about the position.
_PREFIX = re.compile(r"(?:year|yr|y)\s*[-.:]?\s*(?=\S)")
_NURSERY = re.compile(r"(?:nursery|nur|n)\s*([12])?|fs1|f1|pre-?k|pk|pre-?school")
_RECEPTION = re.compile(r"reception|rec|r|fs2|f2|kg|k")
_NUMBERED = re.compile(r"0*(\d{1,2})")

_NURSERY_RANK, _RECEPTION_RANK, _NUMBERED_RANK, _OTHER_RANK = range(4)


def _natural(text: str) -> tuple[tuple[int, int | str], ...]:
    # "7A" before "10A" among the years no rule recognises.
    return tuple(
        (0, int(part)) if part.isdigit() else (1, part)
        for part in re.split(r"(\d+)", text.casefold())
        if part
    )


def _position(year: str) -> tuple[int, int]:
    """(rank, place within the rank): Nursery 0, Reception 1, numbered years 2, the rest 3."""
    text = " ".join(year.casefold().split())
    prefixed = _PREFIX.match(text)
    core = text[prefixed.end() :] if prefixed else text
    nursery = _NURSERY.fullmatch(core)
    if nursery is not None:
        # "N1" before "N2"; a plain "Nursery" with them, first.
        return _NURSERY_RANK, int(nursery.group(1) or 0)
    if _RECEPTION.fullmatch(core):
        return _RECEPTION_RANK, 0
    numbered = _NUMBERED.fullmatch(core)
    if numbered is not None:
        return _NUMBERED_RANK, int(numbered.group(1))
    return _OTHER_RANK, 0


def school_order(year: str) -> tuple[int, int, tuple[tuple[int, int | str], ...]]:
    """A sort key: Nursery (N1, N2), Reception, 1 … 13, then anything else ("X", a year the
    school named its own way) in natural order. Spellings of one year sort together."""
    rank, place = _position(year)
    return rank, place, _natural(year.strip())


def in_school_order(years: Iterable[str]) -> list[str]:
    return sorted(years, key=school_order)


def year_label(year: str) -> str:
    """How a letter names a year: "Reception", "Nursery 1", "Year 7"; any other as "Year …"
    unless the MIS already wrote it that way."""
    year = year.strip()
    if not year:
        return ""
    rank, place = _position(year)
    if rank == _NURSERY_RANK:
        return f"Nursery {place}" if place else "Nursery"
    if rank == _RECEPTION_RANK:
        return "Reception"
    if rank == _NUMBERED_RANK:
        return f"Year {place}"
    if year.casefold().startswith("year"):
        return year
    return f"Year {year}"
