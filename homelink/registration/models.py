"""Security codes and the letters that carry them."""

from __future__ import annotations

import datetime as dt

from django.db import models
from django.db.models import Q

from homelink.register.models import Member
from homelink.schools.models import School


class LetterBatch(models.Model):
    """One printing of letters: who printed which set, when, and how many. Holds no codes."""

    school = models.ForeignKey(School, on_delete=models.CASCADE, related_name="letter_batches")
    created_at = models.DateTimeField(auto_now_add=True)
    issued_by = models.CharField(max_length=64, help_text="'cli', a user's id…")
    #: The choice that selected the students: {"year": "7", "reg_group": null, ...}.
    filter = models.JSONField(default=dict)
    count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.count} letters by {self.issued_by}"


class SecurityCodeQuerySet(models.QuerySet["SecurityCode"]):
    def live(self, now: dt.datetime) -> SecurityCodeQuerySet:
        return self.filter(revoked_at__isnull=True, expires_at__gt=now)


class SecurityCode(models.Model):
    """The code printed on one letter, kept only as a keyed hash (see codes.py).

    A member may hold several live codes at once: separated parents each get a letter, and a
    reprint must not cancel the letter already at home.
    """

    code_hash = models.CharField(max_length=64, unique=True)
    school = models.ForeignKey(School, on_delete=models.CASCADE, related_name="security_codes")
    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="security_codes")
    letter_batch = models.ForeignKey(
        LetterBatch,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="codes",
    )
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    issued_by = models.CharField(max_length=64)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.CharField(max_length=64, blank=True)

    objects = SecurityCodeQuerySet.as_manager()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(expires_at__gt=models.F("created_at")), name="code_expires_after_issue"
            ),
        ]

    def __str__(self) -> str:
        return f"code {self.pk} for member {self.member_id}"

    def is_live(self, now: dt.datetime) -> bool:
        return self.revoked_at is None and self.expires_at > now
