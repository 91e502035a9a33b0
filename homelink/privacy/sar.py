"""Subject access (UK GDPR Article 15): everything a school holds about one adult or member, as
``subject.json`` and a readable PDF in one zip, and the log of requests with their due dates.

What is gathered is the person's own: their register row, their links (for an adult, naming
the student is their own data: it is their relationship), account, preferences, opt-outs,
notices they were sent, letters (dates, never codes), the messages sent to them, their replies,
and the audit trail's events about them, whose actors are named only by role. Other people's
personal data is left out: a co-parent, a student's other contacts, staff by name. The school
still reads the export before sending it: an exemption (a court order, safeguarding) is its
judgement, not ours.
"""

from __future__ import annotations

import calendar
import datetime as dt
import io
import json
import re
import zipfile
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Q, QuerySet, TextField
from django.db.models.functions import Cast
from django.utils import timezone

from homelink.accounts.models import Parent
from homelink.audit.models import AuditEvent
from homelink.audit.selectors import about_adult, about_member
from homelink.audit.services import audit_record
from homelink.messaging import merge
from homelink.messaging.models import Delivery, InboundSms, SmsBlock
from homelink.privacy.models import NoticeReceipt, SubjectAccessRequest
from homelink.privacy.sar_pdf import render_pdf
from homelink.register.models import Adult, Link, Member, PendingLink
from homelink.registration.models import SecurityCode
from homelink.schools.models import School
from homelink.staff.actor import Actor, actor_parts
from homelink.staff.models import StaffMembership

FORMAT = "homelink subject access export"
FORMAT_VERSION = 1

#: What the export says about what it leaves out, in subject.json and on the PDF.
LEFT_OUT = (
    "Other people's personal data is left out: other parents and carers of the same children, "
    "the children's other contacts, and the names of school staff (shown by their role)."
)

Subject = Adult | Member


# --- due dates -----------------------------------------------------------------------------------


def due_date(received: dt.date) -> dt.date:
    """One calendar month after ``received`` (the ICO's reading of Article 12(3)): the same day
    of the next month, or that month's last day when it has no such day (31 January → 28 or
    29 February)."""
    year, month = (
        (received.year + 1, 1) if received.month == 12 else (received.year, received.month + 1)
    )
    last = calendar.monthrange(year, month)[1]
    return dt.date(year, month, min(received.day, last))


# --- the log of requests -------------------------------------------------------------------------


def _subject_of(request: SubjectAccessRequest) -> Subject | None:
    return request.adult if request.adult_id is not None else request.member


def sar_log(
    *,
    school: School,
    actor: Actor,
    adult: Adult | None = None,
    member: Member | None = None,
    received_on: dt.date | None = None,
) -> SubjectAccessRequest:
    """Log a subject access request for one adult or member of the school, received today
    unless staff say when it came. Refuses a date in the future, or someone of another school."""
    if (adult is None) == (member is None):
        raise ValidationError("A request is about one adult or one member.")
    subject: Subject = adult if adult is not None else member  # type: ignore[assignment]
    if subject.school_id != school.pk:
        raise ValidationError("That person is not in this school's register.")
    today = timezone.localdate()
    received = received_on or today
    if received > today:
        raise ValidationError("The date the request was received cannot be in the future.")
    label, user_id = actor_parts(actor)
    with transaction.atomic():
        request = SubjectAccessRequest.objects.create(
            school=school,
            adult=adult,
            member=member,
            received_on=received,
            due_on=due_date(received),
            requested_by_id=user_id,
        )
        audit_record(
            school=school,
            actor_label=label,
            actor_id=user_id,
            action="privacy.sar_logged",
            obj=subject,
            detail={"request_id": request.pk, "due_on": request.due_on.isoformat()},
        )
    return request


def sar_complete(*, request: SubjectAccessRequest, actor: Actor) -> SubjectAccessRequest:
    """Mark a request answered: it leaves the list of open requests."""
    label, user_id = actor_parts(actor)
    with transaction.atomic():
        locked = SubjectAccessRequest.objects.select_for_update().get(pk=request.pk)
        if locked.completed_at is not None:
            raise ValidationError("That request is already marked complete.")
        locked.completed_at = timezone.now()
        locked.completed_by_id = user_id
        locked.save(update_fields=["completed_at", "completed_by"])
        subject = _subject_of(locked)
        audit_record(
            school=locked.school,
            actor_label=label,
            actor_id=user_id,
            action="privacy.sar_completed",
            obj=subject if subject is not None else locked,
            detail={"request_id": locked.pk},
        )
    return locked


def sar_request(school: School, pk: int) -> SubjectAccessRequest | None:
    """One of the school's requests (None for another school's id: the caller answers 404)."""
    return (
        SubjectAccessRequest.objects.select_related("adult", "member")
        .filter(school=school, pk=pk)
        .first()
    )


def open_requests(school: School) -> QuerySet[SubjectAccessRequest]:
    """The school's requests not yet marked complete, soonest due first."""
    return (
        SubjectAccessRequest.objects.filter(school=school, completed_at__isnull=True)
        .select_related("adult", "member")
        .order_by("due_on", "pk")
    )


def recently_completed(school: School, limit: int = 20) -> list[SubjectAccessRequest]:
    return list(
        SubjectAccessRequest.objects.filter(school=school, completed_at__isnull=False)
        .select_related("adult", "member")
        .order_by("-completed_at", "-pk")[:limit]
    )


# --- the export ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SarExport:
    request: SubjectAccessRequest
    filename: str
    content: bytes


def sar_export(*, request: SubjectAccessRequest, actor: Actor, via: str) -> SarExport:
    """The zip for a logged request, recorded in the audit trail as downloaded (``via`` says
    where: "console" or "cli"). Raises ValidationError when the person is no longer in the
    register (erased since the request was logged)."""
    subject = _subject_of(request)
    if subject is None:
        raise ValidationError("The person this request is about is no longer in the register.")
    label, user_id = actor_parts(actor)
    # The zip is made inside the transaction that records the download: the export lists its
    # own download among the events about them, and a zip that could not be made (the PDF
    # failing) rolls the event back, so the trail never records a download that did not
    # happen.
    with transaction.atomic():
        audit_record(
            school=request.school,
            actor_label=label,
            actor_id=user_id,
            action="privacy.sar_downloaded",
            obj=subject,
            detail={"request_id": request.pk, "via": via},
        )
        data = subject_data(school=request.school, subject=subject, request=request)
        content = sar_zip(data)
    kind = "adult" if isinstance(subject, Adult) else "member"
    day = timezone.localdate().isoformat()
    # No name in the file's name: file names end up in logs and download histories.
    return SarExport(request, f"subject-access-{kind}-{subject.pk}-{day}.zip", content)


def sar_zip(data: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            "subject.json", json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False)
        )
        archive.writestr("subject.pdf", render_pdf(data))
    return buffer.getvalue()


# --- what is held about them ---------------------------------------------------------------------


def _iso(value: dt.datetime | dt.date | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return timezone.localtime(value).isoformat(timespec="seconds")
    return value.isoformat()


def _name(forename: str, surname: str) -> str:
    return f"{forename} {surname}".strip()


def subject_data(
    *, school: School, subject: Subject, request: SubjectAccessRequest | None = None
) -> dict[str, Any]:
    """Everything held about one adult or member of ``school``, as plain JSON-ready data."""
    if subject.school_id != school.pk:
        raise ValidationError("That person is not in this school's register.")
    if isinstance(subject, Adult):
        body = _adult_data(school, subject)
    else:
        body = _member_data(school, subject)
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "school": {"name": school.name, "urn": school.urn},
        "generated_at": _iso(timezone.now()),
        "request": (
            {"received_on": _iso(request.received_on), "due_on": _iso(request.due_on)}
            if request is not None
            else None
        ),
        **body,
        "left_out": LEFT_OUT,
    }


def _adult_row(adult: Adult) -> dict[str, Any]:
    return {
        "kind": "linked adult",
        "id": adult.pk,
        "title": adult.title,
        "forename": adult.forename,
        "surname": adult.surname,
        "email": adult.email,
        "mobile": adult.mobile,
        "mis_id": adult.mis_id,
        "source": adult.get_source_display(),
        "registered": adult.registered,
        "opted_out": adult.opted_out,
        "court_order": adult.court_order,
        "held_for_review": adult.held,
        "created_at": _iso(adult.created_at),
        "updated_at": _iso(adult.updated_at),
    }


def _member_row(member: Member) -> dict[str, Any]:
    return {
        "kind": member.get_kind_display(),
        "id": member.pk,
        "role": member.get_role_display(),
        "mis_id": member.mis_id,
        "former_upn": member.former_upn,
        "admission_no": member.admission_no,
        "forename": member.forename,
        "surname": member.surname,
        "year": member.year,
        "reg_group": member.reg_group,
        "email": member.email,
        "mobile": member.mobile,
        "status": member.get_status_display(),
        "left_at": _iso(member.left_at),
        "registered": member.registered,
        "opted_out": member.opted_out,
        "created_at": _iso(member.created_at),
        "updated_at": _iso(member.updated_at),
    }


def _link_common(link: Link | PendingLink) -> dict[str, Any]:
    return {"relationship": link.relationship, "created_at": _iso(link.created_at)}


def _adult_data(school: School, adult: Adult) -> dict[str, Any]:
    links = (
        Link.objects.filter(school=school, adult=adult)
        .select_related("student")
        .order_by("student__surname", "student__forename", "pk")
    )
    pending = (
        PendingLink.objects.filter(school=school, adult=adult)
        .select_related("student")
        .order_by("created_at", "pk")
    )
    return {
        "subject": _adult_row(adult),
        # The student is named: who they are to the adult is the adult's own data. The
        # student's other contacts are not listed.
        "links": [
            {
                "student": {
                    "forename": link.student.forename,
                    "surname": link.student.surname,
                    "year": link.student.year,
                    "reg_group": link.student.reg_group,
                },
                **_link_common(link),
                "prime": link.prime,
                "priority": link.priority,
                "parental_responsibility": link.parental_responsibility,
                "source": link.get_source_display(),
            }
            for link in links
        ],
        "waiting_links": [
            {
                "student": {"forename": p.student.forename, "surname": p.student.surname},
                **_link_common(p),
                "status": p.get_status_display(),
                "decided_at": _iso(p.decided_at),
            }
            for p in pending
        ],
        "account": _account(adult.account_id),
        "preferences": {"email_off": adult.email_off, "sms_off": adult.sms_off},
        "opt_outs": {
            "opted_out": adult.opted_out,
            "texted_stop": _blocks(school, adult.mobile),
        },
        "privacy_notices": _receipts(school, adult),
        "letters": [],
        "messages": _messages(school, _adult_deliveries(school, adult), adult),
        "replies": _replies(school, Q(adult=adult), adult.mobile),
        "audit": _audit(school, adult, about_adult(adult)),
        "access_requests": _requests(school, Q(adult=adult)),
    }


def _member_data(school: School, member: Member) -> dict[str, Any]:
    links = Link.objects.filter(school=school, student=member).order_by("priority", "pk")
    codes = SecurityCode.objects.filter(school=school, member=member).order_by("created_at", "pk")
    now = timezone.now()
    return {
        "subject": _member_row(member),
        # The adults linked to a student are people in their own right: what the link says
        # is the student's, who the adult is and how to reach them is not.
        "links": [
            {
                "adult": "a linked adult (their name and contact details are theirs: left out)",
                **_link_common(link),
                "prime": link.prime,
                "priority": link.priority,
                "parental_responsibility": link.parental_responsibility,
                "source": link.get_source_display(),
            }
            for link in links
        ],
        "waiting_links": [],
        "account": _account(member.account_id),
        "preferences": {},
        "opt_outs": {"opted_out": member.opted_out, "texted_stop": _blocks(school, member.mobile)},
        "privacy_notices": [],
        # Dates only: a code is kept as a keyed hash, and even that stays out.
        "letters": [
            {
                "issued_at": _iso(code.created_at),
                "expires_at": _iso(code.expires_at),
                "revoked_at": _iso(code.revoked_at),
                "state": (
                    "revoked"
                    if code.revoked_at is not None
                    else ("works" if code.is_live(now) else "expired")
                ),
            }
            for code in codes
        ],
        "messages": _messages(
            school, Delivery.objects.filter(school=school, member=member), member
        ),
        "replies": _replies(school, Q(member=member), member.mobile),
        "audit": _audit(school, member, about_member(member)),
        "access_requests": _requests(school, Q(member=member)),
    }


def _account(user_id: int | None) -> dict[str, Any] | None:
    """The person's login: never the password's hash, nor a code's."""
    if user_id is None:
        return None
    user = get_user_model().objects.filter(pk=user_id).first()
    if user is None:
        return None
    parent = Parent.objects.filter(user=user).first()
    return {
        "email": user.email,
        "first_name": getattr(user, "first_name", ""),
        "last_name": getattr(user, "last_name", ""),
        "created_at": _iso(getattr(user, "date_joined", None)),
        "last_login": _iso(user.last_login),
        "active": user.is_active,
        "email_confirmed": bool(parent and parent.email_verified_at),
        "email_confirmed_at": _iso(parent.email_verified_at) if parent else None,
        "email_waiting_confirmation": parent.pending_email if parent else "",
        "mobile": parent.mobile if parent else "",
        "mobile_confirmed": bool(parent and parent.mobile_verified_at),
        "mobile_confirmed_at": _iso(parent.mobile_verified_at) if parent else None,
        "mobile_waiting_confirmation": parent.pending_mobile if parent else "",
    }


def _blocks(school: School, mobile: str) -> list[dict[str, Any]]:
    if not mobile:
        return []
    return [
        {"number": b.number, "keyword": b.keyword, "at": _iso(b.created_at)}
        for b in SmsBlock.objects.filter(school=school, number=mobile).order_by("created_at")
    ]


def _receipts(school: School, adult: Adult) -> list[dict[str, Any]]:
    who = Q(adult=adult)
    if adult.account_id is not None:
        who |= Q(account_id=adult.account_id)
    return [
        {"version": r.notice.version, "how": r.get_how_display(), "at": _iso(r.at)}
        for r in NoticeReceipt.objects.filter(who, school=school)
        .select_related("notice")
        .order_by("at", "pk")
    ]


def _adult_deliveries(school: School, adult: Adult) -> QuerySet[Delivery]:
    """Copies addressed to the adult, or carried for them on a number or address they shared
    with someone else (their id in ``adult_ids``), including a trust-wide send's copy that
    another school of the trust sent for both schools' families."""
    deliveries = Delivery.objects.filter(Q(school=school) | Q(schools__isnull=False))
    condition = Q(adult=adult)
    if connection.features.supports_json_field_contains:
        return deliveries.filter(condition | Q(adult_ids__contains=[adult.pk]))
    # SQLite has no JSON containment: the id as a whole number in the list's text.
    pattern = rf"(^|[^0-9]){adult.pk}([^0-9]|$)"
    return deliveries.annotate(ids_text=Cast("adult_ids", output_field=TextField())).filter(
        condition | Q(ids_text__regex=pattern)
    )


_LIST_SPLIT = re.compile(r", | and ")


def _messages(
    school: School, deliveries: QuerySet[Delivery], subject: Subject
) -> list[dict[str, Any]]:
    """Every copy sent (or queued) to them, with what it said to them and how far it got.

    A copy on a number or address shared with someone else greets all of them ("Mary Smith and
    Dan Smith") and names all their children, whoever it is addressed to: the stored greeting
    is never copied. The subject's own name stands in for it, and of the children only their
    own (a member's copies name no children of theirs)."""
    own_name = _name(subject.forename, subject.surname)
    own_children: set[str] = set()
    if isinstance(subject, Adult):
        own_children = set(
            Link.objects.filter(school=school, adult=subject).values_list(
                "student__forename", flat=True
            )
        )
    found = []
    for delivery in deliveries.select_related("message").order_by(
        "message__send_at", "message_id", "channel", "pk"
    ):
        message = delivery.message
        shared = [c for c in _LIST_SPLIT.split(delivery.children) if c in own_children]
        fields = {"name": own_name, "children": merge.list_names(shared), "school": school.name}
        entry: dict[str, Any] = {
            "message": message.pk,
            "channel": delivery.get_channel_display(),
            "to": delivery.to,
            "status": delivery.status,
            "queued_at": _iso(message.created_at),
            "send_at": _iso(message.send_at),
            "sent_at": _iso(delivery.sent_at),
            "status_at": _iso(delivery.status_at),
            "urgent": message.urgent,
        }
        if delivery.channel == "email":
            entry["subject"] = merge.render(message.subject, **fields)
            entry["body"] = merge.render(message.email_body, **fields)
        else:
            entry["body"] = merge.render(message.sms_text, **fields)
        found.append(entry)
    return found


def _replies(school: School, whose: Q, mobile: str) -> list[dict[str, Any]]:
    condition = whose
    if mobile:
        # A text from their number that the inbound handler could not put a name to.
        condition |= Q(from_number=mobile, adult__isnull=True, member__isnull=True)
    return [
        {
            "received_at": _iso(r.received_at),
            "from": r.from_number,
            "text": r.text,
            "keyword": r.action,
            "in_reply_to_message": r.in_reply_to_id,
        }
        for r in InboundSms.objects.filter(condition, school=school).order_by("received_at", "pk")
    ]


#: How the audit trail's actors read in an export: never who, only what kind of actor.
ACTOR_LABELS = {
    "cli": "the school office (command line)",
    "console": "the school office",
    "import": "an MIS import",
    "migration": "homelink (an upgrade)",
    "demo": "homelink (demonstration data)",
    "web": "homelink (the web site)",
}


_USER_LABEL = re.compile(r"user:(\d+)")


def _actor_id(event: AuditEvent) -> int | None:
    """The user behind an event: its actor, or the id its label keeps ("user:12")."""
    if event.actor_id is not None:
        return event.actor_id
    found = _USER_LABEL.fullmatch(event.actor_label)
    return int(found.group(1)) if found else None


def _who(event: AuditEvent, subject: Subject, roles: dict[int, str]) -> str:
    user_id = _actor_id(event)
    if user_id is not None:
        if user_id == subject.account_id:
            return "you"
        if user_id in roles:
            return f"school staff ({roles[user_id]})"
    label = event.actor_label
    if label.startswith("admin:"):
        return "a site operator"
    if label.startswith("user:"):
        return "a signed-in user"
    return ACTOR_LABELS.get(label, "homelink (automatic)")


def _audit(school: School, subject: Subject, about: Q) -> list[dict[str, Any]]:
    events = list(AuditEvent.objects.filter(about, school=school).order_by("at", "pk"))
    actor_ids = {user_id for e in events if (user_id := _actor_id(e)) is not None}
    roles = {
        m.user_id: m.role
        for m in StaffMembership.objects.filter(school=school, user_id__in=actor_ids)
    }
    return [
        {
            "at": _iso(e.at),
            "action": e.action,
            "record": e.object_type,
            "by": _who(e, subject, roles),
        }
        for e in events
    ]


def _requests(school: School, whose: Q) -> list[dict[str, Any]]:
    return [
        {
            "received_on": _iso(r.received_on),
            "due_on": _iso(r.due_on),
            "completed_at": _iso(r.completed_at),
        }
        for r in SubjectAccessRequest.objects.filter(whose, school=school).order_by("pk")
    ]


def subject_label(request: SubjectAccessRequest) -> str:
    """Who a request is about, for the school's own pages."""
    subject = _subject_of(request)
    if subject is None:
        return "(no longer in the register)"
    return _name(subject.forename, subject.surname) or f"#{subject.pk}"


def find_subject(school: School, *, adult_id: int | None = None, mis_id: str = "") -> Subject:
    """The adult (by the id ``homelink export`` prints) or member (by MIS id) of the school."""
    if adult_id is not None:
        adult = Adult.objects.filter(school=school, pk=adult_id).first()
        if adult is None:
            raise ValidationError(f"No adult with id {adult_id} in this school's register.")
        return adult
    member = Member.objects.filter(school=school, mis_id=mis_id.strip()).first()
    if member is None:
        raise ValidationError(f"No member with MIS id {mis_id} in this school's register.")
    return member
