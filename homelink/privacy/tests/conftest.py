"""Fixtures for the data protection tests: the first-contact notice on (the rest of the suite
runs with it off, homelink/settings_test.py: a notices test asks for ``notices_on``), a school
filled by an import, and its staff."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model

from homelink.mis.tests.factories import build_roll
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
    return build_roll(school)
