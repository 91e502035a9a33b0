"""A registered adult enters a letter's code and is linked to that student (source ``web``).

One transaction that locks the student, so "at most four adults through letters" holds when
five try at the same moment: on PostgreSQL the row lock queues them, on SQLite the IMMEDIATE
transaction does. Failures the caller may show are :class:`LinkRefused`; an unknown, wrong,
expired or revoked code is :class:`CodeNotAccepted`, which the caller answers identically
whatever the cause.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from homelink.accounts.models import Parent
from homelink.audit.services import audit_record
from homelink.register.identity import clean_text, name_key
from homelink.register.models import Adult, LikelyDuplicate, Link, Member, PendingLink, Source
from homelink.registration.models import SecurityCode
from homelink.registration.selectors import code_lookup

#: How many adults may link to one student through letters (product.md).
MAX_WEB_ADULTS = 4

#: What a parent linking with a letter says they are to the child: stored on the link as the
#: word (lower case, as imported relationships are), or what they typed for "other".
RELATIONSHIPS = {
    "mother": "Mother",
    "father": "Father",
    "carer": "Carer",
    "grandparent": "Grandparent",
    "other": "Other",
}
RELATIONSHIP_MAX = 32


def relationship_clean(choice: str, other: str = "") -> str:
    """The relationship to store for a parent's answer: the choice, or for "other" what they
    typed (tidied, at most RELATIONSHIP_MAX characters). ValueError when there is no answer."""
    choice = choice.strip().lower()
    if choice not in RELATIONSHIPS:
        raise ValueError("choose a relationship")
    if choice != "other":
        return choice
    typed = clean_text(other)[:RELATIONSHIP_MAX].strip()
    if not typed:
        raise ValueError("say what the relationship is")
    return typed


class CodeNotAccepted(Exception):
    """Unknown, mistyped, expired or revoked: deliberately one error with one message."""

    message = "That code was not accepted. Check it against your letter and try again."


class LinkRefused(Exception):
    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


@dataclass(frozen=True)
class LinkResult:
    #: "linked", "waiting" (for staff: someone linked to the student is held for review),
    #: "already" (this adult was linked before), or "registered" (an adult member's own code).
    status: str
    member: Member
    adult: Adult | None
    prime: bool = False


def link_with_code(
    *,
    user: AbstractBaseUser,
    raw_code: str,
    relationship: str = "",
    now: dt.datetime | None = None,
) -> LinkResult:
    """Link the account to the student whose letter has ``raw_code``; ``relationship`` is what
    the parent said they are to the child (see :func:`relationship_clean`), kept on the link
    (or on the waiting link, for staff). A staff member's own letter ignores it."""
    now = now or timezone.now()
    relationship = clean_text(relationship)[:RELATIONSHIP_MAX]
    found = code_lookup(raw=raw_code, now=now)
    if found is None:
        raise CodeNotAccepted()
    with transaction.atomic():
        # Read again under lock: a code revoked since the form was opened (or since the lookup)
        # fails now, and concurrent links to one student queue behind each other.
        code = SecurityCode.objects.select_for_update().filter(pk=found.pk).first()
        if code is None or not code.is_live(now):
            raise CodeNotAccepted()
        member = Member.objects.select_for_update().select_related("school").get(pk=code.member_id)
        if member.status != Member.Status.CURRENT:
            raise CodeNotAccepted()  # a letter for someone who has left links no one
        parent, _ = Parent.objects.get_or_create(user=user)
        if member.kind == Member.Kind.ADULT:
            return _register_member(member, user, parent)
        return _link_student(member, user, parent, now, relationship)


def _register_member(member: Member, user: AbstractBaseUser, parent: Parent) -> LinkResult:
    """A member of staff (or a governor) registers themselves: they own their details now."""
    if member.account_id not in (None, user.pk):
        raise LinkRefused("This letter has already been used to register.")
    member.account_id = user.pk
    member.registered = True
    if parent.verified_email:
        member.email = parent.verified_email
    if parent.verified_mobile:
        member.mobile = parent.verified_mobile
    member.save(update_fields=["account", "registered", "email", "mobile", "updated_at"])
    audit_record(
        school=member.school, actor_label=f"user:{user.pk}", action="member.registered", obj=member
    )
    return LinkResult("registered", member, None)


def _link_student(
    student: Member, user: AbstractBaseUser, parent: Parent, now: dt.datetime, relationship: str
) -> LinkResult:
    school = student.school
    actor = f"user:{user.pk}"
    adult = Adult.objects.filter(school=school, account_id=user.pk).first()
    if adult is None:
        adult = _adult_for(student, user, parent, actor)
    link = Link.objects.filter(student=student, adult=adult).first()
    if link is not None and link.source == Source.WEB:
        return LinkResult("already", student, adult, link.prime)
    through_letters = (
        Link.objects.filter(student=student, source=Source.WEB).exclude(adult=adult).count()
        + PendingLink.objects.filter(student=student, status=PendingLink.Status.WAITING)
        .exclude(adult=adult)
        .count()
    )
    if through_letters >= MAX_WEB_ADULTS:
        raise LinkRefused(
            f"{MAX_WEB_ADULTS} adults have already linked themselves to {student.forename} with a "
            "letter, which is as many as a letter allows. Please contact the school office."
        )
    if adult.held or Link.objects.filter(student=student, adult__held=True).exists():
        # Safeguarding: with a court order in the family, or on this adult, staff decide.
        pending, created = PendingLink.objects.get_or_create(
            school=school,
            student=student,
            adult=adult,
            status=PendingLink.Status.WAITING,
            defaults={"relationship": relationship},
        )
        if not created and relationship and pending.relationship != relationship:
            pending.relationship = relationship
            pending.save(update_fields=["relationship"])
        audit_record(school=school, actor_label=actor, action="link.waiting_for_staff", obj=pending)
        return LinkResult("waiting", student, adult)
    if link is not None:
        # Imported before: the parent has now claimed it with the school's letter, so it is
        # theirs (an import no longer removes or changes it, rule 5). The MIS's relationship
        # stays if it had one: it is the school's record; else the parent's answer fills it.
        link.source = Source.WEB
        fields = ["source", "updated_at"]
        if relationship and not link.relationship:
            link.relationship = relationship
            fields.append("relationship")
        link.save(update_fields=fields)
        audit_record(school=school, actor_label=actor, action="link.claimed", obj=link)
        return LinkResult("linked", student, adult, link.prime)
    prime = not Link.objects.filter(student=student, prime=True).exists()
    link = Link.objects.create(
        school=school,
        student=student,
        adult=adult,
        source=Source.WEB,
        prime=prime,
        prime_set_by=Source.WEB if prime else "",
        relationship=relationship,
    )
    audit_record(
        school=school,
        actor_label=actor,
        action="link.added",
        obj=link,
        detail={"source": "web", "prime": prime},
    )
    return LinkResult("linked", student, adult, prime)


def _adult_for(student: Member, user: AbstractBaseUser, parent: Parent, actor: str) -> Adult:
    """The register's adult for this account at this school: an adult already linked to the
    student becomes theirs only when exactly one has their verified email or mobile (couples
    often share an email); otherwise a new adult, and a likely duplicate listed for staff."""
    school = student.school
    email, mobile = parent.verified_email, parent.verified_mobile
    details = Q()
    if email:
        details |= Q(email=email)
    if mobile:
        details |= Q(mobile=mobile)
    linked = Adult.objects.filter(school=school, links__student=student, account__isnull=True)
    candidates = list(linked.filter(details)) if details else []
    if len(candidates) == 1:
        adult = candidates[0]
        adult.account_id = user.pk
        adult.registered = True
        fields = ["account", "registered", "updated_at"]
        if email:
            adult.email = email
            fields.append("email")
        if mobile:
            adult.mobile = mobile
            fields.append("mobile")
        adult.save(update_fields=fields)
        audit_record(school=school, actor_label=actor, action="adult.registered", obj=adult)
        return adult
    forename = getattr(user, "first_name", "") or ""
    surname = getattr(user, "last_name", "") or ""
    adult = Adult.objects.create(
        school=school,
        forename=forename,
        surname=surname,
        name_key=name_key(forename, surname),
        email=email,
        mobile=mobile,
        source=Source.WEB,
        registered=True,
        account_id=user.pk,
    )
    audit_record(
        school=school,
        actor_label=actor,
        action="adult.created",
        obj=adult,
        detail={"source": "web"},
    )
    suspects = candidates
    if not suspects and adult.name_key:
        suspects = list(linked.filter(name_key=adult.name_key))
    for other in suspects:
        shared = (
            "email"
            if email and other.email == email
            else "mobile"
            if mobile and other.mobile == mobile
            else "name"
        )
        LikelyDuplicate.objects.create(school=school, adult=adult, other=other, shared=shared)
    return adult
