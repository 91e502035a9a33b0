"""Reads for the parent's own pages: what the account is linked to and how it is reached."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.contrib.auth.models import User
from django.db.models import Exists, OuterRef

from homelink.mis.phones import for_display
from homelink.register.models import Adult, Link, PendingLink, Source
from homelink.register.years import year_label
from homelink.schools.models import School, SchoolLogo


@dataclass(frozen=True, slots=True)
class Child:
    name: str
    school: str
    year: str
    reg_group: str
    #: "linked", or "waiting" while the school checks the link.
    status: str
    #: Set when the parent may remove the link themselves (their own ``web`` links).
    link_id: int | None = None
    school_id: int | None = None

    @property
    def year_shown(self) -> str:
        """ "Year 7", "Reception": as a parent reads it."""
        return year_label(self.year)


@dataclass(frozen=True, slots=True)
class SchoolCard:
    """A school the account is linked to, as its page shows it: the school's own name, office
    phone and logo, and the account's children there."""

    id: int
    urn: str
    name: str
    #: E.164, for a tel: link; ``phone_shown`` is as the school's region writes it.
    office_phone: str
    phone_shown: str
    has_logo: bool
    children: list[Child] = field(default_factory=list)


def account_children(*, user: User) -> list[Child]:
    """The students linked to the account's adults at every school, then those waiting."""
    links = (
        Link.objects.filter(adult__account=user)
        .select_related("student", "school")
        .order_by("school__name", "student__surname", "student__forename", "pk")
    )
    children = [
        Child(
            name=f"{link.student.forename} {link.student.surname}",
            school=link.school.name,
            year=link.student.year,
            reg_group=link.student.reg_group,
            status="linked",
            link_id=link.pk if link.source == Source.WEB else None,
            school_id=link.school_id,
        )
        for link in links
    ]
    waiting = (
        PendingLink.objects.filter(adult__account=user, status=PendingLink.Status.WAITING)
        .select_related("student", "school")
        .order_by("created_at", "pk")
    )
    children += [
        Child(
            name=f"{pending.student.forename} {pending.student.surname}",
            school=pending.school.name,
            year=pending.student.year,
            reg_group=pending.student.reg_group,
            status="waiting",
            school_id=pending.school_id,
        )
        for pending in waiting
    ]
    return children


def account_schools(*, children: list[Child]) -> list[SchoolCard]:
    """The schools of ``children`` (from :func:`account_children`), by name, each with its
    children: one query whatever their number."""
    schools = (
        School.objects.filter(pk__in={c.school_id for c in children if c.school_id})
        .annotate(has_logo=Exists(SchoolLogo.objects.filter(school=OuterRef("pk"))))
        .order_by("name", "pk")
    )
    cards = [
        SchoolCard(
            id=school.pk,
            urn=school.urn,
            name=school.name,
            office_phone=school.office_phone,
            phone_shown=for_display(school.office_phone, school.phone_region),
            has_logo=school.has_logo,
        )
        for school in schools
    ]
    by_id = {card.id: card for card in cards}
    for child in children:
        if child.school_id in by_id:
            by_id[child.school_id].children.append(child)
    return cards


def account_link(*, user: User, link_id: int) -> Link | None:
    """One of the account's own ``web`` links, the only ones the parent may remove."""
    return (
        Link.objects.filter(pk=link_id, adult__account=user, source=Source.WEB)
        .select_related("student", "school")
        .first()
    )


def account_channels(*, user: User) -> str:
    """ "both", "email" or "sms", as the account's adults are set (the first, should they
    differ: the preferences page sets them all alike)."""
    adult = Adult.objects.filter(account=user).order_by("pk").first()
    if adult is None or adult.email_off == adult.sms_off:
        return "both"
    return "sms" if adult.email_off else "email"


def account_opted_out(*, user: User) -> bool:
    """Opted out when every adult of the account is (there is at least one)."""
    adults = Adult.objects.filter(account=user)
    return adults.exists() and not adults.filter(opted_out=False).exists()


def account_has_adults(*, user: User) -> bool:
    return Adult.objects.filter(account=user).exists()
