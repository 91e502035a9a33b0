"""Reads of a school's audit trail: filtered, newest first, a bounded page at a time (keyset, so
page 200 costs what page 1 does), and every matching row for an export."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from django.db.models import Q, QuerySet
from django.utils import timezone

from homelink.audit.actions import action_words
from homelink.audit.models import AuditEvent
from homelink.register.models import Adult, Link, Member, PendingLink
from homelink.schools.models import School

PAGE_SIZE = 50

_USER_LABEL = re.compile(r"^user:(\d+)$")

#: Labels the application writes for actors that are not a person signed in.
SYSTEM_ACTORS = {
    "cli": "the command line",
    "import": "an MIS import",
    "admin": "an operator (admin)",
    "migration": "an upgrade of homelink",
}


@dataclass(frozen=True)
class AuditFilter:
    """What the trail is narrowed to. ``member`` and ``adult`` are the school's own (the
    console's form resolves them through the school): an event is about a member when it names
    the member or one of its links, waiting links, letters or subject access requests; likewise
    for an adult (:func:`about_member`, :func:`about_adult`)."""

    actor: str = ""  # an actor label as stored: "user:12", "cli"
    member: Member | None = None
    adult: Adult | None = None
    action: str = ""
    since: dt.date | None = None  # inclusive, the school's day
    until: dt.date | None = None  # inclusive

    def describe(self) -> dict[str, object]:
        """The filter as ids and codes, for the export's own audit event (never a name)."""
        return {
            "actor": self.actor or None,
            "member": self.member.pk if self.member else None,
            "adult": self.adult.pk if self.adult else None,
            "action": self.action or None,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
        }


def _ids(values: Iterable[int]) -> list[str]:
    return [str(v) for v in values]


def _about(object_type: str, pk: int, related: dict[str, list[str]]) -> Q:
    # A removed link's event names the link (gone) and, in its detail, the student and adult.
    q = Q(object_type=object_type, object_id=str(pk)) | Q(
        **{f"detail__{'student' if object_type == 'member' else object_type}_id": pk}
    )
    for kind, ids in related.items():
        if ids:
            q |= Q(object_type=kind, object_id__in=ids)
    return q


def about_member(member: Member) -> Q:
    """Events about a member: naming it, one of its links, waiting links, letters or subject
    access requests, or a removed link's detail. The trail's filter and the subject access
    export both read this."""
    from homelink.privacy.models import SubjectAccessRequest
    from homelink.registration.models import SecurityCode

    return _about(
        "member",
        member.pk,
        {
            "link": _ids(Link.objects.filter(student=member).values_list("pk", flat=True)),
            "pendinglink": _ids(
                PendingLink.objects.filter(student=member).values_list("pk", flat=True)
            ),
            "securitycode": _ids(
                SecurityCode.objects.filter(member=member).values_list("pk", flat=True)
            ),
            "subjectaccessrequest": _ids(
                SubjectAccessRequest.objects.filter(member=member).values_list("pk", flat=True)
            ),
        },
    )


def about_adult(adult: Adult) -> Q:
    """Events about an adult: as :func:`about_member`, for an adult's records."""
    from homelink.privacy.models import SubjectAccessRequest

    return _about(
        "adult",
        adult.pk,
        {
            "link": _ids(Link.objects.filter(adult=adult).values_list("pk", flat=True)),
            "pendinglink": _ids(
                PendingLink.objects.filter(adult=adult).values_list("pk", flat=True)
            ),
            "subjectaccessrequest": _ids(
                SubjectAccessRequest.objects.filter(adult=adult).values_list("pk", flat=True)
            ),
        },
    )


def _start_of(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


def audit_events(school: School, chosen: AuditFilter) -> QuerySet[AuditEvent]:
    """The school's events that match, newest first (ties broken by id)."""
    events = AuditEvent.objects.filter(school=school)
    if chosen.actor:
        events = events.filter(actor_label=chosen.actor)
    if chosen.action:
        events = events.filter(action=chosen.action)
    if chosen.member is not None:
        events = events.filter(about_member(chosen.member))
    if chosen.adult is not None:
        events = events.filter(about_adult(chosen.adult))
    if chosen.since is not None:
        events = events.filter(at__gte=_start_of(chosen.since))
    if chosen.until is not None:
        events = events.filter(at__lt=_start_of(chosen.until + dt.timedelta(days=1)))
    return events.order_by("-at", "-id")


@dataclass(frozen=True)
class AuditPage:
    events: list[AuditEvent]
    #: The id to pass as ``before`` for the next (older) page; None on the last page.
    older: int | None
    first: bool = True
    names: dict[str, str] = field(default_factory=dict)


def audit_page(
    school: School, chosen: AuditFilter, *, before: int | None = None, size: int = PAGE_SIZE
) -> AuditPage:
    """One page of the trail: the ``size`` newest events older than event ``before`` (an event
    of this school; another school's id, or none, starts from the newest)."""
    events = audit_events(school, chosen)
    first = True
    if before is not None:
        anchor = AuditEvent.objects.filter(school=school, pk=before).values_list("at", flat=True)
        at = anchor.first()
        if at is not None:
            events = events.filter(Q(at__lt=at) | Q(at=at, id__lt=before))
            first = False
    rows = list(events[: size + 1])
    older = rows[size - 1].pk if len(rows) > size else None
    rows = rows[:size]
    return AuditPage(
        events=rows,
        older=older,
        first=first,
        names=actor_names(school, {e.actor_label for e in rows}),
    )


def staff_labels(school: School) -> dict[str, str]:
    """The school's staff as actor labels ("user:12") and their email."""
    from homelink.staff.models import StaffMembership

    return {
        f"user:{user_id}": email
        for user_id, email in StaffMembership.objects.filter(school=school)
        .order_by("user__email")
        .values_list("user_id", "user__email")
    }


def actor_name(label: str, staff: dict[str, str]) -> str:
    """Who an actor label is, in words: a member of staff here by their email; another account
    (a parent, or someone no longer on the staff) by its number only; a system actor by name."""
    if label in staff:
        return staff[label]
    if m := _USER_LABEL.match(label):
        return f"account #{m.group(1)}"
    return SYSTEM_ACTORS.get(label, label)


def actor_names(school: School, labels: set[str]) -> dict[str, str]:
    staff = staff_labels(school) if any(_USER_LABEL.match(label) for label in labels) else {}
    return {label: actor_name(label, staff) for label in labels}


def actor_choices(school: School) -> list[tuple[str, str]]:
    """Whom the trail can be narrowed to: the school's staff, then every other actor that has
    done something here (the command line, imports, web accounts)."""
    staff = staff_labels(school)
    others = (
        AuditEvent.objects.filter(school=school)
        .exclude(actor_label__in=list(staff))
        .order_by("actor_label")
        .values_list("actor_label", flat=True)
        .distinct()
    )
    return list(staff.items()) + [(label, actor_name(label, staff)) for label in others]


def action_choices(school: School) -> list[tuple[str, str]]:
    """The actions found in the school's trail, in words, alphabetically by the words."""
    codes = (
        AuditEvent.objects.filter(school=school)
        .order_by("action")
        .values_list("action", flat=True)
        .distinct()
    )
    return sorted(((code, action_words(code)) for code in codes), key=lambda c: c[1].lower())


CSV_HEADER = ["When", "Who", "Action", "Action code", "Record", "Record id", "Details"]


def audit_csv_rows(events: QuerySet[AuditEvent], school: School) -> Iterator[list[object]]:
    """Each event as a CSV row (CSV_HEADER), read in chunks; ``detail`` as stored (ids and
    counts, never personal values)."""
    staff = staff_labels(school)
    for event in events.iterator(chunk_size=1000):
        yield [
            timezone.localtime(event.at).isoformat(timespec="seconds"),
            actor_name(event.actor_label, staff),
            action_words(event.action),
            event.action,
            event.object_type,
            event.object_id,
            json.dumps(event.detail, sort_keys=True) if event.detail else "",
        ]
