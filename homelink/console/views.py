"""The console's front pages: the schools a user works for, and a school's dashboard. Each
area's pages are in its own package (members/, people/, imports/, messages/, staff/, otp/)."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone

from homelink.console.imports.views import sync_problem
from homelink.console.permissions import StaffRequest, staff_view
from homelink.messaging.selectors import delivery_summary
from homelink.mis.selectors import import_issues, last_applied_import
from homelink.privacy.notices import untold_count
from homelink.register.selectors import data_issues, reach
from homelink.staff.selectors import confirmed_memberships
from homelink.sync.selectors import sync_status


def home(request: HttpRequest) -> HttpResponse:
    """The schools the user works for; straight to the school when there is only one."""
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    # As staff_view: a membership of an account whose email is not confirmed grants nothing,
    # not even the school's name.
    memberships = list(
        confirmed_memberships()
        .filter(user=request.user)
        .select_related("school")
        .order_by("school__name")
    )
    if len(memberships) == 1:
        return redirect("console:dashboard", urn=memberships[0].school.urn)
    return render(request, "console/home.html", {"memberships": memberships})


@staff_view()
def dashboard(request: StaffRequest) -> HttpResponse:
    """How reachable the school is, and what the office should look at: how fresh the register
    is from the MIS (red when the scheduled sync has gone stale), the register's data issues,
    then the last applied import's."""
    school = request.school
    last_import = last_applied_import(school)
    sync = sync_status(school)
    issues = data_issues(school)
    if last_import is not None:
        issues.append(import_issues(school, last_import))
    return render(
        request,
        "console/dashboard.html",
        {
            "school": school,
            "membership": request.membership,
            "d": reach(school),
            "issues": issues,
            "delivery": delivery_summary(school, timezone.now()),
            "untold": untold_count(school),
            "sync": sync,
            "sync_problem": sync_problem(sync),
            "sync_hours": settings.HOMELINK_SYNC_STALE_HOURS,
        },
    )
