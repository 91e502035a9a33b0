"""Writes made from the staff console: staff roles, the linked-people screen's actions
that the register's own services do not cover yet, and the record of a download of personal data.

Each function is one transaction that locks what it changes and records an audit event naming
ids, roles and sources, never a personal value (no email addresses in ``detail``). A role is
given only by an accepted invitation (:mod:`homelink.console.invitations`).
"""

from __future__ import annotations

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from homelink.audit.services import audit_record
from homelink.console.models import Role, StaffMembership
from homelink.messaging.models import Message
from homelink.register.models import Link, Member, PendingLink, Source
from homelink.register.services import link_add

#: Who did it: a label ("cli", "admin") or the signed-in user, whose id the audit trail keeps.
Actor = str | AbstractBaseUser | AnonymousUser


def actor_parts(actor: Actor) -> tuple[str, int | None]:
    """(label, user id) for :func:`audit_record`."""
    if isinstance(actor, str):
        return actor, None
    return f"user:{actor.pk}", actor.pk


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


def link_remove(*, link: Link, actor: Actor) -> None:
    """Staff unlink an adult from a student. Only links made here or by a registration: an
    imported link follows the MIS (rule 6), so removing it here would come back next import."""
    label, actor_id = actor_parts(actor)
    with transaction.atomic():
        Member.objects.select_for_update().filter(pk=link.student_id).exists()
        locked = Link.objects.select_related("school").filter(pk=link.pk).first()
        if locked is None:
            return
        if locked.source == Source.IMPORT:
            raise ValidationError(
                "this link came from the MIS: remove the contact in the MIS and import again"
            )
        audit_record(
            school=locked.school,
            actor_label=label,
            actor_id=actor_id,
            action="link.removed",
            obj=locked,
            detail={
                "source": locked.source,
                "prime": locked.prime,
                "student_id": locked.student_id,
                "adult_id": locked.adult_id,
            },
        )
        locked.delete()


def pending_link_decide(*, pending: PendingLink, approve: bool, actor: Actor) -> Link | None:
    """Staff decide on a web link that waited because someone linked to the student is held
    for review. Approving makes the link the registration would have made then (source
    ``web``, prime when the student has no prime parent)."""
    label, actor_id = actor_parts(actor)
    with transaction.atomic():
        student = (
            Member.objects.select_for_update().select_related("school").get(pk=pending.student_id)
        )
        locked = PendingLink.objects.select_for_update().get(pk=pending.pk)
        if locked.status != PendingLink.Status.WAITING:
            raise ValidationError("this link has already been decided")
        link: Link | None = None
        if approve:
            existing = Link.objects.filter(student=student, adult_id=locked.adult_id).first()
            if existing is not None:
                # Imported before the parent registered: now theirs, as a letter would make it.
                if existing.source == Source.IMPORT:
                    existing.source = Source.WEB
                    fields = ["source", "updated_at"]
                    if locked.relationship and not existing.relationship:
                        existing.relationship = locked.relationship
                        fields.append("relationship")
                    existing.save(update_fields=fields)
                link = existing
            else:
                prime = not Link.objects.filter(student=student, prime=True).exists()
                link = link_add(
                    student=student,
                    adult=locked.adult,
                    source=Source.WEB,
                    prime=prime,
                    actor=label,
                    relationship=locked.relationship,
                )
        locked.status = PendingLink.Status.APPROVED if approve else PendingLink.Status.REFUSED
        locked.decided_at = timezone.now()
        locked.decided_by = label
        locked.save(update_fields=["status", "decided_at", "decided_by"])
        audit_record(
            school=student.school,
            actor_label=label,
            actor_id=actor_id,
            action="link.approved" if approve else "link.refused",
            obj=locked,
            detail={"student_id": student.pk, "adult_id": locked.adult_id},
        )
    pending.status = locked.status
    return link


def message_export_record(*, message: Message, rows: int, actor: Actor) -> None:
    """Record that a message's recipients (names, numbers, addresses) left the system as a
    file: who took them, and how many rows."""
    label, actor_id = actor_parts(actor)
    audit_record(
        school=message.school,
        actor_label=label,
        actor_id=actor_id,
        action="message.deliveries_exported",
        obj=message,
        detail={"rows": rows, "format": "csv"},
    )
