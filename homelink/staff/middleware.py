"""Staff sessions end when idle for 30 minutes and 12 hours after login.

Staff see the whole register of a school, often on shared office machines, so their sessions
are short; parents see only their own details and keep Django's ordinary session.

Whether a user is staff is read (one indexed query) on every request to the staff areas, the
console and the admin, so a membership given or taken away applies there at once. Elsewhere
(the parents' pages, where an install's load is) no query is made: a session that has been a
staff session is marked as such, and its clocks apply on every page from then on, so a staff
member idle for half an hour is signed out wherever they come back.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse

from homelink.staff.models import StaffMembership
from homelink.trusts.models import TrustMembership

#: Named when these sessions were the console's; a new name would restart every clock.
LOGIN_AT_KEY = "console_login_at"
LAST_SEEN_KEY = "console_last_seen"
#: Set once a request has found the session's user to be staff (at login or in a staff area).
STAFF_KEY = "staff_session"
#: Where staff see a school's data: membership is checked on every request here.
STAFF_PATHS = ("/console/", "/admin/")
#: Writing the session on every request costs a database write each time; a minute's
#: imprecision in the idle clock does not matter.
TOUCH_EVERY_SECONDS = 60


def now_stamp() -> int:
    return int(time.time())


def idle_limit() -> int:
    return int(getattr(settings, "HOMELINK_STAFF_IDLE_SECONDS", 30 * 60))


def absolute_limit() -> int:
    return int(getattr(settings, "HOMELINK_STAFF_SESSION_SECONDS", 12 * 60 * 60))


def _duration(seconds: int) -> str:
    if seconds % 3600 == 0:
        hours = seconds // 3600
        return f"{hours} hour{'s' if hours != 1 else ''}"
    minutes = max(1, seconds // 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def is_staff_user(user: Any) -> bool:
    if not getattr(user, "is_authenticated", False):
        return False
    if getattr(user, "is_superuser", False) or getattr(user, "is_staff", False):
        # Operators can reach every school's data through the admin: the same rule applies.
        return True
    # A trust's staff see its schools' data too. One statement either way: a parent's sign-in
    # pays for this question (accounts/tests/test_query_budget.py).
    return (
        StaffMembership.objects.filter(user_id=user.pk)
        .values("pk")
        .union(TrustMembership.objects.filter(user_id=user.pk).values("pk"))
        .exists()
    )


class StaffSessionMiddleware:
    """Place after AuthenticationMiddleware and MessageMiddleware."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        session = request.session
        if request.path_info.startswith(STAFF_PATHS):
            staff = is_staff_user(request.user)
            if staff and not session.get(STAFF_KEY):
                session[STAFF_KEY] = True
        else:
            # A parent's request: the flag, read from the session already loaded for the user.
            staff = bool(session.get(STAFF_KEY)) and request.user.is_authenticated
        if staff:
            now = now_stamp()
            login_at = session.get(LOGIN_AT_KEY)
            last_seen = session.get(LAST_SEEN_KEY)
            if not isinstance(login_at, int) or not isinstance(last_seen, int):
                # A session from before this middleware (or before the signal): start now
                # rather than end a session we cannot date.
                session[LOGIN_AT_KEY] = session[LAST_SEEN_KEY] = now
            elif now - login_at >= absolute_limit() or now - last_seen >= idle_limit():
                reason = (
                    f"you signed in more than {_duration(absolute_limit())} ago"
                    if now - login_at >= absolute_limit()
                    else f"it was idle for {_duration(idle_limit())}"
                )
                logout(request)
                messages.info(
                    request, f"You have been signed out because {reason}. Please sign in again."
                )
                return redirect_to_login(request.get_full_path())
            elif now - last_seen >= TOUCH_EVERY_SECONDS:
                session[LAST_SEEN_KEY] = now
        return self.get_response(request)
