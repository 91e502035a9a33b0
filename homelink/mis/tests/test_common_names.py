"""Import cost does not depend on how common names are (issue 12; product.md, import rule 7).

A trust- or LA-wide export has hundreds of parents of the same name who are not the same person.
Identifying an adult across siblings looks adults up by name *and* a shared email or mobile, so
each contact costs the same whether its name is rare or shared by a hundred other adults. Here
the same size of school is imported with names from the generator's full lists and from a tiny
pool, first into an empty register and then as a bigger roll whose new pupils' parents share
their names with adults already in it; the Python calls and the queries per contact must stay
flat. (Before the lookup by detail, the tiny pool cost several times the calls per contact, and
the gap grew with the file.)
"""

from __future__ import annotations

import cProfile
import pstats
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from homelink.mis.generate import generate_ctf
from homelink.mis.services import import_file
from homelink.register.models import Adult
from homelink.schools.models import School

pytestmark = pytest.mark.django_db

PUPILS = 300
#: 2 forenames (one a woman's, one a man's) x 2 surnames: about a hundred adults to a name here,
#: as 25 x 40 gives 100,000 pupils.
TINY_POOL = (2, 2)
#: Per contact, the tiny pool may cost this much more than the full lists (it lists a few more
#: duplicate names under one pupil, each a note in the preview).
SLACK = 1.15


@dataclass(frozen=True)
class Cost:
    calls: int
    queries: int
    contacts: int

    @property
    def calls_per_contact(self) -> float:
        return self.calls / self.contacts

    @property
    def queries_per_contact(self) -> float:
        return self.queries / self.contacts


def _import_cost(school: School, path: Path, contacts: int, *, update_only: bool = False) -> Cost:
    profiler = cProfile.Profile()
    with CaptureQueriesContext(connection) as queries:
        profiler.enable()
        try:
            outcome = import_file(school=school, path=path, update_only=update_only)
        finally:
            profiler.disable()
    assert outcome.applied
    calls = pstats.Stats(profiler).total_calls  # type: ignore[attr-defined]
    return Cost(calls=calls, queries=len(queries), contacts=contacts)


def _costs(tmp_path: Path, name_pool: tuple[int, int] | None) -> tuple[Cost, Cost, int]:
    school = School.objects.create(
        urn="100001", name="Example Academy", la_code="838", estab="4512"
    )
    school.import_lower_priority = True
    school.save()
    tag = "full" if name_pool is None else "x".join(map(str, name_pool))
    first = tmp_path / f"first-{tag}.xml"
    grown = tmp_path / f"grown-{tag}.xml"
    made = generate_ctf(first, pupils=PUPILS, seed=5, name_pool=name_pool)
    # The same school with twice the pupils: the first ones again (most of them), and new
    # families whose parents' names are already in the register.
    bigger = generate_ctf(grown, pupils=PUPILS * 2, seed=5, name_pool=name_pool)
    first_cost = _import_cost(school, first, made.contacts)
    grown_cost = _import_cost(school, grown, bigger.contacts, update_only=True)
    names = Adult.objects.filter(school=school).values("name_key").distinct().count()
    School.objects.filter(pk=school.pk).delete()
    return first_cost, grown_cost, names


def test_cost_per_contact_is_flat_as_the_name_pool_shrinks(tmp_path: Path) -> None:
    varied_first, varied_grown, varied_names = _costs(tmp_path, None)
    tiny_first, tiny_grown, tiny_names = _costs(tmp_path, TINY_POOL)
    # The tiny pool really is a few names shared by many adults.
    assert tiny_names <= 4 < varied_names // 50

    for varied, tiny, which in (
        (varied_first, tiny_first, "first import"),
        (varied_grown, tiny_grown, "grown roll"),
    ):
        assert tiny.calls_per_contact <= varied.calls_per_contact * SLACK, (
            f"{which}: {tiny.calls_per_contact:.0f} Python calls per contact with {tiny_names} "
            f"names against {varied.calls_per_contact:.0f} with {varied_names}"
        )
        assert tiny.queries_per_contact <= varied.queries_per_contact * SLACK, (
            f"{which}: {tiny.queries} queries for {tiny.contacts} contacts with {tiny_names} "
            f"names against {varied.queries} for {varied.contacts} with {varied_names}"
        )
