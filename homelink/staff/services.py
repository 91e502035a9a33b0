"""Writes about a school's staff: changing a role, and ending one.

Each function is one transaction that locks what it changes and records an audit event naming
ids and roles, never a personal value (no email addresses in ``detail``). A role is given only
by an accepted invitation (:mod:`homelink.staff.invitations`).
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from homelink.audit.services import audit_record
from homelink.staff.actor import Actor, actor_parts
from homelink.staff.models import Role, StaffMembership


def role_checked(role: str) -> Role:
    """The role named, or a ValidationError listing the roles."""
    try:
        return Role(role)
    except ValueError:
        raise ValidationError(
            f"{role!r} is not a role (choose {', '.join(r.value for r in Role)})"
        ) from None


def _keep_an_administrator(school_id: int, leaving: StaffMembership) -> None:
    """A school is never left without an administrator: nobody could then manage its staff
    except the site operator. Locks the school's administrators so two removals cannot both
    pass the check."""
    admins = list(
        StaffMembership.objects.select_for_update()
        .filter(school_id=school_id, role=Role.ADMINISTRATOR)
        .values_list("pk", flat=True)
    )
    if admins == [leaving.pk]:
        raise ValidationError(
            "this is the school's only administrator: add another administrator first"
        )


def staff_set_role(*, membership: StaffMembership, role: str, actor: Actor) -> StaffMembership:
    checked_role = role_checked(role)
    label, actor_id = actor_parts(actor)
    with transaction.atomic():
        locked = StaffMembership.objects.select_for_update().get(pk=membership.pk)
        if locked.role == checked_role:
            return locked
        if locked.role == Role.ADMINISTRATOR:
            _keep_an_administrator(locked.school_id, locked)
        before = locked.role
        locked.role = checked_role
        locked.save(update_fields=["role"])
        audit_record(
            school=locked.school,
            actor_label=label,
            actor_id=actor_id,
            action="staff.role_changed",
            obj=locked,
            detail={"from": before, "to": checked_role.value, "user_id": locked.user_id},
        )
    membership.role = checked_role
    return locked


def staff_remove(*, membership: StaffMembership, actor: Actor) -> None:
    """End a person's role at one school (their account, and other schools, stay)."""
    label, actor_id = actor_parts(actor)
    with transaction.atomic():
        locked = StaffMembership.objects.select_for_update().filter(pk=membership.pk).first()
        if locked is None:
            return
        if locked.role == Role.ADMINISTRATOR:
            _keep_an_administrator(locked.school_id, locked)
        audit_record(
            school=locked.school,
            actor_label=label,
            actor_id=actor_id,
            action="staff.removed",
            obj=locked,
            detail={"role": locked.role, "user_id": locked.user_id},
        )
        locked.delete()
