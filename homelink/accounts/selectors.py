"""Reads for the parent's own pages: what the account is linked to and how it is reached."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.contrib.auth.models import User

from homelink.mis.phones import for_display
from homelink.register.models import Adult, Link, PendingLink, Source
from homelink.register.years import year_label


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


#: What the account page reads of a link or a waiting link, its student and its school: values,
#: not model instances, since the page only shows them.
_CHILD_FIELDS = (
    "pk",
    "student__forename",
    "student__surname",
    "student__year",
    "student__reg_group",
    "school_id",
    "school__urn",
    "school__name",
    "school__office_phone",
    "school__phone_region",
    # The logo's key (the school's) or None: a join that reads no image.
    "school__logo",
)


def account_overview(*, user: User) -> tuple[list[Child], list[SchoolCard]]:
    """The students linked to the account's adults at every school, then those waiting; and
    their schools by name, each with its children there (its name, office phone and logo).
    Two queries, whatever their number: the schools come with the children's rows."""
    cards: dict[int, SchoolCard] = {}
    children: list[Child] = []
    links = (
        Link.objects.filter(adult__account=user)
        .order_by("school__name", "student__surname", "student__forename", "pk")
        .values_list("source", *_CHILD_FIELDS)
    )
    for source, pk, forename, surname, year, reg_group, *school in links:
        children.append(
            Child(
                name=f"{forename} {surname}",
                school=school[2],
                year=year,
                reg_group=reg_group,
                status="linked",
                link_id=pk if source == Source.WEB else None,
                school_id=school[0],
            )
        )
        _card(cards, *school)
    waiting = (
        PendingLink.objects.filter(adult__account=user, status=PendingLink.Status.WAITING)
        .order_by("created_at", "pk")
        .values_list(*_CHILD_FIELDS)
    )
    for _, forename, surname, year, reg_group, *school in waiting:
        children.append(
            Child(
                name=f"{forename} {surname}",
                school=school[2],
                year=year,
                reg_group=reg_group,
                status="waiting",
                school_id=school[0],
            )
        )
        _card(cards, *school)
    # By name as people read it (the same on SQLite and PostgreSQL, whose collations differ).
    schools = sorted(cards.values(), key=lambda card: (card.name.casefold(), card.name, card.id))
    for child in children:
        cards[child.school_id or 0].children.append(child)
    return children, schools


def _card(
    cards: dict[int, SchoolCard],
    school_id: int,
    urn: str,
    name: str,
    office_phone: str,
    region: str,
    logo: int | None,
) -> None:
    if school_id not in cards:
        cards[school_id] = SchoolCard(
            id=school_id,
            urn=urn,
            name=name,
            office_phone=office_phone,
            phone_shown=for_display(office_phone, region),
            has_logo=logo is not None,
        )


def account_link(*, user: User, link_id: int) -> Link | None:
    """One of the account's own ``web`` links, the only ones the parent may remove."""
    return (
        Link.objects.filter(pk=link_id, adult__account=user, source=Source.WEB)
        .select_related("student", "school")
        .first()
    )


@dataclass(frozen=True, slots=True)
class Reach:
    """How the account's adults (one per school) are reached, from one query."""

    #: Whether the account is any school's adult yet.
    has_adults: bool
    #: "both", "email" or "sms", as the adults are set (the first, should they differ: the
    #: preferences page sets them all alike).
    channels: str
    #: Every adult of the account is opted out (there is at least one).
    opted_out: bool


def account_reach(*, user: User) -> Reach:
    rows = list(
        Adult.objects.filter(account=user)
        .order_by("pk")
        .values_list("email_off", "sms_off", "opted_out")
    )
    if not rows:
        return Reach(has_adults=False, channels="both", opted_out=False)
    email_off, sms_off, _ = rows[0]
    channels = "both" if email_off == sms_off else "sms" if email_off else "email"
    return Reach(has_adults=True, channels=channels, opted_out=all(opted for _, _, opted in rows))
