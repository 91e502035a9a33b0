"""The school's records of processing (UK GDPR Article 30), as its DPO asks for them: what is
held and how much, who processes it for the school, how long it is kept, open subject access
requests and the last purge. Counts and names of services only: never a person, never a secret.
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

from django.conf import settings
from django.db.models import Count, Min, Q
from django.utils import timezone
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from homelink.audit.actions import RECORDS_EXPORTED
from homelink.audit.models import AuditEvent
from homelink.audit.services import audit_access
from homelink.privacy.models import (
    NoticeReceipt,
    RetentionPolicy,
    SubjectAccessRequest,
    Tombstone,
)
from homelink.register.models import Adult, Link, Member
from homelink.schools.models import School
from homelink.staff.actor import Actor


@dataclass(frozen=True)
class Category:
    name: str
    held: str  # what is kept, in words
    count: int


@dataclass(frozen=True)
class SubProcessor:
    purpose: str
    name: str


@dataclass(frozen=True)
class Retention:
    leavers_months: int
    messages_months: int
    audit_years: int
    #: True when the school never changed them (no RetentionPolicy row): homelink's defaults.
    default: bool


@dataclass(frozen=True)
class ProcessingSummary:
    school_name: str
    urn: str
    at: dt.datetime
    categories: list[Category]
    sub_processors: list[SubProcessor]
    retention: Retention
    open_requests: int
    overdue_requests: int
    oldest_due: dt.date | None
    last_purge_at: dt.datetime | None
    last_purge: dict[str, int]


def _gateway_name(path: str) -> str:
    """An SMS gateway's class path as the provider's name (never its account or token)."""
    if path.endswith(".OutboxGateway"):
        return "None: texts are kept in homelink's local outbox, not sent"
    if path.endswith(".TwilioGateway"):
        return "Twilio"
    if path.endswith(".HttpGateway"):
        host = urlsplit(str(settings.HOMELINK_HTTP_SMS.get("URL", ""))).hostname
        return f"An HTTP SMS provider ({host})" if host else "An HTTP SMS provider"
    return path.rsplit(".", 1)[-1]


def _email_name(backend: str) -> str:
    """The email service by name: an SMTP relay by its host, an ESP by anymail's name for it."""
    if backend.endswith("OutboxEmailBackend"):
        return "None: email is kept in homelink's local outbox, not sent"
    if backend == "django.core.mail.backends.smtp.EmailBackend":
        return f"SMTP relay ({settings.EMAIL_HOST})"
    if backend.startswith("anymail.backends."):
        return backend.split(".")[2].replace("_", " ").title() + " (through django-anymail)"
    return backend.rsplit(".", 1)[0].rsplit(".", 1)[-1]


def sub_processors() -> list[SubProcessor]:
    return [
        SubProcessor("Text messages (SMS)", _gateway_name(settings.HOMELINK_SMS_GATEWAY)),
        SubProcessor("Email", _email_name(settings.EMAIL_BACKEND)),
    ]


def retention_terms(school: School) -> Retention:
    policy = RetentionPolicy.objects.filter(school=school).first()
    shown = policy or RetentionPolicy(school=school)  # the model's defaults are the README's
    return Retention(
        leavers_months=shown.leavers_months,
        messages_months=shown.messages_months,
        audit_years=shown.audit_years,
        default=policy is None,
    )


def _categories(school: School) -> list[Category]:
    from homelink.messaging.models import Delivery, InboundSms, Message
    from homelink.registration.models import SecurityCode
    from homelink.staff.models import StaffMembership

    members = Member.objects.filter(school=school).aggregate(
        students=Count("pk", filter=Q(kind=Member.Kind.STUDENT)),
        staff=Count("pk", filter=~Q(kind=Member.Kind.STUDENT)),
    )
    accounts = (
        Adult.objects.filter(school=school, account__isnull=False)
        .values("account_id")
        .distinct()
        .count()
    )
    return [
        Category(
            "Students",
            "Name, MIS id, year and registration group, own email and mobile where the MIS "
            "gives them, on roll or left",
            members["students"],
        ),
        Category(
            "Staff and governors in the register",
            "Name, MIS id, role, email and mobile from the MIS",
            members["staff"],
        ),
        Category(
            "Parents and carers",
            "Title, name, email, mobile, MIS contact id, how they want to be contacted, opt-outs",
            Adult.objects.filter(school=school).count(),
        ),
        Category(
            "Links between students and parents",
            "Relationship, priority, prime parent, parental responsibility, court order",
            Link.objects.filter(school=school).count(),
        ),
        Category(
            "Parents' web accounts",
            "Email (login), password hash, mobile once confirmed",
            accounts,
        ),
        Category(
            "Security letters",
            "A keyed hash of each code (never the code), when issued and until when",
            SecurityCode.objects.filter(school=school).count(),
        ),
        Category(
            "Messages sent",
            "Subject and text, audience, who sent it and when",
            Message.objects.filter(school=school).count(),
        ),
        Category(
            "Message copies",
            "One per person and channel: the address or number, name, status and receipts",
            Delivery.objects.filter(school=school).count(),
        ),
        Category(
            "Replies by SMS",
            "The number, the text, the message it answers",
            InboundSms.objects.filter(school=school).count(),
        ),
        Category(
            "Privacy notice receipts",
            "Which version of the notice each adult was shown or sent, and when",
            NoticeReceipt.objects.filter(school=school).count(),
        ),
        Category(
            "Erasure tombstones",
            "A keyed hash of what identified an erased person (no name, email or number)",
            Tombstone.objects.filter(school=school).count(),
        ),
        Category(
            "Staff accounts",
            "Email, role, password hash, second-factor devices",
            StaffMembership.objects.filter(school=school).count(),
        ),
        Category(
            "Audit trail events",
            "Who did what to which record, and when (record ids, never personal values)",
            AuditEvent.objects.filter(school=school).count(),
        ),
    ]


def processing_summary(school: School, *, now: dt.datetime | None = None) -> ProcessingSummary:
    """The school's records of processing as of ``now``: a fixed number of queries."""
    now = now or timezone.now()
    today = timezone.localdate(now)
    requests = SubjectAccessRequest.objects.filter(
        school=school, completed_at__isnull=True
    ).aggregate(
        open=Count("pk"),
        overdue=Count("pk", filter=Q(due_on__lt=today)),
        oldest=Min("due_on"),
    )
    policy = RetentionPolicy.objects.filter(school=school).first()
    return ProcessingSummary(
        school_name=school.name,
        urn=school.urn,
        at=now,
        categories=_categories(school),
        sub_processors=sub_processors(),
        retention=retention_terms(school),
        open_requests=requests["open"],
        overdue_requests=requests["overdue"],
        oldest_due=requests["oldest"],
        last_purge_at=policy.last_purge_at if policy else None,
        last_purge={str(k): int(v) for k, v in (policy.last_purge or {}).items()} if policy else {},
    )


def _table(rows: list[list[str]], widths: list[float]) -> Table:
    styles = getSampleStyleSheet()
    cell = styles["BodyText"]
    table = Table(
        [[Paragraph(escape(text), cell) for text in row] for row in rows],
        colWidths=widths,
        repeatRows=1,
    )
    table.setStyle(
        TableStyle(
            [
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8eef4")),
                ("GRID", (0, 0), (-1, -1), 0.4, colors.HexColor("#99a6b3")),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ]
        )
    )
    return table


def render_records_pdf(summary: ProcessingSummary) -> bytes:
    """The summary as an A4 PDF for the school's records of processing."""
    styles = getSampleStyleSheet()
    out = io.BytesIO()
    doc = SimpleDocTemplate(
        out,
        pagesize=A4,
        leftMargin=18 * mm,
        rightMargin=18 * mm,
        topMargin=18 * mm,
        bottomMargin=18 * mm,
        title=f"Records of processing: {summary.school_name}",
        author="homelink",
    )
    width = A4[0] - 36 * mm
    when = _when(summary.at)
    story: list[object] = [
        Paragraph(escape(f"Records of processing: {summary.school_name}"), styles["Title"]),
        Paragraph(
            escape(
                f"URN {summary.urn}. Produced by homelink on {when}. The school is the "
                "controller of this data; homelink is its processor."
            ),
            styles["BodyText"],
        ),
        Spacer(1, 6 * mm),
        Paragraph("Categories of data held", styles["Heading2"]),
        _table(
            [["Category", "What is held", "Count"]]
            + [[c.name, c.held, f"{c.count:,}"] for c in summary.categories],
            [width * 0.28, width * 0.57, width * 0.15],
        ),
        Spacer(1, 6 * mm),
        Paragraph("Sub-processors", styles["Heading2"]),
        _table(
            [["Purpose", "Service"]] + [[s.purpose, s.name] for s in summary.sub_processors],
            [width * 0.35, width * 0.65],
        ),
        Spacer(1, 6 * mm),
        Paragraph("Retention", styles["Heading2"]),
    ]
    r = summary.retention
    story += [
        _table(
            [
                ["What", "Kept for"],
                ["Leavers' register rows and links", f"{r.leavers_months} months after leaving"],
                ["Message bodies and delivery rows", f"{r.messages_months} months after sending"],
                ["Audit trail events", f"{r.audit_years} years"],
            ],
            [width * 0.6, width * 0.4],
        ),
        Paragraph(
            escape(
                "These are homelink's defaults (the school has not changed them)."
                if r.default
                else "Set by the school."
            ),
            styles["BodyText"],
        ),
        Spacer(1, 6 * mm),
        Paragraph("Subject access requests", styles["Heading2"]),
        Paragraph(escape(requests_sentence(summary)), styles["BodyText"]),
        Spacer(1, 6 * mm),
        Paragraph("Last retention purge", styles["Heading2"]),
        Paragraph(escape(purge_sentence(summary)), styles["BodyText"]),
    ]
    doc.build(story)
    return out.getvalue()


def _day(day: dt.date) -> str:
    return f"{day.day} {day:%B %Y}"


def _when(at: dt.datetime) -> str:
    local = timezone.localtime(at)
    return f"{_day(local)}, {local:%H:%M}"


def requests_sentence(summary: ProcessingSummary) -> str:
    if not summary.open_requests:
        return "No subject access request is open."
    oldest = _day(summary.oldest_due) if summary.oldest_due else "unknown"
    plural = "request is" if summary.open_requests == 1 else "requests are"
    text = f"{summary.open_requests} {plural} open; the oldest is due on {oldest}."
    if summary.overdue_requests:
        text += f" {summary.overdue_requests} overdue."
    return text


def purge_sentence(summary: ProcessingSummary) -> str:
    if summary.last_purge_at is None:
        return "No purge has run yet."
    when = _when(summary.last_purge_at)
    removed = ", ".join(
        f"{k.replace('_', ' ')}: {v:,}" for k, v in sorted(summary.last_purge.items())
    )
    return f"Last run {when}; removed {removed or 'nothing'}."


def records_export(*, school: School, actor: Actor) -> bytes:
    """The records of processing as a PDF, recorded in the audit trail as an export."""
    summary = processing_summary(school)
    pdf = render_records_pdf(summary)
    audit_access(school=school, actor=actor, action=RECORDS_EXPORTED, detail={"format": "pdf"})
    return pdf
