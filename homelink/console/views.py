"""The console's front pages: the schools a user works for, and a school's dashboard. Each
area's pages are in its own package (members/, people/, imports/, messages/, staff/, otp/)."""

from __future__ import annotations

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone

from homelink.console import selectors
from homelink.console.permissions import StaffRequest, staff_view
from homelink.messaging.selectors import delivery_summary
from homelink.staff.selectors import confirmed_memberships


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
    return render(
        request,
        "console/dashboard.html",
        {
            "school": request.school,
            "membership": request.membership,
            "d": selectors.dashboard(request.school),
            "delivery": delivery_summary(request.school, timezone.now()),
        },
    )
