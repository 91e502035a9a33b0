"""Imports in the browser: upload, preview, apply or discard, and the history of import runs.

The import itself runs in the background worker (:mod:`homelink.mis.tasks`); these pages ask
:mod:`homelink.mis.runs` to store the file and queue the work, and show the run as the worker
writes it. Statuses a console user meets: ``queued`` (waiting for the worker), ``running`` (with
progress), ``preview``, ``stopped`` (the leavers guard), ``applied``, ``failed`` (including
"another import is running", ``options["busy"]``) and ``discarded`` (a preview whose file was
deleted unapplied).
"""

from __future__ import annotations

from typing import Any, cast

from django.contrib import messages
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import HttpResponse
from django.shortcuts import redirect, render

from homelink.console.imports.forms import ImportUploadForm
from homelink.console.permissions import StaffRequest, staff_view
from homelink.console.refusals import refused
from homelink.mis import runs
from homelink.mis.issues import field_label, issue_kind, reason_label, what_label
from homelink.mis.models import ImportRun
from homelink.mis.runs import FORMAT_LABELS
from homelink.mis.uploads import found_busy, may_act, refused_as_another_schools
from homelink.staff.models import Role

HISTORY_PAGE_SIZE = 25
#: Itemised entries shown per kind of change (the run keeps more).
DETAILS_SHOWN = 50
ISSUES_SHOWN = 100
REFRESH_SECONDS = 2

STATUS_LABELS = {
    ImportRun.Status.QUEUED: "Waiting for the worker",
    ImportRun.Status.RUNNING: "Running",
    ImportRun.Status.PREVIEW: "Preview",
    ImportRun.Status.APPLIED: "Applied",
    ImportRun.Status.STOPPED: "Stopped: needs confirmation",
    ImportRun.Status.FAILED: "Failed",
    ImportRun.Status.DISCARDED: "Discarded",
}
#: The itemised changes, in the order the page shows them.
ACTIONS = [
    ("create", "Created"),
    ("update", "Updated"),
    ("remove", "Removed"),
    ("left", "Marked as left"),
    ("rejoin", "Back on roll"),
    ("skip", "Skipped"),
]
GROUPS = [("students", "Students"), ("staff", "Staff"), ("adults", "Adults"), ("links", "Links")]
COLUMNS = ["created", "updated", "unchanged", "rejoined", "left", "removed", "skipped"]


def _user(request: StaffRequest) -> User:
    """The signed-in user (staff_view let only a signed-in member of the school through)."""
    return cast(User, request.user)


def _run_url(run: ImportRun) -> HttpResponse:
    return redirect("console:import_run", urn=run.school.urn, run_id=run.pk)


def _history(request: StaffRequest) -> Any:
    # A request the worker has taken up is shown as the run it became.
    runs = (
        ImportRun.objects.filter(school=request.school)
        .exclude(Q(status=ImportRun.Status.QUEUED) & Q(followed_by__isnull=False))
        .select_related("started_by")
        .order_by("-started_at", "-pk")
    )
    return Paginator(runs, HISTORY_PAGE_SIZE).get_page(request.GET.get("page"))


def _counts(summary: dict[str, Any]) -> list[tuple[str, list[tuple[str, int]]]]:
    """Per group, the non-zero counts: [("Students", [("created", 3), ...]), ...]."""
    rows = []
    for key, label in GROUPS:
        group = summary.get(key)
        if isinstance(group, dict):
            rows.append((label, [(c, int(group[c])) for c in COLUMNS if group.get(c)]))
    return rows


@staff_view(methods=("GET", "HEAD", "POST"))
def imports(request: StaffRequest) -> HttpResponse:
    """The history of the school's import runs, and (administrators) the upload form."""
    status = 200
    if request.method == "POST":
        form = ImportUploadForm(request.POST, request.FILES)
        if form.is_valid():
            run = _start(request, form)
            if run is not None:
                return _run_url(run)
        status = 400
    else:
        form = ImportUploadForm()
    page = _history(request)
    return render(
        request,
        "console/imports.html",
        {
            "school": request.school,
            "membership": request.membership,
            "form": form,
            "can_import": request.membership.can(Role.ADMINISTRATOR),
            "busy": ImportRun.objects.filter(
                school=request.school,
                status__in=[ImportRun.Status.RUNNING, ImportRun.Status.QUEUED],
                followed_by__isnull=True,
            ).exists(),
            "page": page,
            "rows": [
                {
                    "run": run,
                    "changes": "; ".join(
                        f"{group}: {', '.join(f'{n} {name}' for name, n in values)}"
                        for group, values in _counts(run.summary)
                        if values
                    ),
                    "format": FORMAT_LABELS.get(run.format, run.format),
                    "status": STATUS_LABELS.get(ImportRun.Status(run.status), run.status),
                }
                for run in page.object_list
            ],
        },
        status=status,
    )


def _start(request: StaffRequest, form: ImportUploadForm) -> ImportRun | None:
    """Store the upload, record the request and queue its preview; None with a form error."""
    data = form.cleaned_data
    try:
        return runs.import_upload(
            school=request.school,
            user=_user(request),
            upload=data["file"],
            mapping=data.get("mapping"),
            file_format=data.get("format") or "",
            update_only=bool(data.get("update_only")),
        )
    except ValidationError as error:
        form.add_error(None, error)
        return None


def _details(summary: dict[str, Any]) -> list[dict[str, Any]]:
    details = summary.get("details") or {}
    sections = []
    for key, label in ACTIONS:
        entries = details.get(key) or []
        if entries:
            sections.append(
                {
                    "key": key,
                    "label": label,
                    "entries": [
                        {
                            "what": what_label(str(e.get("what", ""))),
                            "who": e.get("who", ""),
                            "reason": e.get("reason", ""),
                            "fields": ", ".join(field_label(f) for f in e.get("fields") or []),
                        }
                        for e in entries[:DETAILS_SHOWN]
                    ],
                    "more": len(entries) > DETAILS_SHOWN,
                }
            )
    return sections


def _issue_rows(run: ImportRun, summary: dict[str, Any]) -> dict[str, Any]:
    """The run's data issues in the office's words (mis/issues.py): per kind, its title, count
    and what to do; each itemised issue with its kind's title. Never the code itself."""
    counts = summary.get("data_issues") or {}
    kinds = [
        {"title": issue_kind(code).title, "advice": issue_kind(code).advice, "count": n}
        for code, n in sorted(counts.items(), key=lambda item: (-int(item[1]), item[0]))
    ]
    issues = [
        {**issue, "title": issue_kind(str(issue.get("kind", ""))).title}
        for issue in run.data_issues[:ISSUES_SHOWN]
    ]
    return {
        "issue_kinds": kinds,
        "issues": issues,
        "more_issues": len(run.data_issues) > ISSUES_SHOWN,
    }


@staff_view()
def import_run(request: StaffRequest, run: ImportRun) -> HttpResponse:
    """One run: waiting, progress, the preview with its actions, or what happened."""
    if run.status == ImportRun.Status.QUEUED and run.followed_by_id:
        followed = ImportRun.objects.filter(school=request.school, pk=run.followed_by_id).first()
        if followed is not None:
            return _run_url(followed)
    summary = run.summary or {}
    actionable = may_act(run)
    followed_by = (
        ImportRun.objects.filter(school=request.school, pk=run.followed_by_id).first()
        if run.followed_by_id
        else None
    )
    waiting = run.status in (ImportRun.Status.QUEUED, ImportRun.Status.RUNNING)
    response = render(
        request,
        "console/imports_run.html",
        {
            "school": request.school,
            "membership": request.membership,
            "run": run,
            "status_label": "Refused: another school's file"
            if refused_as_another_schools(run)
            else STATUS_LABELS.get(ImportRun.Status(run.status), run.status),
            "format_label": FORMAT_LABELS.get(run.format, run.format),
            "waiting": waiting,
            "percent": None if run.progress is None else round(run.progress * 100),
            "summary": summary,
            "counts": _counts(summary),
            "reasons": [
                (reason_label(key), n) for key, n in sorted((summary.get("reasons") or {}).items())
            ],
            **_issue_rows(run, summary),
            "details": _details(summary),
            "notes": summary.get("notes") or [],
            "can_act": request.membership.can(Role.ADMINISTRATOR),
            "can_apply": actionable and run.status == ImportRun.Status.PREVIEW,
            "can_confirm_leavers": actionable and run.status == ImportRun.Status.STOPPED,
            "can_retry": actionable and found_busy(run),
            "can_discard": actionable
            and (
                run.status in (ImportRun.Status.PREVIEW, ImportRun.Status.STOPPED)
                or found_busy(run)
                or refused_as_another_schools(run)
            ),
            "busy": found_busy(run),
            "another_school": refused_as_another_schools(run),
            "can_force": actionable and refused_as_another_schools(run),
            "forced": bool(run.options.get("force")),
            "followed_by": followed_by,
            "leaving": (summary.get("students") or {}).get("left", 0),
            "dry_run": bool(run.options.get("dry_run")),
        },
    )
    if waiting:
        # The page reloads itself until the worker is done (no JavaScript). A Refresh header
        # rather than <meta http-equiv> in the body, which base.html's <head> has no room for.
        response["Refresh"] = str(REFRESH_SECONDS)
    return response


def _refuse(request: StaffRequest, run: ImportRun, error: ValidationError) -> HttpResponse:
    refused(request, error)
    response = _run_url(run)
    response.status_code = 303
    return response


@staff_view(methods=("POST",))
def import_apply(request: StaffRequest, run: ImportRun) -> HttpResponse:
    """Queue the apply of a preview (or of a stopped run, marking the students left)."""
    try:
        apply = runs.import_apply(
            run=run,
            user=_user(request),
            leavers_confirmed=request.POST.get("confirm_leavers") == "1",
        )
    except ValidationError as error:
        return _refuse(request, run, error)
    return _run_url(apply)


@staff_view(methods=("POST",))
def import_force(request: StaffRequest, run: ImportRun) -> HttpResponse:
    """Preview again a file refused as another school's, importing it anyway (adds and updates
    only, like ``homelink import --force``)."""
    try:
        preview = runs.import_force(
            run=run,
            user=_user(request),
            confirmed=request.POST.get("confirm_other_school") == "1",
        )
    except ValidationError as error:
        return _refuse(request, run, error)
    return _run_url(preview)


@staff_view(methods=("POST",))
def import_retry(request: StaffRequest, run: ImportRun) -> HttpResponse:
    """Queue again a request that found another import running."""
    try:
        retried = runs.import_retry(run=run)
    except ValidationError as error:
        return _refuse(request, run, error)
    return _run_url(retried)


@staff_view(methods=("POST",))
def import_discard(request: StaffRequest, run: ImportRun) -> HttpResponse:
    """Delete the stored file of a preview (or stopped or busy run) without applying it."""
    try:
        discarded = runs.import_discard(run=run, user=_user(request))
    except ValidationError as error:
        return _refuse(request, run, error)
    messages.success(request, "Discarded: the file was deleted and nothing was imported.")
    return _run_url(discarded)


# What a POST of these pages needs beyond a plain form (the separation test's admin walk posts
# the same few fields to every page and cannot supply them): a declared reason, for that test.
imports.console_post_needs = "a file upload"  # type: ignore[attr-defined]
for _view in (import_apply, import_force, import_retry, import_discard):
    _view.console_post_needs = "a run with a stored file in the right state"  # type: ignore[attr-defined]
