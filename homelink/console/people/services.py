"""Writes made from the console's people, letters and duplicates pages.

Each function is one transaction that locks what it changes and records an audit event naming
ids, roles and sources, never a personal value. The register's own writes (``adult_create``,
``link_add``) and the letters' (``codes_issue``, ``render_letters``) are reused, not copied.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from homelink.audit.services import audit_record
from homelink.register.models import Adult, LikelyDuplicate, Link, Member, Source
from homelink.register.services import adult_create, link_add
from homelink.registration.codes import code_hash, normalise_code
from homelink.registration.letters import (
    letter_for,
    letterhead,
    public_register_url,
    render_letters,
)
from homelink.registration.models import SecurityCode
from homelink.registration.services import code_revoke, codes_issue
from homelink.staff.actor import Actor, actor_parts


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


@dataclass(frozen=True)
class MemberLetter:
    pdf: bytes
    code: SecurityCode


def member_letter_issue(
    *, member: Member, actor: Actor, now: dt.datetime | None = None
) -> MemberLetter:
    """A new code for one student, printed on one page through the letters' own render path.

    Earlier letters stay live (a second letter is for a second parent). The code is committed
    before drawing; should drawing fail, it is revoked, as nobody can have it.
    """
    label, _ = actor_parts(actor)
    if member.kind != Member.Kind.STUDENT or member.status != Member.Status.CURRENT:
        raise ValidationError("letters are printed for students on roll")
    school = member.school
    now = now or timezone.now()
    [(_, text)] = codes_issue(school=school, members=[member], actor=label, now=now)
    code = SecurityCode.objects.get(code_hash=code_hash(normalise_code(text) or text))
    try:
        pdf = render_letters(
            school_name=school.name,
            letters=[letter_for(member, text)],
            expires_at=code.expires_at,
            url=public_register_url(),
            head=letterhead(school),
        )
    except Exception:
        code_revoke(code=code, actor=label)
        raise
    return MemberLetter(pdf=pdf, code=code)


def member_letter_revoke(*, code: SecurityCode, actor: Actor) -> SecurityCode:
    """Revoke one letter's code (lost, or in the wrong hands)."""
    label, _ = actor_parts(actor)
    with transaction.atomic():
        return code_revoke(code=code, actor=label)


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
