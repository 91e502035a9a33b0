from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import models

from homelink.audit.models import AuditEvent
from homelink.schools.models import School


def audit_event(
    *,
    school: School,
    actor_label: str,
    action: str,
    obj: models.Model | None = None,
    detail: dict[str, Any] | None = None,
    actor_id: int | None = None,
) -> AuditEvent:
    """An event not yet recorded: for :func:`audit_record_all`, when one action makes several."""
    return AuditEvent(
        school=school,
        actor_id=actor_id,
        actor_label=actor_label,
        action=action,
        object_type=obj._meta.model_name or "" if obj is not None else "",
        object_id=str(obj.pk) if obj is not None else "",
        detail=detail or {},
    )


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
    event = audit_event(
        school=school,
        actor_label=actor_label,
        action=action,
        obj=obj,
        detail=detail,
        actor_id=actor_id,
    )
    event.save(force_insert=True)
    return event


def audit_record_all(events: Iterable[AuditEvent]) -> list[AuditEvent]:
    """Record the events of one action with one statement (call inside the action's
    transaction, after the objects they name are saved: their ids are in the events)."""
    return AuditEvent.objects.bulk_create(list(events))
