"""Writes from a member's page that the register's own services do not cover yet: removing a
link made here or by a registration, and deciding a link that waited for review.

Each function is one transaction that locks what it changes and records an audit event naming
ids and sources, never a personal value.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from homelink.audit.services import audit_record
from homelink.register.models import Link, Member, PendingLink, Source
from homelink.register.services import link_add
from homelink.staff.actor import Actor, actor_parts


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
