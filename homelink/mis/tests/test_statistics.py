"""After a big import, PostgreSQL's planner knows the register's new size at once."""

from __future__ import annotations

import pytest
from django.db import connection

from homelink.mis.services import ANALYZE_AFTER
from homelink.mis.tests.factories import contact, pupil, run_import
from homelink.schools.models import School

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="planner statistics are PostgreSQL's"
)


def _estimated_links() -> float:
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE relname = 'register_link'")
        return float(cursor.fetchone()[0])


@pytest.mark.django_db(transaction=True)
def test_a_big_import_refreshes_the_planner_statistics(school: School) -> None:
    pupils = ANALYZE_AFTER // 4
    records = [
        pupil(
            f"A{i:012d}",
            f"Pupil{i}",
            "Big",
            contact(1, f"Mum{i}", "Big", email=f"mum{i}@example.org"),
            contact(2, f"Dad{i}", "Big", email=f"dad{i}@example.org"),
        )
        for i in range(pupils)
    ]
    school.import_lower_priority = True
    school.save()
    run_import(school, records)
    assert _estimated_links() >= pupils * 2 * 0.9
