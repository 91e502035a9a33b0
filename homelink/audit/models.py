from __future__ import annotations

from django.conf import settings
from django.db import models

from homelink.schools.models import School


class AuditEvent(models.Model):
    """Who did what to which record, when. ``detail`` names fields, never personal values."""

    school = models.ForeignKey(School, on_delete=models.CASCADE, related_name="audit_events")
    at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    actor_label = models.CharField(max_length=64, help_text="'cli', 'import', a user's id…")
    action = models.CharField(max_length=64)
    object_type = models.CharField(max_length=32, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    detail = models.JSONField(default=dict)

    class Meta:
        ordering = ["-at"]

    def __str__(self) -> str:
        return f"{self.action} by {self.actor_label}"
