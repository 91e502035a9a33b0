"""Staff accounts: which schools a user works for, and in which role.

The tables keep the names they had when these models lived in the console (``console_…``):
the models moved between apps in the state only (staff/migrations/0001_initial.py)."""

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
        db_table = "console_staffmembership"
        constraints = [
            models.UniqueConstraint(fields=["school", "user"], name="staff_membership_once"),
        ]
        ordering = ["school__name", "user__email"]

    def __str__(self) -> str:
        return f"{self.user_id} @ {self.school_id} ({self.role})"

    def can(self, role: str) -> bool:
        """Whether this membership's role is at least ``role``."""
        return ROLE_RANK[Role(self.role)] >= ROLE_RANK[Role(role)]


class StaffInvitation(models.Model):
    """A role at a school offered to an email address. The role is given only when the owner of
    that mailbox opens the emailed link and accepts, so nobody gets a seat in the office by
    registering its address first.

    The link's token is kept only as a keyed hash (``token_hash``): the table alone lets nobody
    accept. An address has at most one open invitation per school (neither accepted nor
    revoked, expired or not); inviting it again refreshes that one, with a new token.
    """

    school = models.ForeignKey(School, on_delete=models.CASCADE, related_name="staff_invitations")
    #: Normalised (stripped, lower case), as accounts store their username.
    email = models.CharField(max_length=254)
    role = models.CharField(max_length=16, choices=Role.choices)
    token_hash = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    #: When the current link was made and emailed (a resend or a second invitation moves it).
    sent_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "console_staffinvitation"
        constraints = [
            models.UniqueConstraint(
                fields=["school", "email"],
                condition=models.Q(accepted_at__isnull=True, revoked_at__isnull=True),
                name="staff_invitation_open_once",
            ),
        ]
        ordering = ["school__name", "email"]

    def __str__(self) -> str:
        return f"invitation {self.pk} @ {self.school_id} ({self.role})"

    @property
    def is_open(self) -> bool:
        """Neither accepted nor revoked (it may still have expired)."""
        return self.accepted_at is None and self.revoked_at is None
