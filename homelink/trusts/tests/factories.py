"""Accounts for the trusts' tests (the console's tests have their own: nothing outside the
console imports it, tests included)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model

from homelink.schools.models import School
from homelink.staff.models import Role, StaffMembership
from homelink.staff.testing import confirm_email_directly

PASSWORD = "correct horse battery staple"


def make_user(email: str) -> Any:
    """An account with the tests' password (typed Any: the project's user model)."""
    return get_user_model().objects.create_user(username=email, email=email, password=PASSWORD)


def member_of(user: Any, school: School, role: Role) -> StaffMembership:
    """A school role as an accepted invitation leaves it (the email confirmed)."""
    confirm_email_directly(user)
    return StaffMembership.objects.create(user=user, school=school, role=role)
