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
    #: A new address waiting for its confirmation link; ``user.email`` stays the old one until
    #: then, so a typo never cuts a parent off.
    pending_email = models.CharField(max_length=254, blank=True)
    #: E.164; an SMS target only once mobile_verified_at is set (confirmed by a code by SMS).
    mobile = models.CharField(max_length=16, blank=True)
    mobile_verified_at = models.DateTimeField(null=True, blank=True)
    #: A new number waiting for its SMS code (E.164); ``mobile`` stays the old one until then.
    pending_mobile = models.CharField(max_length=16, blank=True)
    #: Keyed hash of the six-digit code sent to ``pending_mobile``: never the code itself.
    mobile_code_hash = models.CharField(max_length=64, blank=True)
    mobile_code_expires_at = models.DateTimeField(null=True, blank=True)
    #: Wrong codes typed against the current code; it stops working at the limit.
    mobile_code_attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"parent {self.user_id}"

    @property
    def verified_email(self) -> str:
        return self.user.email.strip().lower() if self.email_verified_at else ""

    @property
    def verified_mobile(self) -> str:
        return self.mobile if self.mobile_verified_at else ""
