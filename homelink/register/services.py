"""Writes to the register made by people: staff on the linked-people screen, and registrations.

Each function is one transaction that locks what it changes, keeps the import rules true (what
it makes is ``manual`` or ``web``, so a later import leaves it alone) and records an audit event
that names ids, fields and sources, never values. The importer's own writes are in
:mod:`homelink.mis.apply`.

The first few take the actor as a label (a registration, the CLI); those staff call from the
console's pages, further down, take the signed-in :data:`~homelink.staff.actor.Actor`, whose id
the audit trail keeps.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from homelink.audit.services import audit_record
from homelink.mis.phones import normalise_mobile
from homelink.register.identity import clean_text, name_key, normalise_email
from homelink.register.models import Adult, LikelyDuplicate, Link, Member, PendingLink, Source
from homelink.schools.models import School
from homelink.staff.actor import Actor, actor_parts


def adult_create(
    *,
    school: School,
    forename: str,
    surname: str,
    email: str = "",
    mobile: str = "",
    title: str = "",
    source: str = Source.MANUAL,
    actor: str,
) -> Adult:
    """A new adult that did not come from the MIS (staff typed it in, or a registration)."""
    forename, surname = clean_text(forename), clean_text(surname)
    if not forename and not surname:
        raise ValidationError("an adult needs a name")
    clean_email = normalise_email(email)
    if clean_email is None:
        raise ValidationError("that email is not an address")
    clean_mobile = normalise_mobile(mobile, school.phone_region) if mobile.strip() else ""
    if mobile.strip() and not clean_mobile:
        raise ValidationError("that number is not a mobile, so it cannot receive SMS")
    with transaction.atomic():
        adult = Adult.objects.create(
            school=school,
            title=clean_text(title),
            forename=forename,
            surname=surname,
            name_key=name_key(forename, surname),
            email=clean_email,
            mobile=clean_mobile,
            source=source,
        )
        audit_record(school=school, actor_label=actor, action="adult.created", obj=adult)
    return adult


def link_add(
    *,
    student: Member,
    adult: Adult,
    source: str,
    actor: str,
    prime: bool = False,
    relationship: str = "",
    parental_responsibility: bool = False,
) -> Link:
    """Link an adult to a student by hand (``manual``) or by a registration (``web``)."""
    if source == Source.IMPORT:
        raise ValueError("imported links are written by the importer")
    if student.school_id != adult.school_id:
        raise ValidationError("the adult and the student belong to different schools")
    if student.kind != Member.Kind.STUDENT:
        raise ValidationError("adults are linked to students")
    with transaction.atomic():
        Member.objects.select_for_update().filter(pk=student.pk).exists()
        if Link.objects.filter(student=student, adult=adult).exists():
            raise ValidationError("this adult is already linked to this student")
        link = Link.objects.create(
            school_id=student.school_id,
            student=student,
            adult=adult,
            source=source,
            prime=prime,
            prime_set_by=source if prime else "",
            relationship=clean_text(relationship),
            parental_responsibility=parental_responsibility,
        )
        audit_record(
            school=student.school,
            actor_label=actor,
            action="link.added",
            obj=link,
            detail={"source": source, "prime": prime},
        )
    return link


def link_set_prime(*, link: Link, prime: bool, by: str, actor: str) -> Link:
    """Staff (``manual``) or a registration (``web``) sets prime: an import never changes it."""
    with transaction.atomic():
        locked = Link.objects.select_for_update().get(pk=link.pk)
        locked.prime = prime
        locked.prime_set_by = by
        locked.save(update_fields=["prime", "prime_set_by", "updated_at"])
        audit_record(
            school=locked.student.school,
            actor_label=actor,
            action="link.prime_set",
            obj=locked,
            detail={"prime": prime},
        )
    return locked


def person_opt_out(
    *, person: Adult | Member, opted_out: bool, actor: str, requested_by_person: bool
) -> None:
    """Record a full opt-out (or its undoing). A person's own opt-out is undone only at their
    request, which the audit trail shows."""
    if not opted_out and not requested_by_person:
        raise ValidationError(
            "an opt-out is undone only at the request of the person who opted out"
        )
    with transaction.atomic():
        model = type(person)
        model.objects.filter(pk=person.pk).update(opted_out=opted_out)
        person.opted_out = opted_out
        audit_record(
            school=person.school,
            actor_label=actor,
            action="person.opted_out" if opted_out else "person.opted_in",
            obj=person,
            detail={"at_their_request": requested_by_person},
        )


def person_mark_registered(*, person: Adult | Member, actor: str) -> None:
    """From now on the person owns their details: imports no longer change them (rule 1)."""
    with transaction.atomic():
        type(person).objects.filter(pk=person.pk).update(registered=True)
        person.registered = True
        audit_record(
            school=person.school, actor_label=actor, action="person.registered", obj=person
        )


# --- staff's writes from the console: a student's linked people, likely duplicates ----------


def _student(member: Member) -> Member:
    if member.kind != Member.Kind.STUDENT:
        raise ValidationError("adults are linked to students")
    return member


def people_link_existing(
    *,
    student: Member,
    adult: Adult,
    relationship: str = "",
    prime: bool = False,
    parental_responsibility: bool = False,
    actor: Actor,
) -> Link:
    """Staff link an adult already in the register to a student (source ``manual``)."""
    label, _ = actor_parts(actor)
    _student(student)
    if adult.school_id != student.school_id:
        raise ValidationError("the adult and the student belong to different schools")
    with transaction.atomic():
        return link_add(
            student=student,
            adult=adult,
            source=Source.MANUAL,
            prime=prime,
            relationship=relationship,
            parental_responsibility=parental_responsibility,
            actor=label,
        )


def people_add_new(
    *,
    student: Member,
    forename: str,
    surname: str,
    email: str = "",
    mobile: str = "",
    title: str = "",
    relationship: str = "",
    prime: bool = False,
    parental_responsibility: bool = False,
    actor: Actor,
) -> Link:
    """Staff type in a new adult and link them to the student, both ``manual``: the school
    keeps their details, and imports leave them alone (rule 5). Both or neither are made."""
    label, _ = actor_parts(actor)
    _student(student)
    with transaction.atomic():
        adult = adult_create(
            school=student.school,
            forename=forename,
            surname=surname,
            email=email,
            mobile=mobile,
            title=title,
            source=Source.MANUAL,
            actor=label,
        )
        return link_add(
            student=student,
            adult=adult,
            source=Source.MANUAL,
            prime=prime,
            relationship=relationship,
            parental_responsibility=parental_responsibility,
            actor=label,
        )


def adult_review(*, student: Member, adult: Adult, release: bool, actor: Actor) -> Adult:
    """Staff review an adult held for review (a court order in the MIS), from a student's
    screen: release them (they can then receive messages and link with letters) or keep them
    held. Either way the decision is in the audit trail, with who made it and when."""
    label, actor_id = actor_parts(actor)
    with transaction.atomic():
        locked = Adult.objects.select_for_update().select_related("school").get(pk=adult.pk)
        if not Link.objects.filter(student=student, adult=locked).exists():
            raise ValidationError("this adult is not linked to this student")
        if not locked.held:
            raise ValidationError("this adult is not held for review")
        if release:
            locked.held = False
            locked.save(update_fields=["held", "updated_at"])
        audit_record(
            school=locked.school,
            actor_label=label,
            actor_id=actor_id,
            action="adult.review_released" if release else "adult.review_kept_held",
            obj=locked,
            detail={
                "student_id": student.pk,
                "held": locked.held,
                "court_order": locked.court_order,
            },
        )
    adult.held = locked.held
    return locked


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


def duplicate_resolve_not_same(*, duplicate: LikelyDuplicate, actor: Actor) -> LikelyDuplicate:
    """Staff looked at a likely duplicate and decided the two adults are different people."""
    label, actor_id = actor_parts(actor)
    with transaction.atomic():
        locked = (
            LikelyDuplicate.objects.select_for_update()
            .select_related("school")
            .get(pk=duplicate.pk)
        )
        if locked.resolved_at is not None:
            raise ValidationError("this likely duplicate has already been resolved")
        locked.resolved_at = timezone.now()
        locked.save(update_fields=["resolved_at"])
        audit_record(
            school=locked.school,
            actor_label=label,
            actor_id=actor_id,
            action="duplicate.resolved",
            obj=locked,
            detail={
                "outcome": "not_the_same_person",
                "adult_id": locked.adult_id,
                "other_id": locked.other_id,
                "shared": locked.shared,
            },
        )
    duplicate.resolved_at = locked.resolved_at
    return locked
