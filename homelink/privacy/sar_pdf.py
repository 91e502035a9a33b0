"""The readable copy of a subject access export: the same data as ``subject.json``, as an A4
PDF a parent can read without a program for JSON.

Drawn with ReportLab's platypus and the standard PDF fonts, like the security letters. Every
value is escaped before it reaches a Paragraph: a name or a message may hold ``<`` or ``&``.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import (
    Flowable,
    KeepTogether,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

_STYLES = getSampleStyleSheet()
TITLE = _STYLES["Title"]
HEADING = _STYLES["Heading2"]
BODY = _STYLES["BodyText"]
SMALL = ParagraphStyle("small", parent=BODY, fontSize=8.5, leading=11)
LABEL = ParagraphStyle("label", parent=SMALL, fontName="Helvetica-Bold")

#: The sections in the order a reader expects, with their headings and what an empty one says.
SECTIONS: tuple[tuple[str, str, str], ...] = (
    ("subject", "Your record in the register", ""),
    ("links", "Children you are linked to", "None."),
    ("waiting_links", "Links waiting for the school", "None."),
    ("account", "Your account on the web site", "No account."),
    ("preferences", "Your choices", "None recorded."),
    ("opt_outs", "Opt-outs", "None."),
    ("privacy_notices", "Privacy notices shown or sent to you", "None recorded."),
    ("letters", "Security letters issued (dates only)", "None."),
    ("messages", "Messages sent to you", "None."),
    ("replies", "Text messages you sent to the school", "None."),
    ("audit", "What the audit trail records about you", "Nothing."),
    ("access_requests", "Your subject access requests", "None."),
)
#: For a member (a student or a member of staff), the links are the member's own contacts.
MEMBER_HEADINGS = {"links": "People linked to you", "subject": "Your record in the register"}


#: Field names that read badly when merely capitalised.
LABELS = {
    "id": "Record id",
    "mis_id": "MIS id",
    "former_upn": "Former UPN",
    "reg_group": "Registration group",
    "email_off": "Email turned off",
    "sms_off": "SMS turned off",
    "texted_stop": "Texted STOP",
    "in_reply_to_message": "In reply to message",
}
_ISO_MOMENT = re.compile(r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}:\d{2}([+-]\d{2}:\d{2})?)?")


def _moment(text: str) -> str:
    """An ISO date or time as people read it: 3 Dec 2026, 3 Dec 2026 16:50."""
    if "T" in text:
        moment = dt.datetime.fromisoformat(text)
        return f"{moment.day} {moment:%b %Y %H:%M}"
    day = dt.date.fromisoformat(text)
    return f"{day.day} {day:%b %Y}"


def _text(value: Any) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, str) and _ISO_MOMENT.fullmatch(value):
        return _moment(value)
    if value is True:
        return "yes"
    if value is False:
        return "no"
    if isinstance(value, dict):
        return ", ".join(f"{_label(k)}: {_text(v)}" for k, v in value.items())
    if isinstance(value, list):
        return "; ".join(_text(v) for v in value) or "—"
    return str(value)


def _label(key: str) -> str:
    return LABELS.get(key) or key.replace("_", " ").capitalize()


def _para(text: str, style: ParagraphStyle = SMALL) -> Paragraph:
    # Line breaks in a message's body are kept; everything else is escaped.
    return Paragraph(escape(text).replace("\n", "<br/>"), style)


def _pairs(row: dict[str, Any]) -> Table:
    table = Table(
        [[_para(_label(k), LABEL), _para(_text(v))] for k, v in row.items()],
        colWidths=[45 * mm, 125 * mm],
        # A newsletter-length email is taller than a page: its row breaks across pages
        # (without this ReportLab refuses the whole document).
        splitInRow=1,
    )
    table.setStyle(
        TableStyle(
            [
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.lightgrey),
                ("TOPPADDING", (0, 0), (-1, -1), 2),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
            ]
        )
    )
    return table


def _section(key: str, value: Any, heading: str, empty: str) -> list[Flowable]:
    parts: list[Flowable] = [Paragraph(escape(heading), HEADING)]
    if not value:
        parts.append(_para(empty, BODY))
    elif isinstance(value, dict):
        parts.append(_pairs(value))
    elif isinstance(value, list):
        for row in value:
            item = row if isinstance(row, dict) else {"": row}
            parts.append(KeepTogether([_pairs(item), Spacer(1, 3 * mm)]))
    else:
        parts.append(_para(_text(value), BODY))
    return parts


def render_pdf(data: dict[str, Any]) -> bytes:
    """The export as a PDF, section by section in the order of :data:`SECTIONS`."""
    subject = data.get("subject") or {}
    name = f"{subject.get('forename', '')} {subject.get('surname', '')}".strip()
    school = (data.get("school") or {}).get("name", "")
    member = subject.get("kind") != "linked adult"
    buffer = io.BytesIO()
    document = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=20 * mm,
        rightMargin=20 * mm,
        topMargin=18 * mm,
        bottomMargin=18 * mm,
        # The document's metadata names nobody: it travels with the file.
        title="Subject access export",
        author=school,
        subject="Everything the school holds about one person",
    )
    story: list[Flowable] = [
        _para(f"What {school} holds about {name}", TITLE),
        _para(f"Made on {_text(data.get('generated_at'))}.", BODY),
    ]
    request = data.get("request")
    if request:
        story.append(
            _para(
                f"Request received on {_text(request['received_on'])}; "
                f"to be answered by {_text(request['due_on'])}.",
                BODY,
            )
        )
    story += [_para(str(data.get("left_out", "")), BODY), Spacer(1, 4 * mm)]
    for key, heading, empty in SECTIONS:
        if key not in data or (member and key in ("preferences", "privacy_notices")):
            continue
        if member:
            heading = MEMBER_HEADINGS.get(key, heading)
        elif key == "letters":
            continue  # letters are issued for students and staff, not for linked adults
        story += _section(key, data[key], heading, empty)
    document.build(story)
    return buffer.getvalue()
