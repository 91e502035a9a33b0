"""Subject access in the console: the action on a member's page and on each adult's card that
logs a request and downloads everything held about the person, and the data protection page
that lists the requests until they are marked complete. Administrators only; thin over
:mod:`homelink.privacy.sar`."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Min
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone

from homelink.console.permissions import StaffRequest, staff_view
from homelink.console.sar.forms import ReceivedForm, RequestForm
from homelink.privacy import sar as service
from homelink.privacy.models import SubjectAccessRequest
from homelink.register.models import Adult, Link, Member
from homelink.staff.models import Role


@dataclass(frozen=True)
class Row:
    request: SubjectAccessRequest
    who: str
    kind: str
    #: The member page that shows the person (an adult's first linked student's), if any.
    member_id: int | None
    overdue: bool


def _rows(requests: list[SubjectAccessRequest]) -> list[Row]:
    adult_ids = [r.adult_id for r in requests if r.adult_id is not None]
    first_student = dict(
        Link.objects.filter(adult_id__in=adult_ids)
        .values("adult_id")
        .annotate(first=Min("student_id"))
        .values_list("adult_id", "first")
    )
    today = timezone.localdate()
    rows = []
    for r in requests:
        if r.adult_id is not None:
            kind, member_id = "linked adult", first_student.get(r.adult_id)
        elif r.member is not None:
            kind, member_id = r.member.get_kind_display(), r.member_id
        else:
            kind, member_id = "—", None
        rows.append(
            Row(
                r,
                service.subject_label(r),
                kind,
                member_id,
                r.completed_at is None and r.due_on < today,
            )
        )
    return rows


@staff_view(min_role=Role.ADMINISTRATOR)
def sar(request: StaffRequest) -> HttpResponse:
    """The school's subject access requests: open ones, soonest due first, and the last done."""
    return render(
        request,
        "console/sar.html",
        {
            "school": request.school,
            "membership": request.membership,
            "open": _rows(list(service.open_requests(request.school))),
            "done": _rows(service.recently_completed(request.school)),
        },
    )


def _zip(export: service.SarExport) -> HttpResponse:
    response = HttpResponse(export.content, content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{export.filename}"'
    response["Cache-Control"] = "no-store"
    return response


def _refused(request: StaffRequest, error: ValidationError) -> HttpResponse:
    for message in error.messages:
        messages.error(request, message)
    return redirect("console:sar", urn=request.school.urn)


def _log_and_download(
    request: StaffRequest, *, adult: Adult | None = None, member: Member | None = None
) -> HttpResponse:
    form = ReceivedForm(request.POST)
    if not form.is_valid():
        return _refused(
            request, ValidationError([str(e) for e in form.errors.get("received_on", [])])
        )
    try:
        with transaction.atomic():
            logged = service.sar_log(
                school=request.school,
                actor=request.user,
                adult=adult,
                member=member,
                received_on=form.cleaned_data["received_on"],
            )
            export = service.sar_export(request=logged, actor=request.user, via="console")
    except ValidationError as error:
        return _refused(request, error)
    return _zip(export)


@staff_view(methods=("POST",))
def member_sar(request: StaffRequest, member: Member) -> HttpResponse:
    """Log a subject access request from a student or member of staff and download the zip."""
    return _log_and_download(request, member=member)


@staff_view(methods=("POST",))
def adult_sar(request: StaffRequest, adult: Adult) -> HttpResponse:
    """Log a subject access request from a linked adult and download the zip."""
    return _log_and_download(request, adult=adult)


def _posted_request(request: StaffRequest) -> SubjectAccessRequest | HttpResponse:
    form = RequestForm(request.POST)
    if not form.is_valid():
        return HttpResponse(
            "Choose a request from the list.", status=400, content_type="text/plain"
        )
    found = service.sar_request(request.school, form.cleaned_data["request"])
    if found is None:
        raise Http404("no such request")
    return found


@staff_view(methods=("POST",))
def sar_download(request: StaffRequest) -> HttpResponse:
    """The export of a logged request again (a new download, audited like the first)."""
    found = _posted_request(request)
    if isinstance(found, HttpResponse):
        return found
    try:
        export = service.sar_export(request=found, actor=request.user, via="console")
    except ValidationError as error:
        return _refused(request, error)
    return _zip(export)


@staff_view(methods=("POST",))
def sar_complete(request: StaffRequest) -> HttpResponse:
    found = _posted_request(request)
    if isinstance(found, HttpResponse):
        return found
    try:
        service.sar_complete(request=found, actor=request.user)
    except ValidationError as error:
        return _refused(request, error)
    messages.success(request, f"Marked complete: the request from {service.subject_label(found)}.")
    return redirect("console:sar", urn=request.school.urn)
