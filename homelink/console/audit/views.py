"""The audit trail and the records of processing: administrators only (the trail says who
looked at whom, and the records are the school's data-protection paperwork)."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import Any

from django.http import HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.utils import timezone

from homelink.audit.actions import AUDIT_EXPORTED, action_words
from homelink.audit.selectors import (
    CSV_HEADER,
    AuditFilter,
    audit_csv_rows,
    audit_events,
    audit_page,
)
from homelink.audit.services import audit_access
from homelink.console.audit.forms import AuditFilterForm
from homelink.console.permissions import StaffRequest, staff_view
from homelink.privacy.records import (
    processing_summary,
    purge_sentence,
    records_export,
    requests_sentence,
)
from homelink.staff.models import Role


def _context(request: StaffRequest, **extra: Any) -> dict[str, Any]:
    return {"school": request.school, "membership": request.membership, **extra}


def _before(request: StaffRequest) -> int | None:
    raw = request.GET.get("before", "")
    return int(raw) if raw.isdigit() and len(raw) < 19 else None


def _filter(request: StaffRequest) -> tuple[AuditFilterForm, AuditFilter | None]:
    """The form and its filter (the whole trail when nothing is chosen; None when the choice
    is not valid)."""
    form = AuditFilterForm(request.GET or None, school=request.school)
    if not form.is_bound:
        return form, AuditFilter()
    return form, form.chosen() if form.is_valid() else None


def _refused(request: StaffRequest, form: AuditFilterForm) -> HttpResponse:
    return render(
        request, "console/audit.html", _context(request, form=form, page=None), status=400
    )


@staff_view(min_role=Role.ADMINISTRATOR)
def audit_trail(request: StaffRequest) -> HttpResponse:
    form, chosen = _filter(request)
    if chosen is None:
        return _refused(request, form)
    page = audit_page(request.school, chosen, before=_before(request))
    query = request.GET.copy()
    query.pop("before", None)
    return render(
        request,
        "console/audit.html",
        _context(
            request,
            form=form,
            page=page,
            chosen=chosen,
            rows=[
                (e, page.names.get(e.actor_label, e.actor_label), action_words(e.action))
                for e in page.events
            ],
            query=query.urlencode(),
        ),
    )


class _Echo:
    """A file that hands back what is written to it: csv.writer's rows as strings to stream."""

    def write(self, value: str) -> str:
        return value


def _csv_cell(value: Any) -> Any:
    # A spreadsheet runs a cell that starts like a formula: everything here stays text.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


@staff_view(min_role=Role.ADMINISTRATOR)
def audit_csv(request: StaffRequest) -> HttpResponseBase:
    """The filtered trail as CSV, newest first; the export is itself a row of the trail (and
    not in the file it makes)."""
    form, chosen = _filter(request)
    if chosen is None:
        return _refused(request, form)
    events = audit_events(request.school, chosen)
    if request.method == "GET":  # a HEAD takes no data away
        export = audit_access(
            school=request.school,
            actor=request.user,
            action=AUDIT_EXPORTED,
            detail={"rows": events.count(), "format": "csv", "filter": chosen.describe()},
        )
        events = events.filter(pk__lt=export.pk)
    writer = csv.writer(_Echo())
    school = request.school

    def lines() -> Iterator[str]:
        # The byte-order mark tells spreadsheets the file is UTF-8.
        yield "\ufeff" + writer.writerow(CSV_HEADER)
        for row in audit_csv_rows(events, school):
            yield writer.writerow([_csv_cell(v) for v in row])

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    day = timezone.localdate().strftime("%Y%m%d")
    response["Content-Disposition"] = f'attachment; filename="audit-{school.urn}-{day}.csv"'
    response["Cache-Control"] = "no-store"
    return response


@staff_view(min_role=Role.ADMINISTRATOR)
def records(request: StaffRequest) -> HttpResponse:
    summary = processing_summary(request.school)
    return render(
        request,
        "console/records.html",
        _context(
            request,
            summary=summary,
            requests_text=requests_sentence(summary),
            purge_text=purge_sentence(summary),
        ),
    )


@staff_view(min_role=Role.ADMINISTRATOR)
def records_pdf(request: StaffRequest) -> HttpResponse:
    if request.method == "HEAD":  # a HEAD takes no data away: no PDF, no audit row
        response = HttpResponse(content_type="application/pdf")
    else:
        response = HttpResponse(
            records_export(school=request.school, actor=request.user),
            content_type="application/pdf",
        )
    day = timezone.localdate().strftime("%Y%m%d")
    response["Content-Disposition"] = (
        f'attachment; filename="records-of-processing-{request.school.urn}-{day}.pdf"'
    )
    response["Cache-Control"] = "no-store"
    return response
