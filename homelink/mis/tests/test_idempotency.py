"""Rule 8 as a property: over generated schools, importing the same file again changes nothing."""

from __future__ import annotations

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from homelink.mis.records import MemberRecord
from homelink.mis.tests.factories import contact, pupil, run_import
from homelink.register.selectors import export_register
from homelink.schools.models import School

pytestmark = pytest.mark.django_db

# Few names and few details, so siblings share parents, couples share emails and unrelated adults
# share names: the cases the identity rule has to get right.
FORENAMES = ["Mary", "John", "Alex", "Sam"]
SURNAMES = ["Smith", "Jones"]
EMAILS = ["", "a@example.org", "b@example.org", "c@example.com"]
MOBILES = ["", "07700 900001", "07700 900002", "07700 900003", "0113 496 0001"]


@st.composite
def adults(draw: st.DrawFn) -> tuple[str, str, str, str, bool]:
    return (
        draw(st.sampled_from(FORENAMES)),
        draw(st.sampled_from(SURNAMES)),
        draw(st.sampled_from(EMAILS)),
        draw(st.sampled_from(MOBILES)),
        draw(st.booleans()) and draw(st.booleans()) and draw(st.booleans()),  # court order, rarely
    )


@st.composite
def schools(draw: st.DrawFn) -> list[MemberRecord]:
    pool = draw(st.lists(adults(), min_size=1, max_size=8))
    records = []
    for i in range(draw(st.integers(min_value=1, max_value=8))):
        chosen = draw(st.lists(st.sampled_from(pool), max_size=4))
        contacts = [
            contact(
                draw(st.one_of(st.none(), st.integers(min_value=1, max_value=4))),
                forename,
                surname,
                email=email,
                mobile=mobile,
                court_order=court,
            )
            for forename, surname, email, mobile, court in chosen
        ]
        records.append(
            pupil(f"A{i:012}", "Pupil", f"Number{i}", *contacts, year=str(draw(st.integers(1, 11))))
        )
    return records


def _roll_back() -> None:
    transaction.set_rollback(True)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(first=schools(), second=schools(), lower=st.booleans())
def test_reimporting_any_file_changes_nothing(
    school: School, first: list[MemberRecord], second: list[MemberRecord], lower: bool
) -> None:
    with transaction.atomic():
        School.objects.filter(pk=school.pk).update(import_lower_priority=lower)
        school.refresh_from_db()
        # A school imports one file, then a changed one, then the changed one again.
        run_import(school, first, confirm_leavers=True)
        run_import(school, second, confirm_leavers=True)
        exported = export_register(school)
        again = run_import(school, second, confirm_leavers=True)
        assert not again.plan.has_writes, again.summary["details"]
        assert export_register(school) == exported
        _roll_back()
