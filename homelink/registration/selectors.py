"""Reads for registration: finding a code as typed, and the students a set of letters is for."""

from __future__ import annotations

import datetime as dt
import re

from django.db.models import Exists, OuterRef
from django.utils import timezone

from homelink.register.models import Link, Member
from homelink.registration.codes import code_hashes, normalise_code
from homelink.registration.models import SecurityCode
from homelink.schools.models import School


def code_lookup(*, raw: str, now: dt.datetime | None = None) -> SecurityCode | None:
    """The live code a person typed, or None.

    Unknown, malformed, revoked and expired codes all give None, so that a caller cannot tell
    them apart and neither can whoever is guessing. Rate limiting is the caller's job.
    """
    code = normalise_code(raw)
    if code is None:
        return None
    return (
        SecurityCode.objects.live(now or timezone.now())
        .filter(code_hash__in=code_hashes(code))
        .select_related("member", "school")
        .first()
    )


def _natural(text: str) -> tuple[tuple[int, int | str], ...]:
    # "7A" before "10A": registration groups usually begin with the year.
    return tuple(
        (0, int(part)) if part.isdigit() else (1, part)
        for part in re.split(r"(\d+)", text.casefold())
        if part
    )


def _year_value(year: str) -> str:
    text = year.strip()
    return re.sub(r"^year\s*", "", text, flags=re.IGNORECASE) or text


def letter_students(
    *,
    school: School,
    year: str | None = None,
    reg_group: str | None = None,
    unregistered_only: bool = False,
) -> list[Member]:
    """Current students of the school for a set of letters, in the order they are printed:
    registration group, then surname, then forename.

    Sorted here rather than by the database so that SQLite and PostgreSQL (whose collations
    differ on case and accents) print in the same order.
    """
    students = Member.objects.filter(
        school=school, kind=Member.Kind.STUDENT, status=Member.Status.CURRENT
    )
    if year:
        students = students.filter(year__iexact=_year_value(year))
    if reg_group:
        students = students.filter(reg_group__iexact=reg_group.strip())
    if unregistered_only:
        students = students.exclude(
            Exists(Link.objects.filter(student=OuterRef("pk"), adult__registered=True))
        )
    chosen = list(
        students.only("id", "school_id", "forename", "surname", "year", "reg_group", "kind")
    )
    chosen.sort(
        key=lambda m: (
            not m.reg_group,  # students without a group after all the groups
            _natural(m.reg_group),
            m.surname.casefold(),
            m.forename.casefold(),
            m.pk,
        )
    )
    return chosen
