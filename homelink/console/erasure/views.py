"""Erasure and retention in the console (administrators): erase an adult at their request (with
the students it would leave unreachable named first), the school's erasures with lifting a
tombstone, and the retention periods with what a purge would remove now. Thin: the writes are
:mod:`homelink.privacy.erasure` and :mod:`homelink.privacy.retention`'s."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone

from homelink.console.erasure.forms import EraseForm, LiftForm, RetentionForm
from homelink.console.permissions import StaffRequest, staff_view
from homelink.privacy import erasure
from homelink.privacy.erasure import (
    ErasureRefused,
    erasure_preview,
    erasure_records,
    tombstone_lift,
)
from homelink.privacy.retention import (
    KINDS,
    cutoffs,
    retention_policy,
    retention_policy_set,
    retention_preview,
)
from homelink.register.models import Adult
from homelink.staff.models import Role

ADMIN = Role.ADMINISTRATOR


@staff_view(min_role=ADMIN, methods=("GET", "HEAD", "POST"))
def adult_erase(request: StaffRequest, adult: Adult) -> HttpResponse:
    preview = erasure_preview(adult=adult)
    form = EraseForm(
        request.POST if request.method == "POST" else None, unreachable=bool(preview.unreachable)
    )
    if request.method == "POST" and form.is_valid():
        try:
            result = erasure.adult_erase(
                adult=adult,
                actor=request.user,
                confirm_unreachable=form.cleaned_data["unreachable_ok"],
            )
        except ErasureRefused as error:
            form.add_error(None, error.messages[0])
        else:
            messages.success(
                request,
                f"{preview.name} was erased. {result.tombstones} tombstone(s) stop the MIS "
                "import from bringing them back; lift it here if they ask to be contacted "
                "again.",
            )
            return redirect("console:erasures", urn=request.school.urn)
    return render(
        request,
        "console/erasure_adult.html",
        {
            "school": request.school,
            "membership": request.membership,
            "adult": adult,
            "preview": preview,
            "form": form,
        },
        # A form sent back with its problems: nothing was changed.
        status=400 if request.method == "POST" else 200,
    )


def _erasures(request: StaffRequest, problem: str = "") -> HttpResponse:
    return render(
        request,
        "console/erasure_list.html",
        {
            "school": request.school,
            "membership": request.membership,
            "records": erasure_records(request.school),
            "problem": problem,
        },
        # A lift refused: the list again, with why, and nothing changed.
        status=400 if problem else 200,
    )


@staff_view(min_role=ADMIN)
def erasures(request: StaffRequest) -> HttpResponse:
    return _erasures(request)


@staff_view(min_role=ADMIN, methods=("POST",))
def erasure_lift(request: StaffRequest) -> HttpResponse:
    form = LiftForm(request.POST)
    if not form.is_valid():
        return _erasures(
            request, " ".join(str(m) for errors in form.errors.values() for m in errors)
        )
    try:
        tombstone_lift(
            school=request.school, erasure=form.cleaned_data["erasure"], actor=request.user
        )
    except ValidationError as error:
        return _erasures(request, error.messages[0].capitalize() + ".")
    else:
        messages.success(
            request,
            "Tombstone lifted: the next import brings the person back if the MIS lists them.",
        )
    return redirect("console:erasures", urn=request.school.urn)


@staff_view(min_role=ADMIN, methods=("GET", "HEAD", "POST"))
def retention(request: StaffRequest) -> HttpResponse:
    policy = retention_policy(request.school)
    initial = {
        "leavers_months": policy.leavers_months,
        "messages_months": policy.messages_months,
        "audit_years": policy.audit_years,
    }
    form = RetentionForm(request.POST if request.method == "POST" else None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            retention_policy_set(school=request.school, actor=request.user, **form.cleaned_data)
        except ValidationError as error:
            form.add_error(None, error.messages[0])
        else:
            messages.success(request, "Retention periods saved.")
            return redirect("console:retention", urn=request.school.urn)
    due = retention_preview(request.school)
    return render(
        request,
        "console/erasure_retention.html",
        {
            "school": request.school,
            "membership": request.membership,
            "form": form,
            "policy": policy,
            "cutoffs": cutoffs(policy, timezone.now()),
            "due": [(label, due[kind]) for kind, label in KINDS.items()],
            "last_purge": [
                (label, policy.last_purge.get(kind, 0)) for kind, label in KINDS.items()
            ],
        },
        status=400 if request.method == "POST" else 200,
    )
