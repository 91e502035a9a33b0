"""Site operators for tests: a superuser signed in with a password, and one who has also given a
code from their authenticator (what the admin needs, homelink/console/admin_site.py)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice


def make_operator(email: str = "op@example.org", *, superuser: bool = True) -> Any:
    users = get_user_model().objects
    if superuser:
        return users.create_superuser(email, email, "correct horse battery staple")
    return users.create_user(email, email, "correct horse battery staple", is_staff=True)


def current_code(device: TOTPDevice) -> str:
    """The code the app shows now, or at the next step when now's has been used (django-otp
    accepts a code once, and one step either side of now)."""
    device.refresh_from_db()
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    step = max(totp.t(), device.last_t + 1)
    at = TOTP(device.bin_key, device.step, device.t0, device.digits, 0)
    at.time = device.t0 + step * device.step
    return f"{at.token():06d}"


def verified_operator(client: Client, user: Any | None = None) -> TOTPDevice:
    """Sign ``user`` (a new superuser by default) in with a password and give a code on the
    console's verify page, as an operator does before the admin."""
    user = user or make_operator()
    device = TOTPDevice.objects.create(user=user, name="app", confirmed=True)
    client.force_login(user)
    client.post(reverse("console_otp:verify"), {"token": current_code(device)})
    assert client.session.get(DEVICE_ID_SESSION_KEY) == device.persistent_id
    return device


def verified_session(client: Client, user: Any | None = None) -> TOTPDevice:
    """As :func:`verified_operator`, but the session is marked verified directly (what
    ``django_otp.login`` does) rather than through the verify page: for tests about the admin's
    pages, not about how a code is given."""
    user = user or make_operator()
    device = TOTPDevice.objects.create(user=user, name="app", confirmed=True)
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return device
