"""Writes to the register made by people: staff on the linked-people screen, and registrations.

Each function is one transaction that locks what it changes, keeps the import rules true (what
it makes is ``manual`` or ``web``, so a later import leaves it alone) and records an audit event
that names fields, never values. The importer's own writes are in :mod:`homelink.mis.apply`.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from homelink.audit.services import audit_record
from homelink.mis.phones import normalise_mobile
from homelink.register.identity import clean_text, name_key, normalise_email
from homelink.register.models import Adult, Link, Member, Source
from homelink.schools.models import School


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
