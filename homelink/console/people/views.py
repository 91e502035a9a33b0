"""Console pages for people, letters, likely duplicates and settings (the Staff page is in
console/staff/). Thin: the school and every record come from
:func:`~homelink.console.permissions.staff_view`, writes from named services. Every POST is for
administrators (``staff_view``'s default ``post_role``).

A form that does not validate is shown again with its errors against the fields and status
400, so that nothing reads a refused submission as a success.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Prefetch, Q, QuerySet
from django.http import Http404, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify

from homelink.console.people.forms import (
    AdultSearchForm,
    LettersForm,
    LinkExistingForm,
    NewAdultForm,
    ReviewForm,
    SettingsForm,
)
from homelink.console.permissions import StaffRequest, staff_view
from homelink.console.refusals import form_refused, refused, sentence
from homelink.console.search import PARAMETER, search_recall, search_remember
from homelink.mis.phones import for_display
from homelink.register import services
from homelink.register.identity import name_key
from homelink.register.models import Adult, LikelyDuplicate, Link, Member
from homelink.register.years import in_school_order
from homelink.registration import letters as security_letters
from homelink.registration.letters import NoStudents, letters_issue
from homelink.registration.models import SecurityCode
from homelink.schools.models import SchoolLogo
from homelink.schools.services import school_logo_set, school_update
from homelink.staff import otp
from homelink.staff.models import Role, StaffMembership

logger = logging.getLogger(__name__)

SEARCH_LIMIT = 25


def _actor(request: StaffRequest) -> str:
    return f"user:{request.user.pk}"


def _context(request: StaffRequest, **extra: Any) -> dict[str, Any]:
    return {
        "school": request.school,
        "membership": request.membership,
        "can_change": request.membership.can(Role.ADMINISTRATOR),
        **extra,
    }


def _back(member: Member) -> HttpResponse:
    return redirect("console:member", urn=member.school.urn, member_id=member.pk)


def _name(person: Adult | Member) -> str:
    return " ".join(p for p in (person.forename, person.surname) if p) or "(no name)"


def _students_only(member: Member) -> None:
    if member.kind != Member.Kind.STUDENT:
        # Adults are linked to students; an adult member's screen has no linked people.
        raise Http404("adults are linked to students")


# --- the linked-people screen: adding adults ------------------------------------------------


def _addable_adults(member: Member) -> QuerySet[Adult]:
    """The school's adults not yet linked to this student: what the choice may be."""
    return Adult.objects.filter(school_id=member.school_id).exclude(links__student=member)


def _adult_search(member: Member, q: str) -> list[Adult]:
    key = name_key(q, "")
    condition = Q(email__icontains=q.strip().lower())
    if key:
        condition |= Q(name_key__contains=key)
    return list(
        _addable_adults(member)
        .filter(condition)
        .prefetch_related(
            Prefetch("links", queryset=Link.objects.select_related("student").order_by("pk"))
        )
        .order_by("surname", "forename", "pk")[:SEARCH_LIMIT]
    )


@staff_view(methods=("POST",), post_role=Role.VIEWER)
def people_search(request: StaffRequest, member: Member) -> HttpResponse:
    """The adult search, POSTed so that a name or email typed never enters a URL; the results
    are the linking page's, under a key to the terms kept in the session."""
    _students_only(member)
    search = AdultSearchForm(request.POST)
    url = reverse("console:people_add", kwargs={"urn": request.school.urn, "member_id": member.pk})
    if not search.is_valid():
        return redirect(url)
    key = search_remember(request, {"q": search.cleaned_data["q"]})
    return redirect(f"{url}?{PARAMETER}={key}")


@staff_view(methods=("GET", "HEAD", "POST"))
def people_add(request: StaffRequest, member: Member) -> HttpResponse:
    """Find an adult already in the register and link them to the student (``manual``)."""
    _students_only(member)
    # Linking POSTs the terms back in its body, to show the same results with any error.
    source = request.POST if request.method == "POST" else search_recall(request)
    search = AdultSearchForm(source if "q" in source else None)
    found = _adult_search(member, search.cleaned_data["q"]) if search.is_valid() else []
    status = 200
    if request.method == "POST":
        form = LinkExistingForm(request.POST, adults=_addable_adults(member))
        if form.is_valid():
            data = form.cleaned_data
            try:
                services.people_link_existing(
                    student=member,
                    adult=data["adult"],
                    relationship=data["relationship"],
                    prime=data["prime"],
                    parental_responsibility=data["parental_responsibility"],
                    actor=request.user,
                )
            except ValidationError as error:
                form_refused(form, error)
            else:
                messages.success(
                    request, f"{_name(data['adult'])} is now linked to {_name(member)}."
                )
                return _back(member)
        status = 400
    else:
        form = LinkExistingForm(adults=_addable_adults(member))
    return render(
        request,
        "console/people_add.html",
        _context(request, member=member, search=search, found=found, form=form),
        status=status,
    )


@staff_view(methods=("GET", "HEAD", "POST"))
def people_new(request: StaffRequest, member: Member) -> HttpResponse:
    """Type in an adult who is not in the register and link them (both ``manual``)."""
    _students_only(member)
    region = request.school.phone_region
    if request.method != "POST":
        form = NewAdultForm(phone_region=region)
        return render(
            request, "console/people_new.html", _context(request, member=member, form=form)
        )
    form = NewAdultForm(request.POST, phone_region=region)
    if form.is_valid():
        data = form.cleaned_data
        try:
            link = services.people_add_new(
                student=member,
                title=data["title"],
                forename=data["forename"],
                surname=data["surname"],
                email=data["email"],
                mobile=data["mobile"],
                relationship=data["relationship"],
                prime=data["prime"],
                parental_responsibility=data["parental_responsibility"],
                actor=request.user,
            )
        except ValidationError as error:
            form_refused(form, error)
        else:
            messages.success(request, f"{_name(link.adult)} is now linked to {_name(member)}.")
            return _back(member)
    return render(
        request, "console/people_new.html", _context(request, member=member, form=form), status=400
    )


@staff_view(methods=("POST",))
def adult_review(request: StaffRequest, member: Member, adult: Adult) -> HttpResponse:
    """Release an adult held for review, or keep them held (both recorded)."""
    form = ReviewForm(request.POST)
    if not form.is_valid():
        return HttpResponseBadRequest("Choose release or keep held.")
    release = form.cleaned_data["decision"] == "release"
    try:
        services.adult_review(student=member, adult=adult, release=release, actor=request.user)
    except ValidationError as error:
        refused(request, error)
    else:
        messages.success(
            request,
            f"{_name(adult)} is no longer held for review."
            if release
            else f"{_name(adult)} stays held for review; your review is recorded.",
        )
    return _back(member)


# --- one member's letters -------------------------------------------------------------------


@dataclass(frozen=True)
class LetterRow:
    code: SecurityCode
    state: str  # "live", "expired" or "revoked"
    issued_by: str
    revoked_by: str


_USER_LABEL = re.compile(r"^user:(\d+)$")


def _who(school_id: int, labels: set[str]) -> dict[str, str]:
    """Staff labels ("user:12") as the staff's email, where they work here; others as given."""
    ids = {int(m.group(1)) for label in labels if (m := _USER_LABEL.match(label))}
    emails = dict(
        StaffMembership.objects.filter(school_id=school_id, user_id__in=ids).values_list(
            "user_id", "user__email"
        )
    )
    names: dict[str, str] = {}
    for label in labels:
        m = _USER_LABEL.match(label)
        user_email = emails.get(int(m.group(1))) if m else None
        names[label] = user_email or ("a former member of staff" if m else label)
    return names


@staff_view()
def member_letters(request: StaffRequest, member: Member) -> HttpResponse:
    """The member's letters: when issued, until when, revoked or live. Never a code: only
    its hash is kept, so a lost letter is revoked and a new one printed."""
    now = timezone.now()
    codes = list(SecurityCode.objects.filter(member=member).order_by("-created_at", "-pk"))
    who = _who(member.school_id, {c.issued_by for c in codes} | {c.revoked_by for c in codes})
    rows = [
        LetterRow(
            code=c,
            state="revoked" if c.revoked_at else ("live" if c.is_live(now) else "expired"),
            issued_by=who.get(c.issued_by, c.issued_by),
            revoked_by=who.get(c.revoked_by, c.revoked_by) if c.revoked_by else "",
        )
        for c in codes
    ]
    return render(
        request,
        "console/people_letters.html",
        _context(
            request,
            member=member,
            rows=rows,
            can_print=member.kind == Member.Kind.STUDENT and member.status == Member.Status.CURRENT,
            live=sum(r.state == "live" for r in rows),
        ),
    )


def _pdf(pdf: bytes, filename: str) -> HttpResponse:
    response = HttpResponse(pdf, content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"  # it carries live codes
    return response


@staff_view(methods=("POST",))
def member_letter_issue(request: StaffRequest, member: Member) -> HttpResponse:
    """Print one new letter for the student, as a one-page PDF download."""
    try:
        letter = security_letters.member_letter_issue(member=member, actor=request.user)
    except ValidationError as error:
        refused(request, error)
        return redirect("console:member_letters", urn=request.school.urn, member_id=member.pk)
    day = timezone.localdate(letter.code.created_at).strftime("%Y%m%d")
    slug = slugify(f"{member.forename} {member.surname}") or f"member-{member.pk}"
    return _pdf(letter.pdf, f"letter-{request.school.urn}-{slug}-{day}.pdf")


@staff_view(methods=("POST",))
def member_letter_revoke(request: StaffRequest, member: Member, code: SecurityCode) -> HttpResponse:
    if code.revoked_at is not None:
        messages.info(request, "That letter was already revoked.")
    else:
        security_letters.member_letter_revoke(code=code, actor=request.user)
        issued = timezone.localtime(code.created_at).strftime("%-d %b %Y %H:%M")
        messages.success(
            request, f"The letter issued {issued} is revoked: its code no longer works."
        )
    return redirect("console:member_letters", urn=request.school.urn, member_id=member.pk)


# --- likely duplicates ----------------------------------------------------------------------


@staff_view()
def duplicates(request: StaffRequest) -> HttpResponse:
    rows = list(
        LikelyDuplicate.objects.filter(school=request.school, resolved_at__isnull=True)
        .select_related("adult", "other")
        .order_by("created_at", "pk")
    )
    adult_ids = {r.adult_id for r in rows} | {r.other_id for r in rows}
    linked: dict[int, list[Member]] = {}
    for link in (
        Link.objects.filter(adult_id__in=adult_ids)
        .select_related("student")
        .order_by("student__surname", "student__forename", "pk")
    ):
        linked.setdefault(link.adult_id, []).append(link.student)
    pairs = [
        {
            "row": r,
            "shared": [s for s in r.shared.split(",") if s],
            "people": [
                (r.adult, linked.get(r.adult_id, [])),
                (r.other, linked.get(r.other_id, [])),
            ],
        }
        for r in rows
    ]
    return render(request, "console/people_duplicates.html", _context(request, pairs=pairs))


@staff_view(methods=("POST",))
def duplicate_resolve(request: StaffRequest, duplicate: LikelyDuplicate) -> HttpResponse:
    try:
        services.duplicate_resolve_not_same(duplicate=duplicate, actor=request.user)
    except ValidationError as error:
        refused(request, error)
    else:
        messages.success(
            request,
            f"Recorded: {_name(duplicate.adult)} and {_name(duplicate.other)} are not the same "
            "person.",
        )
    return redirect("console:duplicates", urn=request.school.urn)


# --- printing letters -----------------------------------------------------------------------


def _natural(text: str) -> tuple[tuple[int, int | str], ...]:
    # "7A" before "10A".
    return tuple(
        (0, int(part)) if part.isdigit() else (1, part)
        for part in re.split(r"(\d+)", text.casefold())
        if part
    )


def _letter_choices(school_id: int) -> tuple[list[str], list[str]]:
    """The years and registration groups of the school's current students."""
    students = Member.objects.filter(
        school_id=school_id, kind=Member.Kind.STUDENT, status=Member.Status.CURRENT
    )
    years = {y for y in students.values_list("year", flat=True).distinct() if y}
    groups = {g for g in students.values_list("reg_group", flat=True).distinct() if g}
    # Years in school order (Nursery, Reception, 1 … 13): as text, R would follow 11.
    return in_school_order(years), sorted(groups, key=_natural)


def _letters_filename(urn: str, data: dict[str, Any], day: dt.date) -> str:
    parts = ["letters", urn]
    if data.get("year"):
        parts.append(f"year-{data['year']}")
    if data.get("reg_group"):
        parts.append(f"group-{data['reg_group']}")
    if data.get("unregistered_only"):
        parts.append("unregistered")
    if len(parts) == 2:
        parts.append("all")
    parts.append(day.strftime("%Y%m%d"))
    return "-".join(slugify(p) or "x" for p in parts) + ".pdf"


@staff_view(methods=("GET", "HEAD", "POST"))
def letters(request: StaffRequest) -> HttpResponse:
    """Print security letters for a set of current students, one page each, as one PDF."""
    years, groups = _letter_choices(request.school.pk)
    if request.method != "POST":
        form = LettersForm(years=years, reg_groups=groups)
        return render(request, "console/letters.html", _context(request, form=form))
    form = LettersForm(request.POST, years=years, reg_groups=groups)
    if form.is_valid():
        data = form.cleaned_data
        try:
            issued = letters_issue(
                school=request.school,
                year=data["year"] or None,
                reg_group=data["reg_group"] or None,
                unregistered_only=data["unregistered_only"],
                actor=_actor(request),
            )
        except NoStudents as nobody:
            form.add_error(None, sentence(str(nobody)))
        except ValidationError as error:
            form_refused(form, error)
        else:
            filename = _letters_filename(request.school.urn, data, timezone.localdate())
            return _pdf(issued.pdf, filename)
    return render(request, "console/letters.html", _context(request, form=form), status=400)


# --- settings -------------------------------------------------------------------------------


@staff_view(methods=("GET", "HEAD", "POST"))
def school_settings(request: StaffRequest) -> HttpResponse:
    school = request.school
    initial = {
        "name": school.name,
        "import_lower_priority": school.import_lower_priority,
        "code_expiry_days": school.code_expiry_days,
        "sms_sender": school.sms_sender,
        "phone_region": school.phone_region,
        "large_send_threshold": school.large_send_threshold,
        "require_second_factor": school.require_second_factor,
        # As the office would type it; saving it unchanged stores the same E.164 number.
        "office_phone": for_display(school.office_phone, school.phone_region),
    }
    has_logo = SchoolLogo.objects.filter(school=school).exists()
    if request.method != "POST":
        form = SettingsForm(initial=initial)
        return render(
            request, "console/settings.html", _context(request, form=form, has_logo=has_logo)
        )
    form = SettingsForm(request.POST, request.FILES, initial=initial)
    if form.is_valid():
        try:
            values = dict(form.cleaned_data)
            required = values.pop("require_second_factor")
            logo, remove_logo = values.pop("logo"), values.pop("remove_logo")
            with transaction.atomic():
                school_update(school=school, actor=_actor(request), **values)
                if logo is not None or remove_logo:
                    school_logo_set(school=school, logo=logo, actor=_actor(request))
                otp.school_require_second_factor(
                    school=school, required=required, actor=request.user
                )
        except ValidationError as error:
            form_refused(form, error)
        else:
            changed = form.has_changed()
            messages.success(request, "Settings saved." if changed else "Nothing was changed.")
            return redirect("console:settings", urn=school.urn)
    return render(
        request,
        "console/settings.html",
        _context(request, form=form, has_logo=has_logo),
        status=400,
    )
