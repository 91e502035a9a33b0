"""Imports in the browser: upload, preview, apply or discard, the history of import runs, and
the scheduled sync that imports by itself.

The import itself runs in the background worker (:mod:`homelink.mis.tasks`); these pages ask
:mod:`homelink.mis.runs` to store the file and queue the work, and show the run as the worker
writes it. Statuses a console user meets: ``queued`` (waiting for the worker), ``running`` (with
progress), ``preview``, ``stopped`` (the leavers guard), ``applied``, ``failed`` (including
"another import is running", ``options["busy"]``), ``discarded`` (a preview whose file was
deleted unapplied) and ``unchanged`` (a sync whose source had nothing new).

A scheduled sync (:mod:`homelink.sync`) makes runs of the same kinds in the same history; a
file of its that a guard stopped waits here for the same decision as an upload. Everyone on the staff sees the
sync's state; only administrators set it (the school's own drop folder, never a path from the
browser; or a OneRoster API, whose secret is never sent back), change its time, remove it or run
it now, each through a service of :mod:`homelink.sync.services`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils import timezone

from homelink.console.imports.forms import (
    ImportUploadForm,
    SyncFolderForm,
    SyncForm,
    SyncOneRosterForm,
    SyncRemoveForm,
    SyncTimeForm,
)
from homelink.console.permissions import StaffRequest, staff_view
from homelink.console.refusals import refused, sentence
from homelink.mis import runs
from homelink.mis.issues import field_label, issue_kind, reason_label, what_label
from homelink.mis.models import ImportRun
from homelink.mis.runs import FORMAT_LABELS
from homelink.mis.uploads import found_busy, may_act, refused_as_another_schools
from homelink.staff.models import Role
from homelink.sync.models import DEFAULT_AT, SyncSource
from homelink.sync.selectors import SyncStatus, sync_status
from homelink.sync.services import (
    school_drop_folder,
    sync_remove,
    sync_run_soon,
    sync_set_folder,
    sync_set_oneroster,
    sync_set_time,
)

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
    ImportRun.Status.UNCHANGED: "No changes",
}
#: What a sync's source said about a run (``Fetched.detail``), in the office's words; any other
#: entry is shown under its own name, and "mode" is said by "full".
SYNC_DETAIL_LABELS = {
    "version": "OneRoster version",
    "pages": "Pages fetched",
    "since": "Changes since",
    "modified": "File last changed",
    "bytes": "File size",
    "superseded": "Older files set aside",
}
#: A OneRoster sync's record counts, shown as one row: (key, one, many).
SYNC_RECORDS = [
    ("orgs", "organisation", "organisations"),
    ("classes", "class", "classes"),
    ("users", "user", "users"),
    ("enrollments", "enrolment", "enrolments"),
]
SYNC_NOT_SHOWN = {"full", "mode", "changed", "students", *(key for key, _, _ in SYNC_RECORDS)}
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


def duration_label(seconds: float | None) -> str:
    """How long a run took, as the office reads it: "12 s", "3 min", "1 h 5 min"."""
    if seconds is None:
        return ""
    if seconds < 1:
        return "under 1 s"
    if round(seconds) < 60:
        return f"{round(seconds)} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, rest = divmod(minutes, 60)
    return f"{hours} h {rest} min" if rest else f"{hours} h"


def started_label(run: ImportRun) -> str:
    """Who or what started a run: "Scheduled", or "By hand (office@…)"."""
    if run.trigger == ImportRun.Trigger.SCHEDULED:
        return str(run.get_trigger_display())
    if run.started_by is not None:
        who = run.started_by.email or run.started_by.get_username()
    elif run.started_via in ("cli", "sync"):
        who = "the command line"
    elif run.started_via == "demo":
        who = "the demo"
    else:
        who = run.started_via
    return f"{run.get_trigger_display()} ({who})"


def _issue_total(summary: dict[str, Any]) -> int:
    counts = summary.get("data_issues")
    if not isinstance(counts, dict):
        return 0
    return sum(n for n in counts.values() if isinstance(n, int))


def _waiting_decisions(school: Any) -> list[dict[str, Any]]:
    """Runs whose stored file waits for an administrator: stopped by the leavers guard, or
    refused as another school's (an upload's or a scheduled sync's, the same decision)."""
    candidates = (
        ImportRun.objects.filter(
            school=school,
            followed_by__isnull=True,
            status__in=[ImportRun.Status.STOPPED, ImportRun.Status.FAILED],
        )
        .exclude(upload="")
        .order_by("-started_at", "-pk")
    )
    waiting = []
    for run in candidates:
        if not may_act(run):
            continue
        if run.status == ImportRun.Status.STOPPED:
            left = int(((run.summary or {}).get("students") or {}).get("left") or 0)
            why = f"stopped: it would mark {left} student{'s' if left != 1 else ''} as left"
        elif refused_as_another_schools(run):
            why = "refused: the file names another school"
        else:
            continue
        waiting.append({"run": run, "why": why})
    return waiting


def _sync_forms(status: SyncStatus, bound: SyncForm | None) -> dict[str, SyncForm]:
    """The sync's forms for an administrator: the one just posted as it was, the rest fresh
    (the OneRoster form shows the stored address and client id, never the secret)."""
    config = status.config
    at = config.at if config is not None else DEFAULT_AT
    oneroster: dict[str, Any] = {"at": at}
    if config is not None and config.kind == SyncSource.Kind.ONEROSTER:
        oneroster.update(url=config.url, token_url=config.token_url, client_id=config.client_id)
    forms: dict[str, SyncForm] = {
        "folder": SyncFolderForm(initial={"at": at}),
        "oneroster": SyncOneRosterForm(initial=oneroster),
        "time": SyncTimeForm(initial={"at": at}),
        "remove": SyncRemoveForm(),
    }
    if bound is not None:
        forms[str(bound.prefix)] = bound
    return forms


def sync_problem(status: SyncStatus) -> str:
    """Why the sync's last attempt did not succeed, as a sentence; "" when it did. An
    administrator's decision on a file the sync stopped clears it (sync_status notes it)."""
    config = status.config
    if config is None or not config.last_error:
        return ""
    return sentence(config.last_error)


def _sync_context(request: StaffRequest, bound: SyncForm | None) -> dict[str, Any]:
    status = sync_status(request.school)
    config = status.config
    context: dict[str, Any] = {
        "sync": status,
        "sync_config": config,
        "sync_problem": sync_problem(status),
        "sync_hours": settings.HOMELINK_SYNC_STALE_HOURS,
        "drop_folder": str(school_drop_folder(request.school)),
        # Closed until asked for, so a school that imports by hand is not shown five forms;
        # open again with the one that was refused.
        "sync_open": bound is not None,
    }
    if request.membership.can(Role.ADMINISTRATOR):
        context["sync_forms"] = _sync_forms(status, bound)
    return context


def _page(
    request: StaffRequest,
    *,
    form: ImportUploadForm | None = None,
    sync_form: SyncForm | None = None,
    status: int = 200,
) -> HttpResponse:
    """The imports page: the scheduled sync, the upload form and the history."""
    page = _history(request)
    return render(
        request,
        "console/imports.html",
        {
            "school": request.school,
            "membership": request.membership,
            "form": form or ImportUploadForm(),
            "can_import": request.membership.can(Role.ADMINISTRATOR),
            "busy": ImportRun.objects.filter(
                school=request.school,
                status__in=[ImportRun.Status.RUNNING, ImportRun.Status.QUEUED],
                followed_by__isnull=True,
            ).exists(),
            "waiting_decisions": _waiting_decisions(request.school),
            **_sync_context(request, sync_form),
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
                    "source": run.get_source_display(),
                    "started": started_label(run),
                    "duration": duration_label(run.duration),
                    "issues": _issue_total(run.summary or {}),
                }
                for run in page.object_list
            ],
        },
        status=status,
    )


@staff_view(methods=("GET", "HEAD", "POST"))
def imports(request: StaffRequest) -> HttpResponse:
    """The history of the school's import runs, the scheduled sync, and (administrators) the
    upload form."""
    if request.method == "POST":
        form = ImportUploadForm(request.POST, request.FILES)
        if form.is_valid():
            run = _start(request, form)
            if run is not None:
                return _run_url(run)
        return _page(request, form=form, status=400)
    return _page(request)


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
            "source_label": run.get_source_display(),
            "started": started_label(run),
            "duration": duration_label(run.duration),
            "from_sync": run.source in (ImportRun.Source.FOLDER, ImportRun.Source.ONEROSTER_API),
            # A sync that could not fetch anything: no file was read, so none was deleted.
            "fetch_failed": run.status == ImportRun.Status.FAILED
            and run.started_via == "sync"
            and not run.format,
            "unchanged": str(summary.get("unchanged") or ""),
            "sync_detail": sync_detail(run),
        },
    )
    if waiting:
        # The page reloads itself until the worker is done (no JavaScript). A Refresh header
        # rather than <meta http-equiv> in the body, which base.html's <head> has no room for.
        response["Refresh"] = str(REFRESH_SECONDS)
    return response


def _detail_value(key: str, value: Any) -> str:
    if key == "bytes" and isinstance(value, int):
        return str(filesizeformat(value))
    if key in ("modified", "since") and isinstance(value, str):
        try:
            moment = dt.datetime.fromisoformat(value)
        except ValueError:
            return value
        if moment.tzinfo is not None:
            moment = timezone.localtime(moment)
        return f"{moment.day} {moment:%b %Y %H:%M}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value)


def _counted(n: int, one: str, many: str) -> str:
    return f"{n:,} {one if n == 1 else many}"


def sync_detail(run: ImportRun) -> list[tuple[str, str]]:
    """What the sync's source said about the run: for a OneRoster API, full or delta, pages
    and records; for a drop folder, the file's time and size."""
    detail = (run.options or {}).get("sync") or (run.summary or {}).get("sync")
    if not isinstance(detail, dict):
        return []
    rows = []
    if run.source == ImportRun.Source.ONEROSTER_API and "full" in detail:
        rows.append(
            (
                "Kind of sync",
                "Full: everyone on roll (students missing from it may be marked as left)"
                if detail["full"]
                else "Changes since the last sync only (nobody is marked as left)",
            )
        )
    records = [
        _counted(detail[key], one, many)
        for key, one, many in SYNC_RECORDS
        if isinstance(detail.get(key), int)
    ]
    if records:
        rows.append(("Records fetched", ", ".join(records)))
    if isinstance(detail.get("changed"), int):
        changed = _counted(detail["changed"], "person", "people")
        if isinstance(detail.get("students"), int):
            changed += f" ({_counted(detail['students'], 'student', 'students')})"
        rows.append(("Changed since the last sync", changed))
    for key, value in detail.items():
        if key in SYNC_NOT_SHOWN or value in (None, "", [], {}):
            continue
        label = SYNC_DETAIL_LABELS.get(key, key.replace("_", " ").capitalize())
        rows.append((label, _detail_value(key, value)))
    return rows


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


# --- the scheduled sync ----------------------------------------------------------------------


def _sync_saved(request: StaffRequest, text: str) -> HttpResponse:
    messages.success(request, text)
    return HttpResponseRedirect(
        reverse("console:imports", kwargs={"urn": request.school.urn}) + "#sync"
    )


def _sync_refused(request: StaffRequest, form: SyncForm) -> HttpResponse:
    return _page(request, sync_form=form, status=400)


def _nightly(config: SyncSource) -> str:
    return f"every night at {config.at:%H:%M}"


@staff_view(methods=("POST",))
def sync_folder(request: StaffRequest) -> HttpResponse:
    """Sync from the school's own drop folder (the server's path for it, never one posted)."""
    form = SyncFolderForm(request.POST)
    if not form.is_valid():
        return _sync_refused(request, form)
    try:
        config = sync_set_folder(
            school=request.school,
            folder=school_drop_folder(request.school),
            at=form.cleaned_data["at"],
            actor_label="console",
            user=_user(request),
        )
    except ValidationError as error:
        form.refuse(error)
        return _sync_refused(request, form)
    return _sync_saved(
        request,
        f"Saved: the register is updated from the drop folder {config.folder} {_nightly(config)}.",
    )


@staff_view(methods=("POST",))
def sync_oneroster(request: StaffRequest) -> HttpResponse:
    """Sync from a OneRoster API; a blank secret keeps the stored one where the service allows."""
    form = SyncOneRosterForm(request.POST)
    if not form.is_valid():
        return _sync_refused(request, form)
    data = form.cleaned_data
    try:
        config = sync_set_oneroster(
            school=request.school,
            url=data["url"],
            token_url=data["token_url"],
            client_id=data["client_id"],
            secret=data["secret"] or None,
            at=data["at"],
            actor_label="console",
            user=_user(request),
        )
    except ValidationError as error:
        form.refuse(error)
        return _sync_refused(request, form)
    return _sync_saved(
        request,
        f"Saved: the register is updated from the OneRoster API at {config.url} "
        f"{_nightly(config)}. The client secret is stored encrypted and is not shown again.",
    )


@staff_view(methods=("POST",))
def sync_time(request: StaffRequest) -> HttpResponse:
    """Change the time of the school's sync, keeping its source as it is."""
    form = SyncTimeForm(request.POST)
    if not form.is_valid():
        return _sync_refused(request, form)
    try:
        config = sync_set_time(
            school=request.school,
            at=form.cleaned_data["at"],
            actor_label="console",
            user=_user(request),
        )
    except ValidationError as error:
        form.refuse(error)
        return _sync_refused(request, form)
    return _sync_saved(request, f"Saved: the sync runs {_nightly(config)}.")


@staff_view(methods=("POST",))
def sync_remove_view(request: StaffRequest) -> HttpResponse:
    """Stop the school's scheduled sync, once the box is ticked (its history stays)."""
    form = SyncRemoveForm(request.POST)
    if not form.is_valid():
        return _sync_refused(request, form)
    if not sync_remove(school=request.school, actor_label="console", user=_user(request)):
        form.refuse(ValidationError("There is no scheduled sync to remove."))
        return _sync_refused(request, form)
    return _sync_saved(
        request,
        "The scheduled sync was removed: the register now changes only when someone imports "
        "a file. Its imports stay in the history.",
    )


@staff_view(methods=("POST",))
def sync_run_now(request: StaffRequest) -> HttpResponse:
    """Queue the school's sync for the worker to run now (the schedule stays as it is)."""
    try:
        sync_run_soon(school=request.school, user=_user(request))
    except ValidationError as error:
        refused(request, error)
        response = HttpResponseRedirect(
            reverse("console:imports", kwargs={"urn": request.school.urn}) + "#sync"
        )
        response.status_code = 303
        return response
    return _sync_saved(
        request,
        "The sync will run in a moment: its import appears in the history below (reload the "
        "page to see it).",
    )


# What a POST of these pages needs beyond a plain form (the separation test's admin walk posts
# the same few fields to every page and cannot supply them): a declared reason, for that test.
imports.console_post_needs = "a file upload"  # type: ignore[attr-defined]
for _view in (import_apply, import_force, import_retry, import_discard):
    _view.console_post_needs = "a run with a stored file in the right state"  # type: ignore[attr-defined]
sync_run_now.console_post_needs = "a school with a scheduled sync"  # type: ignore[attr-defined]
