"""Reads about staff: whose email is confirmed, and which memberships grant anything."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from homelink.accounts.models import Parent
from homelink.staff.models import StaffMembership


def email_confirmed(user: Any) -> bool:
    """Whether the account has proved it owns its email address (a confirmation link, or an
    accepted invitation). Staff made before invitations were confirmed by migration."""
    if not getattr(user, "is_authenticated", False):
        return False
    return Parent.objects.filter(user_id=user.pk, email_verified_at__isnull=False).exists()


def confirmed_memberships() -> QuerySet[StaffMembership]:
    """Memberships that grant anything: those of accounts with a confirmed email."""
    return StaffMembership.objects.filter(user__parent__email_verified_at__isnull=False)
