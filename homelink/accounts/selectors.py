"""Reads for the parent's own pages: what the account is linked to and how it is reached."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import User

from homelink.register.models import Adult, Link, PendingLink, Source


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
        )
        for pending in waiting
    ]
    return children


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
