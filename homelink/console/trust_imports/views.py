"""A trust's import of its OneRoster export: upload, say which school each unmapped org is,
each school's preview side by side, then apply (homelink/trusts/imports.py).

Thin: the writes are :mod:`homelink.trusts.imports`, and each school's part is that school's
ordinary console import, so its page in the school's console (linked from here) offers the
ordinary decisions: confirm the leavers, import anyway, try again, discard. One import is named
by its token (``?f=`` on the page, a hidden field in the forms): the page of an unknown token, or
of another trust's, is 404; a form posted with one goes back to the trust's imports, saying
there is no such import (as after a discard in another tab). Anyone not on the trust's staff
gets 404 from ``trust_view`` before any of that.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, cast

from django.contrib import messages
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from homelink.console.imports.views import COLUMNS, GROUPS, STATUS_LABELS
from homelink.console.permissions import TrustRequest, trust_view
from homelink.console.refusals import form_refused, refused, sentence
from homelink.console.trust_imports.forms import OrgMappingForm, TrustImportUploadForm
from homelink.mis.models import ImportRun
from homelink.schools.models import School
from homelink.staff.models import Role
from homelink.trusts import imports
from homelink.trusts.imports import SchoolPart, TrustImport
from homelink.trusts.selectors import role_at_least, trust_schools

REFRESH_SECONDS = 2
#: A part's outcome in the page's words (the statuses of the school's own imports page, and
#: the two kinds of failure that wait for a decision).
OUTCOME_LABELS = {
    **{str(status): label for status, label in STATUS_LABELS.items()},
    "preview": "Preview ready",
    "stopped": "Stopped by its leavers guard",
    "refused": "Refused: another school's file",
    "busy": "Not started: another import was running",
}


def _user(request: TrustRequest) -> User:
    return cast(User, request.user)


def _can_import(request: TrustRequest) -> bool:
    return role_at_least(request.trust_membership.role, Role.ADMINISTRATOR)


def _file_url(request: TrustRequest, token: str) -> str:
    url = reverse("console:trust_import_file", kwargs={"trust_id": request.trust.pk})
    return f"{url}?f={token}"


def _current(request: TrustRequest, token: str | None) -> TrustImport:
    found = imports.trust_import(request.trust, token or "")
    if found is None:
        raise Http404("no such import")
    return found


def _gone(request: TrustRequest) -> HttpResponse:
    """A form posted for an import the trust does not have (discarded meanwhile, or junk)."""
    messages.error(request, "There is no such import: it may have been discarded meanwhile.")
    return redirect("console:trust_import", trust_id=request.trust.pk)


def _changes(summary: dict[str, Any]) -> str:
    """ "Students: 3 created, 1 left; Adults: 4 created" (non-zero counts only)."""
    groups = []
    for key, label in GROUPS:
        counts = summary.get(key)
        if isinstance(counts, dict):
            values = [f"{int(counts[c])} {c}" for c in COLUMNS if counts.get(c)]
            if values:
                groups.append(f"{label}: {', '.join(values)}")
    return "; ".join(groups)


def _what_next(part: SchoolPart) -> str:
    """What the part waits for, in the school office's words."""
    school = part.school.name
    if part.stopped:
        return (
            f"{sentence(part.run.error)} It waits for a decision in {school}'s console: confirm "
            "the leavers and apply, or discard it. The other schools are not held up."
        )
    if part.refused:
        return f"{sentence(part.run.error)} {school}'s console can import it anyway, or discard it."
    if part.busy:
        return f"{sentence(part.run.error)} Try again from {school}'s console."
    if part.run.status == ImportRun.Status.FAILED:
        return sentence(part.run.error) or "The import failed: nothing was changed."
    if part.run.status == ImportRun.Status.RUNNING and part.run.progress is not None:
        return f"{part.run.progress:.0%} of the file read."
    return ""


def _part_rows(current: TrustImport) -> list[dict[str, Any]]:
    return [
        {
            "part": part,
            "status": OUTCOME_LABELS.get(part.outcome, part.outcome),
            "changes": _changes(part.run.summary or {}),
            "next": _what_next(part),
            "whole_roll": bool((part.run.summary or {}).get("whole_roll")),
        }
        for part in current.parts
    ]


def _tally(current: TrustImport) -> str:
    """ "3 schools: 2 applied, 1 stopped by its leavers guard"."""
    counts = Counter(OUTCOME_LABELS.get(p.outcome, p.outcome).lower() for p in current.parts)
    n = len(current.parts)
    return f"{n} school{'s' if n != 1 else ''}: " + ", ".join(
        f"{count} {label}" for label, count in counts.most_common()
    )


@trust_view(methods=("GET", "HEAD", "POST"))
def trust_import(request: TrustRequest) -> HttpResponse:
    """The trust's imports: the upload form (trust administrators) and the latest imports."""
    if request.method == "POST":
        return _upload(request)
    return _list_page(request, TrustImportUploadForm())


def _upload(request: TrustRequest) -> HttpResponse:
    form = TrustImportUploadForm(request.POST, request.FILES)
    if form.is_valid():
        try:
            found = imports.trust_import_upload(
                trust=request.trust, user=_user(request), upload=form.cleaned_data["file"]
            )
        except ValidationError as error:
            form_refused(form, error)
        else:
            current = _current(request, found.token)
            if not current.needs_mapping:
                # Every school's org is known: straight on to the schools' previews.
                try:
                    imports.trust_import_start(
                        trust=request.trust, user=_user(request), token=found.token
                    )
                except ValidationError as error:
                    refused(request, error)
            return redirect(_file_url(request, found.token))
    return _list_page(request, form, status=400)


def _list_page(
    request: TrustRequest, form: TrustImportUploadForm, *, status: int = 200
) -> HttpResponse:
    recent = imports.trust_imports_recent(request.trust)
    return render(
        request,
        "console/trust_import.html",
        {
            "trust": request.trust,
            "membership": request.trust_membership,
            "can_import": _can_import(request),
            "form": form,
            "schools": list(trust_schools(request.trust)),
            "recent": [
                {"import": item, "tally": _tally(item) if item.started else ""} for item in recent
            ],
        },
        status=status,
    )


def _free_schools(request: TrustRequest, current: TrustImport) -> list[School]:
    """The schools an unmapped org may be: those no other org of the file goes to."""
    taken = {p.school.pk for p in current.places if p.school is not None}
    return [s for s in trust_schools(request.trust) if s.pk not in taken]


def _file_page(
    request: TrustRequest,
    current: TrustImport,
    *,
    mapping_form: OrgMappingForm | None = None,
    status: int = 200,
) -> HttpResponse:
    schools = _free_schools(request, current)
    if mapping_form is None and current.needs_mapping and _can_import(request):
        mapping_form = OrgMappingForm(places=current.places, schools=schools)
    response = render(
        request,
        "console/trust_import_file.html",
        {
            "trust": request.trust,
            "membership": request.trust_membership,
            "can_import": _can_import(request),
            "current": current,
            "rows": _part_rows(current),
            "tally": _tally(current) if current.started else "",
            "mapping_form": mapping_form,
            "mapped": [p for p in current.places if p.school is not None],
            "unmapped": [p for p in current.places if p.school is None and not p.needs_mapping],
            "refresh": current.waiting,
        },
        status=status,
    )
    if current.waiting:
        # The page follows the worker until every school's preview (or apply) is done.
        response["Refresh"] = str(REFRESH_SECONDS)
    return response


@trust_view()
def trust_import_file(request: TrustRequest) -> HttpResponse:
    """One import: which school each org goes to, then each school's preview or outcome
    (without one named: the trust's imports)."""
    token = request.GET.get("f")
    if not token:
        return _list_page(request, TrustImportUploadForm())
    return _file_page(request, _current(request, token))


@trust_view(methods=("POST",))
def trust_import_start(request: TrustRequest) -> HttpResponse:
    """Record the schools chosen for the unmapped orgs, and start each school's preview."""
    token = request.POST.get("f", "")
    current = imports.trust_import(request.trust, token)
    if current is None:
        return _gone(request)
    form = OrgMappingForm(
        request.POST, places=current.places, schools=_free_schools(request, current)
    )
    if not form.is_valid():
        return _file_page(request, current, mapping_form=form, status=400)
    try:
        imports.trust_import_start(
            trust=request.trust, user=_user(request), token=token, decisions=form.decisions()
        )
    except ValidationError as error:
        form_refused(form, error)
        return _file_page(request, _current(request, token), mapping_form=form, status=400)
    return redirect(_file_url(request, token))


@trust_view(methods=("POST",))
def trust_import_apply(request: TrustRequest) -> HttpResponse:
    """Apply every school's preview that is ready (stopped schools wait for their own)."""
    token = request.POST.get("f", "")
    if imports.trust_import(request.trust, token) is None:
        return _gone(request)
    try:
        applied = imports.trust_import_apply(trust=request.trust, user=_user(request), token=token)
    except ValidationError as error:
        refused(request, error)
    else:
        n = len(applied)
        messages.success(
            request,
            f"Applying the previews of {n} school{'s' if n != 1 else ''}: each is written by the "
            "worker in turn.",
        )
    return redirect(_file_url(request, token))


@trust_view(methods=("POST",))
def trust_import_discard(request: TrustRequest) -> HttpResponse:
    """Discard every part of the import not applied yet (an upload never started: the file)."""
    token = request.POST.get("f", "")
    current = imports.trust_import(request.trust, token)
    if current is None:
        return _gone(request)
    try:
        n = imports.trust_import_discard(trust=request.trust, user=_user(request), token=token)
    except ValidationError as error:
        refused(request, error)
        return redirect(_file_url(request, token))
    if not current.started:
        messages.success(request, "Discarded: the file is deleted and nothing was imported.")
        return redirect("console:trust_import", trust_id=request.trust.pk)
    messages.success(
        request,
        f"Discarded the part of {n} school{'s' if n != 1 else ''} not applied: nothing of it "
        "was written.",
    )
    return redirect(_file_url(request, token))
