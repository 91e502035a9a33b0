"""Security letters: one A4 page per student, with a new code, as one PDF.

Drawn with ReportLab's canvas and the standard PDF fonts (Helvetica for text, Courier-Bold for
the code, whose fixed width keeps the groups aligned and each symbol distinct). The clear codes
go from :func:`codes_issue` straight onto the pages and are never stored.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader, simpleSplit
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen.canvas import Canvas

from homelink.audit.services import audit_record
from homelink.mis.phones import for_display
from homelink.register.models import Member
from homelink.register.years import year_label
from homelink.registration.codes import code_hash, normalise_code
from homelink.registration.models import LetterBatch, SecurityCode
from homelink.registration.selectors import letter_students
from homelink.registration.services import code_revoke, codes_issue, letter_batch_revoke
from homelink.schools.models import School, SchoolLogo
from homelink.staff.actor import Actor, actor_parts

PAGE_WIDTH, PAGE_HEIGHT = A4
MARGIN = 20 * mm
TEXT_WIDTH = PAGE_WIDTH - 2 * MARGIN
STEP_INDENT = 16.0
#: The logo is printed at most this high and wide, above the school's name.
LOGO_HEIGHT = 20 * mm
LOGO_WIDTH = 70 * mm

REGULAR = "Helvetica"
BOLD = "Helvetica-Bold"
CODE_FONT = "Courier-Bold"


class NoStudents(Exception):
    """No current student matches the chosen set, so there is nothing to print."""


@dataclass(frozen=True)
class IssuedLetters:
    pdf: bytes
    count: int
    batch: LetterBatch


@dataclass(frozen=True)
class Letter:
    """What one page says besides the text every page shares."""

    addressee: str
    child: str
    code: str


@dataclass(frozen=True)
class Letterhead:
    """How the school heads its letters: its name, and its office phone and logo if set."""

    school_name: str
    office_phone: str = ""
    logo: bytes | None = None


def letterhead(school: School) -> Letterhead:
    logo = SchoolLogo.objects.filter(school=school).values_list("image", flat=True).first()
    return Letterhead(
        school_name=school.name,
        office_phone=for_display(school.office_phone, school.phone_region),
        logo=bytes(logo) if logo is not None else None,
    )


def public_register_url() -> str:
    base = getattr(settings, "HOMELINK_PUBLIC_URL", "http://127.0.0.1:8000")
    return base.rstrip("/") + "/register/"


def letter_for(student: Member, code: str) -> Letter:
    name = " ".join(part for part in (student.forename, student.surname) if part)
    about = ", ".join(part for part in (year_label(student.year), student.reg_group) if part)
    addressee = "To the parent or carer of " + (name or "our student")
    if about:
        addressee += f" ({about})"
    return Letter(addressee=addressee, child=student.forename or name or "your child", code=code)


def describe_filter(
    *, year: str | None, reg_group: str | None, unregistered_only: bool
) -> dict[str, object]:
    return {
        "year": year.strip() if year and year.strip() else None,
        "reg_group": reg_group.strip() if reg_group and reg_group.strip() else None,
        "unregistered_only": unregistered_only,
    }


def letters_issue(
    *,
    school: School,
    year: str | None = None,
    reg_group: str | None = None,
    unregistered_only: bool = False,
    actor: str,
    now: dt.datetime | None = None,
) -> IssuedLetters:
    """Issue a new code to each current student in the set and print them, one page each.

    Raises :class:`NoStudents` when nobody matches. Codes and their batch are committed before
    the PDF is drawn, so the database is not held locked while drawing; should drawing fail,
    the batch is revoked, as nobody can have those codes.
    """
    now = now or timezone.now()
    chosen = describe_filter(year=year, reg_group=reg_group, unregistered_only=unregistered_only)
    with transaction.atomic():
        students = letter_students(
            school=school, year=year, reg_group=reg_group, unregistered_only=unregistered_only
        )
        if not students:
            raise NoStudents(_nobody_message(chosen))
        batch = LetterBatch.objects.create(
            school=school, issued_by=actor, filter=chosen, count=len(students)
        )
        issued = codes_issue(
            school=school, members=students, actor=actor, letter_batch=batch, now=now
        )
        audit_record(
            school=school,
            actor_label=actor,
            action="letters.issued",
            obj=batch,
            detail={"count": len(issued), **chosen},
        )
    expires_at = now + dt.timedelta(days=school.code_expiry_days)
    try:
        pdf = render_letters(
            school_name=school.name,
            letters=[letter_for(student, code) for student, code in issued],
            expires_at=expires_at,
            url=public_register_url(),
            head=letterhead(school),
        )
    except Exception:
        letter_batch_revoke(batch=batch, actor=actor)
        raise
    return IssuedLetters(pdf=pdf, count=len(issued), batch=batch)


@dataclass(frozen=True)
class MemberLetter:
    pdf: bytes
    code: SecurityCode


def member_letter_issue(
    *, member: Member, actor: Actor, now: dt.datetime | None = None
) -> MemberLetter:
    """A new code for one student (staff, from the student's page), printed on one page through
    the letters' own render path.

    Earlier letters stay live (a second letter is for a second parent). The code is committed
    before drawing; should drawing fail, it is revoked, as nobody can have it.
    """
    label, _ = actor_parts(actor)
    if member.kind != Member.Kind.STUDENT or member.status != Member.Status.CURRENT:
        raise ValidationError("letters are printed for students on roll")
    school = member.school
    now = now or timezone.now()
    [(_, text)] = codes_issue(school=school, members=[member], actor=label, now=now)
    code = SecurityCode.objects.get(code_hash=code_hash(normalise_code(text) or text))
    try:
        pdf = render_letters(
            school_name=school.name,
            letters=[letter_for(member, text)],
            expires_at=code.expires_at,
            url=public_register_url(),
            head=letterhead(school),
        )
    except Exception:
        code_revoke(code=code, actor=label)
        raise
    return MemberLetter(pdf=pdf, code=code)


def member_letter_revoke(*, code: SecurityCode, actor: Actor) -> SecurityCode:
    """Revoke one letter's code (lost, or in the wrong hands)."""
    label, _ = actor_parts(actor)
    with transaction.atomic():
        return code_revoke(code=code, actor=label)


def _nobody_message(chosen: dict[str, object]) -> str:
    parts = []
    if chosen["year"]:
        parts.append(f"in year {chosen['year']}")
    if chosen["reg_group"]:
        parts.append(f"in registration group {chosen['reg_group']}")
    if chosen["unregistered_only"]:
        parts.append("without a registered adult")
    return "no current students" + (" " + " and ".join(parts) if parts else "")


def use_by_label(expires_at: dt.datetime) -> str:
    # The code lapses part-way through its last local day, so the letter names the day before:
    # a parent who acts on the printed date always succeeds.
    day = timezone.localtime(expires_at).date() - dt.timedelta(days=1)
    return f"{day.day} {day:%B %Y}"


class _Page:
    """Text set on a canvas from the top down, wrapping at word boundaries."""

    def __init__(
        self, canvas: Canvas, wrap_cache: dict[tuple[str, str, float, float], list[str]]
    ) -> None:
        self.canvas = canvas
        self.cache = wrap_cache
        self.y = PAGE_HEIGHT - MARGIN

    def lines(self, text: str, font: str, size: float, width: float) -> list[str]:
        key = (text, font, size, width)
        lines = self.cache.get(key)
        if lines is None:
            lines = simpleSplit(text, font, size, width)
            self.cache[key] = lines
        return lines

    def para(
        self,
        text: str,
        font: str = REGULAR,
        size: float = 11,
        *,
        x: float = MARGIN,
        after: float = 6,
    ) -> None:
        leading = size * 1.3
        self.canvas.setFont(font, size)
        for line in self.lines(text, font, size, PAGE_WIDTH - MARGIN - x):
            self.y -= leading
            self.canvas.drawString(x, self.y, line)
        self.y -= after

    def step(self, number: int, text: str, size: float = 11) -> None:
        self.canvas.setFont(BOLD, size)
        self.canvas.drawString(MARGIN, self.y - size * 1.3, f"{number}.")
        self.para(text, REGULAR, size, x=MARGIN + STEP_INDENT, after=4)

    def centred(self, text: str, font: str, size: float, *, after: float = 6) -> None:
        # Shrink rather than wrap: a web address or a code must stay on one line to be typed.
        while size > 8 and stringWidth(text, font, size) > TEXT_WIDTH:
            size -= 1
        self.y -= size * 1.2
        self.canvas.setFont(font, size)
        self.canvas.drawCentredString(PAGE_WIDTH / 2, self.y, text)
        self.y -= after

    def space(self, points: float) -> None:
        self.y -= points


def _logo_form(canvas: Canvas, logo: bytes) -> tuple[float, float]:
    """Put the logo in the PDF once, as a form every page draws (drawing the image on each page
    would hash its pixels on each page); its printed width and height."""
    reader = ImageReader(io.BytesIO(logo))
    width, height = reader.getSize()
    scale = min(LOGO_HEIGHT / height, LOGO_WIDTH / width)
    width, height = width * scale, height * scale
    canvas.beginForm("logo", lowerx=0, lowery=0, upperx=width, uppery=height)
    canvas.drawImage(reader, 0, 0, width, height, mask="auto")
    canvas.endForm()
    return width, height


def render_letters(
    *,
    school_name: str,
    letters: Sequence[Letter],
    expires_at: dt.datetime,
    url: str,
    head: Letterhead | None = None,
) -> bytes:
    """The letters as one PDF, a page each, headed with the school's logo and office phone when
    ``head`` has them."""
    head = head or Letterhead(school_name=school_name)
    buffer = io.BytesIO()
    canvas = Canvas(buffer, pagesize=A4, pageCompression=1)
    canvas.setTitle(f"Registration letters - {school_name}")
    canvas.setAuthor(school_name)
    canvas.setCreator("homelink")
    wrap_cache: dict[tuple[str, str, float, float], list[str]] = {}
    logo_size = _logo_form(canvas, head.logo) if head.logo else None
    office = f" on {head.office_phone}" if head.office_phone else ""
    use_by = use_by_label(expires_at)
    intro = (
        f"{school_name} sends news and urgent messages, such as a closure, by text message and "
        "email. To receive them, register online and use the security code below. The code is "
        "for you alone: please keep it private."
    )
    use = (
        f"{school_name} will use the email address and mobile number you give us to send you SMS "
        "and email about school administration. The messages come from the school. homelink "
        "processes your details on the school's behalf; the school remains responsible for them."
    )
    opt_out = (
        "You can opt out at any time: on your account page, by replying STOP to a text message, "
        f"or by contacting the school office{office}."
    )
    lost = (
        "If this letter was not meant for you, or someone else may have seen the code, please "
        f"contact the school office{office} so that we can cancel it and send you a new one."
    )
    for letter in letters:
        page = _Page(canvas, wrap_cache)
        if logo_size is not None:
            page.space(logo_size[1])
            canvas.saveState()
            canvas.translate(MARGIN, page.y)
            canvas.doForm("logo")
            canvas.restoreState()
            page.space(4)
        page.para(school_name, BOLD, 18, after=2 if head.office_phone else 14)
        if head.office_phone:
            page.para(f"School office: {head.office_phone}", REGULAR, 11, after=12)
        page.para(letter.addressee, BOLD, 12, after=8)
        page.para(intro, after=14)

        box_top = page.y
        page.space(8)
        page.centred("Your security code", REGULAR, 10, after=4)
        page.centred(letter.code, CODE_FONT, 28, after=6)
        page.centred(f"Use this code by {use_by}.", BOLD, 11, after=10)
        canvas.setLineWidth(1.2)
        canvas.roundRect(MARGIN, page.y, TEXT_WIDTH, box_top - page.y, 6)
        page.space(18)

        page.para("How to register", BOLD, 13, after=2)
        page.centred(url, BOLD, 14, after=8)
        page.step(1, "Go to the address above and create an account with your email address.")
        page.step(2, "Confirm your email address from the message we send you.")
        page.step(3, f"Enter the code above to link yourself to {letter.child}.")
        page.space(12)

        page.para("How your details are used", BOLD, 13, after=2)
        page.para(use, after=10)
        page.para("Opting out", BOLD, 13, after=2)
        page.para(opt_out, after=10)
        page.para(lost, REGULAR, 9)
        canvas.showPage()
    canvas.save()
    return buffer.getvalue()
