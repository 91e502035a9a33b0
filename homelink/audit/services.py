from __future__ import annotations

from typing import Any

from django.db import models

from homelink.audit.models import AuditEvent
from homelink.schools.models import School


def audit_record(
    *,
    school: School,
    actor_label: str,
    action: str,
    obj: models.Model | None = None,
    detail: dict[str, Any] | None = None,
    actor_id: int | None = None,
) -> AuditEvent:
    """Record an action in the school's audit trail (call inside the action's transaction)."""
    return AuditEvent.objects.create(
        school=school,
        actor_id=actor_id,
        actor_label=actor_label,
        action=action,
        object_type=obj._meta.model_name or "" if obj is not None else "",
        object_id=str(obj.pk) if obj is not None else "",
        detail=detail or {},
    )
