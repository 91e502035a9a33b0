"""Writes about trusts: making one, its schools, and its staff's roles.

Each function is one transaction that locks what it changes and refuses bad input with a
``ValidationError`` in plain words, having changed nothing. The audit trail is a school's, so a
trust's events are recorded in its schools' trails: a school joining or leaving in that
school's; a change to the trust's staff (who can now see the school's data) in every school of
the trust. Events name ids and roles, never an address. A role in a trust is given only by an
accepted invitation (:mod:`homelink.trusts.invitations`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction

from homelink.audit.services import audit_event, audit_record_all
from homelink.schools.models import School
from homelink.staff.actor import Actor, actor_parts
from homelink.staff.models import Role
from homelink.staff.services import role_checked
from homelink.trusts.models import Trust, TrustMembership, TrustSchool

logger = logging.getLogger(__name__)

NAME_MAX = Trust._meta.get_field("name").max_length or 200


def audit_trust(
    schools: Iterable[School],
    *,
    actor: Actor,
    action: str,
    obj: models.Model | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """One event in each school's trail (call inside the action's transaction)."""
    label, actor_id = actor_parts(actor)
    audit_record_all(
        audit_event(
            school=school,
            actor_label=label,
            actor_id=actor_id,
            action=action,
            obj=obj,
            detail=detail,
        )
        for school in schools
    )


def _schools_of(trust: Trust) -> list[School]:
    return list(School.objects.filter(trust_place__trust=trust).order_by("pk"))


def _name_checked(name: str) -> str:
    clean = " ".join(name.split())
    if not clean:
        raise ValidationError("give the trust's name")
    if len(clean) > NAME_MAX:
        raise ValidationError(f"a trust's name is at most {NAME_MAX} characters")
    return clean


def _place_school(trust: Trust, school: School, actor: Actor) -> TrustSchool:
    """Put the (locked) school in the trust, refusing one in another trust."""
    current = TrustSchool.objects.select_related("trust").filter(school=school).first()
    if current is not None:
        if current.trust_id == trust.pk:
            raise ValidationError(f"{school} is already in {trust.name}")
        raise ValidationError(
            f"{school} is already in the trust {current.trust.name}; a school is in one trust at "
            "most: take it out of that trust first (homelink trust remove-school)"
        )
    place = TrustSchool.objects.create(trust=trust, school=school)
    audit_trust(
        [school],
        actor=actor,
        action="trust.school_added",
        obj=place,
        detail={"trust_id": trust.pk, "trust": trust.name},
    )
    return place


def trust_add(*, name: str, schools: Sequence[School] = (), actor: Actor) -> Trust:
    """A new trust, with its first schools (each must be in no trust yet: if one is, nothing
    is made)."""
    clean = _name_checked(name)
    if len({s.pk for s in schools}) != len(schools):
        raise ValidationError("a school is named twice")
    try:
        with transaction.atomic():
            if Trust.objects.filter(name__iexact=clean).exists():
                raise ValidationError(f"there is already a trust called {clean}")
            trust = Trust.objects.create(name=clean)
            for school in School.objects.select_for_update().filter(pk__in=[s.pk for s in schools]):
                _place_school(trust, school, actor)
    except IntegrityError:
        # Made at the same moment by someone else (the name, or one of the schools).
        raise ValidationError(
            f"a trust called {clean}, or one of these schools' places in a trust, was made at "
            "the same moment: nothing was changed; look again with homelink trust list"
        ) from None
    logger.info("trust %s made with %s school(s)", trust.pk, len(schools))
    return trust


def trust_add_school(*, trust: Trust, school: School, actor: Actor) -> TrustSchool:
    """Put a school in the trust: the trust's staff can see and act for it from their next
    request, in their trust role."""
    try:
        with transaction.atomic():
            locked = School.objects.select_for_update().get(pk=school.pk)
            return _place_school(trust, locked, actor)
    except IntegrityError:
        raise ValidationError(
            f"{school} was put in a trust at the same moment: nothing was changed"
        ) from None


def trust_remove_school(*, trust: Trust, school: School, actor: Actor) -> None:
    """Take a school out of the trust: the trust's staff lose it at their next request (their
    roles were never copied into the school's own staff, which is unchanged)."""
    with transaction.atomic():
        School.objects.select_for_update().filter(pk=school.pk).exists()
        place = TrustSchool.objects.filter(trust=trust, school=school).first()
        if place is None:
            raise ValidationError(f"{school} is not in {trust.name}")
        audit_trust(
            [school],
            actor=actor,
            action="trust.school_removed",
            obj=place,
            detail={"trust_id": trust.pk, "trust": trust.name},
        )
        place.delete()


# --- The trust's staff ---------------------------------------------------------------------------


def _keep_an_administrator(trust_id: int, leaving: TrustMembership) -> None:
    """A trust that has administrators keeps one: otherwise nobody but the operator could
    manage its staff. Locks the trust's administrators, so two removals cannot both pass."""
    admins = list(
        TrustMembership.objects.select_for_update()
        .filter(trust_id=trust_id, role=Role.ADMINISTRATOR)
        .values_list("pk", flat=True)
    )
    if admins == [leaving.pk]:
        raise ValidationError(
            "this is the trust's only administrator: make someone else a trust administrator first"
        )


def trust_member_set_role(
    *, membership: TrustMembership, role: str, actor: Actor
) -> TrustMembership:
    checked = role_checked(role)
    with transaction.atomic():
        locked = (
            TrustMembership.objects.select_for_update()
            .select_related("trust")
            .get(pk=membership.pk)
        )
        if locked.role == checked:
            return locked
        if locked.role == Role.ADMINISTRATOR:
            _keep_an_administrator(locked.trust_id, locked)
        before = locked.role
        locked.role = checked
        locked.save(update_fields=["role"])
        audit_trust(
            _schools_of(locked.trust),
            actor=actor,
            action="trust.staff_role_changed",
            obj=locked,
            detail={
                "trust_id": locked.trust_id,
                "from": before,
                "to": checked.value,
                "user_id": locked.user_id,
            },
        )
    membership.role = checked
    return locked


def trust_member_remove(*, membership: TrustMembership, actor: Actor) -> None:
    """End a person's role in the trust (their account, and any school's own roles, stay)."""
    with transaction.atomic():
        locked = (
            TrustMembership.objects.select_for_update()
            .select_related("trust")
            .filter(pk=membership.pk)
            .first()
        )
        if locked is None:
            return
        if locked.role == Role.ADMINISTRATOR:
            _keep_an_administrator(locked.trust_id, locked)
        audit_trust(
            _schools_of(locked.trust),
            actor=actor,
            action="trust.staff_removed",
            obj=locked,
            detail={"trust_id": locked.trust_id, "role": locked.role, "user_id": locked.user_id},
        )
        locked.delete()
