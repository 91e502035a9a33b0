"""Reads about trusts: their schools, their staff, who may act for them, and the overview of
their schools side by side.

A trust role counts only for an active account whose email is confirmed, exactly as a school
role does (:func:`homelink.staff.selectors.confirmed_memberships`), and only at the schools that
are in the trust now: nothing is copied into the schools' own staff, so taking a school out of a
trust takes it out of the trust staff's reach on their next request.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from homelink.messaging.selectors import DeliverySummary, delivery_summary
from homelink.register.identity import normalise_email
from homelink.register.selectors import Reach, reach
from homelink.schools.models import School
from homelink.staff.models import ROLE_RANK, Role
from homelink.sync.selectors import SyncStatus, sync_status
from homelink.trusts.models import Trust, TrustInvitation, TrustMembership, TrustSchool

#: Trust memberships that grant anything: an active account that proved its email address.
CONFIRMED = Q(user__is_active=True, user__parent__email_verified_at__isnull=False)


def role_at_least(role: str, needed: str) -> bool:
    """Whether ``role`` is ``needed`` or above (an administrator may also send and look)."""
    return ROLE_RANK[Role(role)] >= ROLE_RANK[Role(needed)]


def confirmed_trust_memberships() -> QuerySet[TrustMembership]:
    return TrustMembership.objects.filter(CONFIRMED)


def trust_schools(trust: Trust) -> QuerySet[School]:
    """The schools in the trust now, by name."""
    return School.objects.filter(trust_place__trust=trust).order_by("name", "pk")


def trust_of(school: School) -> Trust | None:
    """The trust the school is in, if any."""
    place = TrustSchool.objects.select_related("trust").filter(school=school).first()
    return place.trust if place is not None else None


def trust_membership(user: Any, trust: Trust) -> TrustMembership | None:
    """The user's role in the trust, or None (also for an account whose email is not
    confirmed, or one switched off)."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return None
    return (
        confirmed_trust_memberships()
        .select_related("trust")
        .filter(user_id=user.pk, trust=trust)
        .first()
    )


def trust_membership_at(user: Any, urn: str) -> TrustMembership | None:
    """The user's role in the trust the school with this URN is in now, or None."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return None
    return (
        confirmed_trust_memberships()
        .select_related("trust")
        .filter(user_id=user.pk, trust__places__school__urn=urn)
        .first()
    )


def user_trust_memberships(user: Any) -> list[TrustMembership]:
    """The user's trusts (confirmed accounts only), by name."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return []
    return list(
        confirmed_trust_memberships()
        .select_related("trust")
        .filter(user_id=user.pk)
        .order_by("trust__name", "pk")
    )


def trust_by_name(name: str) -> Trust | None:
    """A trust by its name, in any case (names are unique whatever their case)."""
    return Trust.objects.filter(name__iexact=name.strip()).first()


def trust_staff(trust: Trust) -> list[TrustMembership]:
    """The trust's staff, administrators first, then by address."""
    staff = TrustMembership.objects.filter(trust=trust).select_related("user")
    return sorted(
        staff,
        key=lambda m: (
            -ROLE_RANK[Role(m.role)],
            (m.user.email or m.user.get_username()).casefold(),
        ),
    )


def open_trust_invitations(trust: Trust) -> list[TrustInvitation]:
    """Invitations neither accepted nor withdrawn (expired ones too: they can be sent again)."""
    return list(
        TrustInvitation.objects.filter(
            trust=trust, accepted_at__isnull=True, revoked_at__isnull=True
        ).order_by("email", "pk")
    )


def open_trust_invitation_for(trust: Trust, email: str) -> TrustInvitation | None:
    clean = normalise_email(email) or ""
    return TrustInvitation.objects.filter(
        trust=trust, email=clean, accepted_at__isnull=True, revoked_at__isnull=True
    ).first()


@dataclass(frozen=True)
class TrustSummary:
    """One line of ``homelink trust list``."""

    trust: Trust
    schools: list[School]
    #: Staff by role (administrator, sender, viewer), and invitations waiting.
    staff: dict[str, int]
    invitations: int


def trust_summaries() -> list[TrustSummary]:
    """Every trust with its schools and staff counts: three queries whatever the number."""
    trusts = list(Trust.objects.order_by("name", "pk"))
    schools: dict[int, list[School]] = {t.pk: [] for t in trusts}
    for place in TrustSchool.objects.select_related("school").order_by("school__name", "pk"):
        schools[place.trust_id].append(place.school)
    staff: dict[int, dict[str, int]] = {t.pk: {r.value: 0 for r in Role} for t in trusts}
    for row in TrustMembership.objects.values("trust_id", "role").annotate(n=Count("pk")):
        staff[row["trust_id"]][row["role"]] = row["n"]
    waiting = dict(
        TrustInvitation.objects.filter(accepted_at__isnull=True, revoked_at__isnull=True)
        .values("trust_id")
        .annotate(n=Count("pk"))
        .values_list("trust_id", "n")
    )
    return [
        TrustSummary(
            trust=t, schools=schools[t.pk], staff=staff[t.pk], invitations=waiting.get(t.pk, 0)
        )
        for t in trusts
    ]


# --- The overview --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SchoolFigures:
    """One school's column of the trust overview: the dashboard's own figures."""

    school: School
    reach: Reach
    sync: SyncStatus
    delivery: DeliverySummary

    @property
    def last_update(self) -> dt.datetime | None:
        """When the register was last brought up to date from the MIS (a sync or an import)."""
        last = self.sync.last_import
        return last.finished_at if last is not None else None


@dataclass(frozen=True)
class Problem:
    """A delivery problem, said once: a failing gateway is every school's; a stalled queue is
    named with the schools whose messages wait."""

    text: str
    #: The schools it was seen at; empty when it is every school's.
    schools: list[School]


@dataclass(frozen=True)
class Overview:
    trust: Trust
    schools: list[SchoolFigures]
    problems: list[Problem]

    def total(self, field: str) -> int:
        """The sum over the schools of one figure, named as in the template ("reach.students",
        "delivery.queued", "school.sms_credits")."""
        total = 0
        for figures in self.schools:
            value: Any = figures
            for part in field.split("."):
                value = getattr(value, part)
            total += int(value)
        return total

    @property
    def stale(self) -> int:
        return sum(1 for f in self.schools if f.sync.stale)

    @property
    def totals(self) -> dict[str, int]:
        return {
            name: self.total(field)
            for name, field in (
                ("students", "reach.students"),
                ("prime_email", "reach.prime_email"),
                ("prime_sms", "reach.prime_sms"),
                ("registered", "reach.adults_registered"),
                ("queued", "delivery.queued"),
                ("scheduled", "delivery.scheduled"),
                ("failed_24h", "delivery.failed_24h"),
                ("sms_credits", "school.sms_credits"),
            )
        }


def trust_overview(trust: Trust, *, now: dt.datetime | None = None) -> Overview:
    """Every school of the trust with the figures its own dashboard shows, read with the
    dashboard's own selectors: a fixed number of queries per school (aggregates, never a loop
    over students), so a trust of fifty schools is a few hundred small queries."""
    now = now or timezone.now()
    figures: list[SchoolFigures] = []
    seen: dict[str, list[School]] = {}
    for school in trust_schools(trust):
        delivery = delivery_summary(school, now)
        for problem in delivery.problems:
            seen.setdefault(problem, []).append(school)
        figures.append(
            SchoolFigures(
                school=school,
                reach=reach(school),
                sync=sync_status(school, now=now),
                delivery=delivery,
            )
        )
    problems = [
        Problem(text, [] if len(where) == len(figures) else where) for text, where in seen.items()
    ]
    return Overview(trust=trust, schools=figures, problems=problems)
