"""Staff accounts: which schools a user works for, and in which role."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from homelink.schools.models import School


class Role(models.TextChoices):
    ADMINISTRATOR = "administrator"
    SENDER = "sender"
    VIEWER = "viewer"


#: Each role can do everything the roles below it can: a sender may also look, an administrator
#: may also send.
ROLE_RANK = {Role.VIEWER: 1, Role.SENDER: 2, Role.ADMINISTRATOR: 3}


class StaffMembership(models.Model):
    """A user's place in one school's office. A person working for a trust has one per school;
    there is no cross-school role (a site operator is a Django superuser and uses the admin)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="staff_memberships"
    )
    # The unique (school, user) index serves lookups by school.
    school = models.ForeignKey(
        School, on_delete=models.CASCADE, related_name="staff_memberships", db_index=False
    )
    role = models.CharField(max_length=16, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["school", "user"], name="staff_membership_once"),
        ]
        ordering = ["school__name", "user__email"]

    def __str__(self) -> str:
        return f"{self.user_id} @ {self.school_id} ({self.role})"

    def can(self, role: str) -> bool:
        """Whether this membership's role is at least ``role``."""
        return ROLE_RANK[Role(self.role)] >= ROLE_RANK[Role(role)]
