"""Staff made directly, for tests and the demo only.

Everywhere else a role reaches an account only through an invitation its mailbox's owner accepts
(:mod:`homelink.staff.invitations`). Fixtures need staff without a mailbox: these make the
state an accepted invitation leaves (the email confirmed, the membership), without one.
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from homelink.accounts.models import Parent
from homelink.schools.models import School
from homelink.staff.models import Role, StaffMembership


def confirm_email_directly(user: Any) -> None:
    """Mark the account's email as confirmed, as its confirmation link would."""
    parent, _ = Parent.objects.get_or_create(user=user)
    if parent.email_verified_at is None:
        parent.email_verified_at = timezone.now()
        parent.save(update_fields=["email_verified_at"])


def staff_directly(user: Any, school: School, role: str = Role.ADMINISTRATOR) -> StaffMembership:
    """A confirmed account's membership of the school (kept as it is if it exists)."""
    confirm_email_directly(user)
    membership, _ = StaffMembership.objects.get_or_create(
        user=user, school=school, defaults={"role": role}
    )
    return membership
