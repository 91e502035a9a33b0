"""Multi-academy trusts: a tenant above the school.

A trust has schools (a school is in at most one trust) and staff of its own, whose role holds
at every school of the trust for as long as the school is in it: access is worked out on each
request from :class:`TrustSchool`, never copied into the schools' own staff, so a school taken
out of a trust is out of its staff's reach at once. A school's own staff still see only their
school.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from homelink.schools.models import School
from homelink.staff.models import Role


class Trust(models.Model):
    name = models.CharField(max_length=200, unique=True)
    #: The trust's pool of SMS credits for trust-wide sends; None: each school's own credits.
    sms_credits = models.IntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class TrustSchool(models.Model):
    """A school's place in a trust."""

    trust = models.ForeignKey(Trust, on_delete=models.CASCADE, related_name="places")
    #: One trust at most.
    school = models.OneToOneField(School, on_delete=models.CASCADE, related_name="trust_place")
    #: The OneRoster org sourcedId of the school in the trust's exports, once confirmed by a
    #: trust administrator (else the school's own ``oneroster_org_id`` is used).
    org_sourced_id = models.CharField(max_length=255, blank=True)
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["school__name"]
        constraints = [
            models.UniqueConstraint(
                fields=["trust", "org_sourced_id"],
                condition=~Q(org_sourced_id=""),
                name="trust_org_once",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.school_id} in {self.trust_id}"


class TrustMembership(models.Model):
    """A user's role across every school of one trust: trust administrator, sender or viewer
    (the school roles of the same names, held at each of the trust's schools)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="trust_memberships"
    )
    trust = models.ForeignKey(Trust, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["trust", "user"], name="trust_membership_once"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} @ trust {self.trust_id} ({self.role})"


class TrustInvitation(models.Model):
    """A trust role offered to an email address, accepted through the emailed link exactly as
    a school's staff invitation is (homelink/staff/invitations.py): the token is kept only as a
    keyed hash, and an address has at most one open invitation per trust."""

    trust = models.ForeignKey(Trust, on_delete=models.CASCADE, related_name="invitations")
    email = models.CharField(max_length=254)
    role = models.CharField(max_length=16, choices=Role.choices)
    token_hash = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["trust", "email"],
                condition=Q(accepted_at__isnull=True, revoked_at__isnull=True),
                name="trust_invitation_open_once",
            ),
        ]

    def __str__(self) -> str:
        return f"trust invitation {self.pk} @ {self.trust_id} ({self.role})"

    @property
    def is_open(self) -> bool:
        return self.accepted_at is None and self.revoked_at is None
