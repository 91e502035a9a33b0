"""The console's privacy notice page (administrators): edit the notice (each save a new
version), read earlier versions, and send the notice to adults from the MIS not yet told."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect, render

from homelink.console.notices.forms import NoticeForm
from homelink.console.permissions import StaffRequest, staff_view
from homelink.console.refusals import form_refused, refused
from homelink.privacy import notices
from homelink.staff.models import Role


def _context(request: StaffRequest, form: NoticeForm) -> dict[str, object]:
    school = request.school
    current = notices.notice_current(school)
    versions = list(notices.notice_versions(school))
    shown = current
    asked = request.GET.get("version", "")
    if asked.isdigit():
        shown = next((v for v in versions if str(v.version) == asked), current)
    return {
        "school": school,
        "membership": request.membership,
        "form": form,
        "current": current,
        "shown": shown,
        "versions": versions,
        "untold": notices.untold_count(school),
        "plan": notices.first_contact_plan(school),
        "enabled": notices.enabled(),
    }


@staff_view(min_role=Role.ADMINISTRATOR, methods=("GET", "HEAD", "POST"))
def notice_page(request: StaffRequest) -> HttpResponse:
    school = request.school
    if request.method != "POST":
        form = NoticeForm(initial={"text": notices.notice_current(school).text})
        return render(request, "console/notices.html", _context(request, form))
    form = NoticeForm(request.POST)
    if form.is_valid():
        try:
            saved = notices.notice_publish(
                school=school, text=form.cleaned_data["text"], actor=request.user
            )
        except ValidationError as error:
            form_refused(form, error)
        else:
            messages.success(request, f"Version {saved.version} of the notice is published.")
            return redirect("console:notices", urn=school.urn)
    return render(request, "console/notices.html", _context(request, form), status=400)


@staff_view(min_role=Role.ADMINISTRATOR, methods=("POST",))
def notice_send(request: StaffRequest) -> HttpResponse:
    """Send the notice to everyone not yet told (the same as ``homelink privacy notify``)."""
    school = request.school
    try:
        result = notices.notify_untold(school=school, actor=request.user, via="console")
    except ValidationError as error:
        refused(request, error)
    else:
        if result.message is None:
            messages.info(
                request, "Nobody needs the notice: every adult from the MIS has been told."
            )
        else:
            messages.success(
                request,
                f"The notice is queued: {result.plan.email:,} by email, {result.plan.sms:,} by SMS.",
            )
            return redirect("console:message", urn=school.urn, message_id=result.message.pk)
    return redirect("console:notices", urn=school.urn)


# For the separation test: an administrator's POST here changes something only when the school
# has adults from the MIS not yet told who can be reached.
notice_send.console_post_needs = "adults from the MIS not yet told"  # type: ignore[attr-defined]
