from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from django.db import models, transaction
from django.utils import timezone

from homelink.audit.models import AuditEvent
from homelink.schools.models import School
from homelink.staff.actor import Actor, actor_parts


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


def audit_access(
    *,
    school: School,
    actor: Actor,
    action: str,
    obj: models.Model | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Record that someone looked at or took away personal data (a record's page, a CSV, a
    printout, a PDF): who, when, which record, and counts or filters in ``detail`` — never the
    values themselves. One INSERT, no lock: every view is a row, because "who has looked at
    this child's contacts?" is what a DPO asks."""
    label, actor_id = actor_parts(actor)
    return audit_record(
        school=school, actor_label=label, actor_id=actor_id, action=action, obj=obj, detail=detail
    )


def audit_purge_before(*, school: School, cutoff: dt.datetime) -> int:
    """Delete the school's audit events recorded before ``cutoff``; the number deleted.

    The ONE way audit events leave the trail (everything else refuses: the trail is
    append-only), for the retention purge (``homelink.privacy.retention``), which computes the
    cutoff from the school's ``RetentionPolicy.audit_years`` and audits the purge itself (counts
    only). Only this school's events, only those strictly older than ``cutoff``."""
    if timezone.is_naive(cutoff):
        raise ValueError("audit_purge_before needs an aware datetime")
    with transaction.atomic():
        return AuditEvent.objects.filter(school=school, at__lt=cutoff)._purge()
