from __future__ import annotations

from typing import Any, NoReturn

from django.conf import settings
from django.db import models
from django.utils import timezone

from homelink.schools.models import School


class AuditTrailIsAppendOnly(Exception):
    """Raised when code tries to change or delete an audit event: the trail is what the school
    shows its DPO and the ICO, so the application only ever adds to it. The one exception is the
    retention purge, :func:`homelink.audit.services.audit_purge_before`."""


def _refuse(what: str) -> NoReturn:
    raise AuditTrailIsAppendOnly(
        f"audit events cannot be {what}: the audit trail is append-only "
        "(old events leave only through homelink.audit.services.audit_purge_before)"
    )


class AuditEventQuerySet(models.QuerySet["AuditEvent"]):
    def update(self, **kwargs: Any) -> int:
        _refuse("updated")

    def delete(self) -> tuple[int, dict[str, int]]:
        _refuse("deleted")

    def _purge(self) -> int:
        """Delete these rows. Only :func:`homelink.audit.services.audit_purge_before` calls this:
        the retention purge is the one way events leave the trail."""
        count, _ = models.QuerySet.delete(self)
        return count


class AuditEvent(models.Model):
    """Who did what to which record, when. ``detail`` names fields, never personal values.

    Append-only in the application: an event is inserted once and never updated or deleted
    (``save()`` of an existing row, ``delete()``, and the queryset's ``update()`` and ``delete()``
    all raise :class:`AuditTrailIsAppendOnly`). Two things still remove or touch rows below the
    application's methods, on purpose: deleting a whole school (its trail goes with it), and
    deleting a user account, which blanks ``actor`` (``actor_label`` keeps the id)."""

    school = models.ForeignKey(School, on_delete=models.CASCADE, related_name="audit_events")
    # A default rather than auto_now_add: the same moment for every event the application writes,
    # and tests of the retention purge can write an event as it would have been written years ago.
    at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    actor_label = models.CharField(max_length=64, help_text="'cli', 'import', a user's id…")
    action = models.CharField(max_length=64)
    object_type = models.CharField(max_length=32, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    detail = models.JSONField(default=dict)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-at"]
        indexes = [
            # The console's trail: one school's events, newest first, a page at a time.
            models.Index(fields=["school", "-at", "-id"], name="audit_school_at_id"),
            # "Everything about this record" (a member's or an adult's events, a SAR).
            models.Index(fields=["school", "object_type", "object_id"], name="audit_school_object"),
        ]

    def __str__(self) -> str:
        return f"{self.action} by {self.actor_label}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding or kwargs.get("force_update") or kwargs.get("update_fields"):
            _refuse("changed")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        _refuse("deleted")
