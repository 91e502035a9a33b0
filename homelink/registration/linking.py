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
from django.db.models import Count, Exists, Max, OuterRef, Q
from django.utils import timezone

from homelink.accounts.models import Parent
from homelink.audit.models import AuditEvent
from homelink.audit.services import audit_event, audit_record, audit_record_all
from homelink.register.identity import clean_text, name_key
from homelink.register.models import Adult, LikelyDuplicate, Link, Member, PendingLink, Source
from homelink.registration.codes import code_hashes, normalise_code
from homelink.registration.models import SecurityCode

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
    parent: Parent | None = None,
) -> LinkResult:
    """Link the account to the student whose letter has ``raw_code``; ``relationship`` is what
    the parent said they are to the child (see :func:`relationship_clean`), kept on the link
    (or on the waiting link, for staff). A staff member's own letter ignores it. ``parent``:
    the account's :class:`Parent`, when the caller has it already."""
    now = now or timezone.now()
    relationship = clean_text(relationship)[:RELATIONSHIP_MAX]
    code = normalise_code(raw_code)
    if code is None:
        raise CodeNotAccepted()
    with transaction.atomic():
        # One statement finds the live code as typed and locks it with its member: a code
        # revoked since the form was opened fails now, and concurrent links to one student queue
        # behind each other (on PostgreSQL the rows' locks; on SQLite the IMMEDIATE transaction).
        found = (
            SecurityCode.objects.live(now)
            .filter(code_hash__in=code_hashes(code))
            .select_related("member__school")
            .select_for_update(of=("self", "member"))
            .first()
        )
        if found is None:
            raise CodeNotAccepted()
        member = found.member
        if member.status != Member.Status.CURRENT:
            raise CodeNotAccepted()  # a letter for someone who has left links no one
        if parent is None:
            parent, _ = Parent.objects.select_related("user").get_or_create(user=user)
        elif parent.user_id != user.pk:
            raise ValueError("the parent is another account's")
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
    # Every event of this link, recorded together (one statement) before the transaction ends.
    events: list[AuditEvent] = []
    adult, new = _adult_for(student, user, parent, actor, events)
    # A new adult has no link yet; an existing one's link to this student is read with the rest.
    facts = _student_facts(student, None if new else adult)
    link = facts.own
    if link is not None and link.source == Source.WEB:
        audit_record_all(events)
        return LinkResult("already", student, adult, link.prime)
    if facts.through_letters >= MAX_WEB_ADULTS:
        raise LinkRefused(
            f"{MAX_WEB_ADULTS} adults have already linked themselves to {student.forename} with a "
            "letter, which is as many as a letter allows. Please contact the school office."
        )
    if adult.held or facts.held:
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
        events.append(
            audit_event(
                school=school, actor_label=actor, action="link.waiting_for_staff", obj=pending
            )
        )
        audit_record_all(events)
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
        events.append(
            audit_event(school=school, actor_label=actor, action="link.claimed", obj=link)
        )
        audit_record_all(events)
        return LinkResult("linked", student, adult, link.prime)
    prime = not facts.prime
    link = Link.objects.create(
        school=school,
        student=student,
        adult=adult,
        source=Source.WEB,
        prime=prime,
        prime_set_by=Source.WEB if prime else "",
        relationship=relationship,
    )
    events.append(
        audit_event(
            school=school,
            actor_label=actor,
            action="link.added",
            obj=link,
            detail={"source": "web", "prime": prime},
        )
    )
    audit_record_all(events)
    return LinkResult("linked", student, adult, prime)


@dataclass(frozen=True, slots=True)
class _Facts:
    """What deciding a link needs to know about the student (read under the student's lock)."""

    #: The adult's own link to the student, if any.
    own: Link | None
    #: Other adults linked, or waiting for staff, through letters.
    through_letters: int
    #: Someone linked to the student is held for review.
    held: bool
    #: The student has a prime contact.
    prime: bool


def _student_facts(student: Member, adult: Adult | None) -> _Facts:
    """Two queries: the student's links (counted, with ``adult``'s own), and the waiting links."""
    web = Q(source=Source.WEB)
    waiting = PendingLink.objects.filter(student=student, status=PendingLink.Status.WAITING)
    mine: dict[str, Max] = {}
    if adult is not None:
        web &= ~Q(adult=adult)
        waiting = waiting.exclude(adult=adult)
        mine["own"] = Max("pk", filter=Q(adult=adult))
    counts = Link.objects.filter(student=student).aggregate(
        web=Count("pk", filter=web),
        held=Count("pk", filter=Q(adult__held=True)),
        prime=Count("pk", filter=Q(prime=True)),
        **mine,
    )
    own = Link.objects.get(pk=counts["own"]) if counts.get("own") is not None else None
    return _Facts(
        own=own,
        through_letters=counts["web"] + waiting.count(),
        held=bool(counts["held"]),
        prime=bool(counts["prime"]),
    )


def _adult_for(
    student: Member, user: AbstractBaseUser, parent: Parent, actor: str, events: list[AuditEvent]
) -> tuple[Adult, bool]:
    """The register's adult for this account at this school, and whether it is new. The
    account's adult at the school if it has one; else an adult already linked to the student
    becomes theirs when exactly one has their verified email or mobile (couples often share an
    email); otherwise a new adult, and a likely duplicate listed for staff. One query finds
    all of them."""
    school = student.school
    email, mobile = parent.verified_email, parent.verified_mobile
    forename = getattr(user, "first_name", "") or ""
    surname = getattr(user, "last_name", "") or ""
    key = name_key(forename, surname)
    details = Q()
    if email:
        details |= Q(email=email)
    if mobile:
        details |= Q(mobile=mobile)
    alike = details | Q(name_key=key) if key else details
    wanted = Q(account_id=user.pk)
    if alike:
        linked = Exists(Link.objects.filter(adult=OuterRef("pk"), student=student))
        wanted |= Q(account__isnull=True) & Q(linked) & alike
    found = list(Adult.objects.filter(school=school).filter(wanted).order_by("pk"))
    mine = next((a for a in found if a.account_id == user.pk), None)
    if mine is not None:
        return mine, False
    candidates = [
        a for a in found if (email and a.email == email) or (mobile and a.mobile == mobile)
    ]
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
        events.append(
            audit_event(school=school, actor_label=actor, action="adult.registered", obj=adult)
        )
        return adult, False
    adult = Adult.objects.create(
        school=school,
        forename=forename,
        surname=surname,
        name_key=key,
        email=email,
        mobile=mobile,
        source=Source.WEB,
        registered=True,
        account_id=user.pk,
    )
    events.append(
        audit_event(
            school=school,
            actor_label=actor,
            action="adult.created",
            obj=adult,
            detail={"source": "web"},
        )
    )
    suspects = candidates or [a for a in found if key and a.name_key == key]
    LikelyDuplicate.objects.bulk_create(
        LikelyDuplicate(
            school=school,
            adult=adult,
            other=other,
            shared="email"
            if email and other.email == email
            else "mobile"
            if mobile and other.mobile == mobile
            else "name",
        )
        for other in suspects
    )
    return adult, True
