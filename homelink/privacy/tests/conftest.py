"""Fixtures for the data protection tests: the first-contact notice on (the rest of the suite
runs with it off, homelink/settings_test.py: a notices test asks for ``notices_on``), a school
filled by an import, and its staff."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from homelink.mis.records import Role as MisRole
from homelink.mis.tests.factories import contact, pupil, run_import, staff
from homelink.schools.models import School
from homelink.staff.models import Role, StaffMembership
from homelink.staff.testing import confirm_email_directly

PASSWORD = "correct horse battery staple"


@pytest.fixture
def notices_on(settings: Any) -> None:
    settings.HOMELINK_FIRST_CONTACT_NOTICE = True
    settings.HOMELINK_PUBLIC_URL = "https://homelink.example.org"
    # Password hashing at full strength costs a quarter of a second per login made here.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def staff_user(school: School, email: str, role: Role) -> Any:
    """A member of staff as an accepted invitation leaves them (email confirmed)."""
    user = get_user_model().objects.create_user(username=email, email=email, password=PASSWORD)
    confirm_email_directly(user)
    StaffMembership.objects.create(user=user, school=school, role=role)
    return user


@pytest.fixture
def admin_a(school: School) -> Any:
    return staff_user(school, "office@a.example", Role.ADMINISTRATOR)


@pytest.fixture
def sender_a(school: School) -> Any:
    return staff_user(school, "sender@a.example", Role.SENDER)


@pytest.fixture
def viewer_a(school: School) -> Any:
    return staff_user(school, "viewer@a.example", Role.VIEWER)


@pytest.fixture
def roll(school: School) -> School:
    """Imported from the MIS, nobody told yet. Year 7: Amy Smith (Mary: email and mobile; Dan:
    mobile only), Jo Jones (Jill: email and mobile), Kit Kay (nobody). Year 8: Ben Smith (Amy's
    brother). Year 9: Lou Brown (Zoë: mobile only). A teacher. 1,000 SMS credits."""
    school.sms_credits = 1000
    school.save()
    mary = contact(1, "Mary", "Smith", email="mary@example.org", mobile="07700900001")
    dan = contact(1, "Dan", "Smith", mobile="07700900002", responsibility=False)
    jill = contact(1, "Jill", "Jones", email="jill@example.org", mobile="07700900003")
    zoe = contact(1, "Zo\u00eb", "Brown", mobile="07700900004")
    run_import(
        school,
        [
            replace(pupil("A1", "Amy", "Smith", mary, dan, year="7"), reg_group="7A"),
            replace(pupil("B1", "Jo", "Jones", jill, year="7"), reg_group="7B"),
            replace(pupil("C1", "Kit", "Kay", year="7"), reg_group="7A"),
            replace(pupil("A2", "Ben", "Smith", mary, dan, year="8"), reg_group="8B"),
            replace(pupil("D1", "Lou", "Brown", zoe, year="9"), reg_group="9C"),
            staff("S1", "Tess", "Teach", MisRole.TEACHER, email="tess@example.org"),
        ],
    )
    return school
