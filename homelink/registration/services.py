"""Writes for security codes: issuing and revoking.

Each function is one transaction and records an audit event that holds counts and ids, never
a code or a personal value. A clear code exists only in the return value of
:func:`codes_issue`, for the caller that prints it; the database holds its keyed hash.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from homelink.audit.services import audit_record
from homelink.register.models import Member
from homelink.registration.codes import code_hash, format_code, generate_code
from homelink.registration.models import LetterBatch, SecurityCode
from homelink.registration.selectors import code_lookup
from homelink.schools.models import School

__all__ = [
    "code_lookup",
    "code_revoke",
    "codes_issue",
    "codes_revoke_all",
    "letter_batch_revoke",
]


def codes_issue(
    *,
    school: School,
    members: Iterable[Member],
    actor: str,
    letter_batch: LetterBatch | None = None,
    now: dt.datetime | None = None,
) -> list[tuple[Member, str]]:
    """A new code for each member, as ``(member, "7KQ2-M9XD-4RTW-PBH3")`` in the order given.

    Earlier codes stay live: a second letter is for a second parent, not a replacement.
    """
    now = now or timezone.now()
    members = list(members)
    if school.code_expiry_days < 1:
        raise ValidationError("the school's codes must be valid for at least one day")
    if any(m.school_id != school.pk for m in members):
        raise ValidationError("codes are issued only for the school's own members")
    if letter_batch is not None and letter_batch.school_id != school.pk:
        raise ValidationError("the letter batch belongs to another school")
    expires_at = now + dt.timedelta(days=school.code_expiry_days)
    issued: list[tuple[Member, str]] = []
    rows: list[SecurityCode] = []
    for member in members:
        code = generate_code()
        issued.append((member, format_code(code)))
        rows.append(
            SecurityCode(
                code_hash=code_hash(code),
                school=school,
                member=member,
                letter_batch=letter_batch,
                created_at=now,
                expires_at=expires_at,
                issued_by=actor,
            )
        )
    # Two equal codes among 2^80 are not worth a query per code: should it ever happen, the
    # unique index refuses the batch and nothing has been printed yet.
    with transaction.atomic():
        SecurityCode.objects.bulk_create(rows, batch_size=500)
        audit_record(
            school=school,
            actor_label=actor,
            action="codes.issued",
            obj=letter_batch or (members[0] if len(members) == 1 else None),
            detail={"count": len(rows)},
        )
    return issued


def code_revoke(*, code: SecurityCode, actor: str, now: dt.datetime | None = None) -> SecurityCode:
    """Revoke one letter's code (a lost letter, a parent who should not have it).

    Revoking a revoked code changes nothing, so two staff doing it at once is harmless.
    """
    with transaction.atomic():
        locked = SecurityCode.objects.select_for_update().get(pk=code.pk)
        if locked.revoked_at is None:
            locked.revoked_at = now or timezone.now()
            locked.revoked_by = actor
            locked.save(update_fields=["revoked_at", "revoked_by"])
            audit_record(school=locked.school, actor_label=actor, action="code.revoked", obj=locked)
    code.revoked_at, code.revoked_by = locked.revoked_at, locked.revoked_by
    return locked


def codes_revoke_all(*, member: Member, actor: str, now: dt.datetime | None = None) -> int:
    """Revoke every code a member still has; how many were revoked."""
    with transaction.atomic():
        count = SecurityCode.objects.filter(member=member, revoked_at__isnull=True).update(
            revoked_at=now or timezone.now(), revoked_by=actor
        )
        audit_record(
            school=member.school,
            actor_label=actor,
            action="codes.revoked_all",
            obj=member,
            detail={"count": count},
        )
    return count


def letter_batch_revoke(*, batch: LetterBatch, actor: str, now: dt.datetime | None = None) -> int:
    """Revoke every code of one printing (a pile of letters lost, or a print that failed)."""
    with transaction.atomic():
        count = SecurityCode.objects.filter(letter_batch=batch, revoked_at__isnull=True).update(
            revoked_at=now or timezone.now(), revoked_by=actor
        )
        audit_record(
            school=batch.school,
            actor_label=actor,
            action="letters.revoked",
            obj=batch,
            detail={"count": count},
        )
    return count
