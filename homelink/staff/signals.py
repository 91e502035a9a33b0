"""Start a staff session's clocks at login (see :mod:`homelink.staff.middleware`)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver
from django.http import HttpRequest

from homelink.staff.middleware import LAST_SEEN_KEY, LOGIN_AT_KEY, now_stamp


@receiver(user_logged_in, dispatch_uid="staff_session_clock")
def start_session_clock(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    # Set for everyone (two integers): whether the user is staff is decided per request, so a
    # parent who is made staff mid-session is timed from their real login.
    if request is not None and hasattr(request, "session"):
        stamp = now_stamp()
        request.session[LOGIN_AT_KEY] = stamp
        request.session[LAST_SEEN_KEY] = stamp
