"""Parent accounts: one login for a parent with children at several schools of the install."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Parent(models.Model):
    """What a registered parent has proved about themselves. The register's Adult rows (one per
    school) point at the user; this holds the verified contact details they share."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="parent"
    )
    email_verified_at = models.DateTimeField(null=True, blank=True)
    #: E.164; an SMS target only once mobile_verified_at is set (confirmed by a code by SMS).
    mobile = models.CharField(max_length=16, blank=True)
    mobile_verified_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"parent {self.user_id}"

    @property
    def verified_email(self) -> str:
        return self.user.email.strip().lower() if self.email_verified_at else ""

    @property
    def verified_mobile(self) -> str:
        return self.mobile if self.mobile_verified_at else ""
