"""A school with families to message, shared by the messaging tests."""

from __future__ import annotations

import pytest

from homelink.mis.records import Role
from homelink.mis.tests.factories import contact, pupil, run_import, staff
from homelink.schools.models import School


@pytest.fixture
def family(school: School) -> School:
    """Three Smith children with the same parents and grandmother; a Jones child in year 7 and
    a Kay child with nobody; a teacher who shares Mary's address, and a governor. 1,000 SMS
    credits."""
    school.import_lower_priority = True
    school.sms_credits = 1000
    school.save()
    mum = contact(1, "Mary", "Smith", email="mary@example.org", mobile="07700900001")
    dad = contact(2, "Dan", "Smith", mobile="07700900002", responsibility=False)
    gran = contact(3, "Gwen", "Smith", email="gwen@example.org")
    run_import(
        school,
        [
            pupil("A1", "Amy", "Smith", mum, dad, gran, year="7"),
            pupil("A2", "Ben", "Smith", mum, dad, gran, year="8"),
            pupil("A3", "Cara", "Smith", mum, dad, gran, year="9"),
            pupil(
                "B1",
                "Jo",
                "Jones",
                contact(1, "Jill", "Jones", email="jill@example.org", mobile="07700900003"),
                year="7",
            ),
            pupil("C1", "Kit", "Kay", year="7"),
            staff("S1", "Tess", "Teach", Role.TEACHER, email="mary@example.org"),
            staff("S2", "Gus", "Gov", Role.GOVERNOR, email="gus@example.org"),
        ],
    )
    return school
