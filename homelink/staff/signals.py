"""Start a staff session's clocks at login (see :mod:`homelink.staff.middleware`)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver
from django.http import HttpRequest

from homelink.staff.middleware import (
    LAST_SEEN_KEY,
    LOGIN_AT_KEY,
    STAFF_KEY,
    is_staff_user,
    now_stamp,
)


@receiver(user_logged_in, dispatch_uid="staff_session_clock")
def start_session_clock(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    # The clocks are set for everyone (two integers), so a parent who is made staff mid-session
    # is timed from their real login once a staff area marks the session.
    if request is not None and hasattr(request, "session"):
        stamp = now_stamp()
        request.session[LOGIN_AT_KEY] = stamp
        request.session[LAST_SEEN_KEY] = stamp
        if is_staff_user(user):
            # The clocks then apply on every page, with no query outside the staff areas.
            request.session[STAFF_KEY] = True
