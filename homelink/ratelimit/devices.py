"""Known devices: a signed cookie naming the accounts that have signed in on this browser.

OWASP's "device cookies" (Slow Down Online Guessing Attacks with Device Cookies): a browser where
an account has signed in with its current password is that account's owner's, as far as guessing
goes, and is limited apart from everyone else; see :mod:`homelink.ratelimit.policies` for the
limits on each side. So an attacker, however many addresses they have, can only use up the limits
of *new* devices, and the owner's own browser keeps working.

The cookie (``homelink_device``) is:

- **signed** with the site's secret (``set_signed_cookie``): a forged, edited or expired cookie
  reads as no cookie, so its browser is a new device;
- **HttpOnly**, ``SameSite=Lax``, ``Secure`` when the session cookie is, and kept 180 days from the
  last sign-in that refreshed it;
- a list of **keyed digests**, at most :data:`MAX_ACCOUNTS` per factor, newest first. A digest is
  an HMAC under the site's secret of the factor, the account's identity (its username: the
  normalised email typed at sign-in) and the account's current password hash. The cookie never
  holds an email or anything that could be matched to one without the secret, and changing the
  password (a reset, or the console replacing a password an attacker knows) makes every earlier
  digest of that account unknown: a browser that knew an old password is a new device again.

Two factors are remembered apart: :data:`FIRST_FACTOR` after a right password (the login page,
a password reset) and :data:`SECOND_FACTOR` after a right code from the account's authenticator.
A stolen password therefore makes the thief's browser known for the password only: their guesses
at the code still count as a new device's.
"""

from __future__ import annotations

import re
import secrets
from datetime import timedelta
from typing import Final, Literal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.http import HttpRequest, HttpResponseBase
from django.utils.crypto import constant_time_compare, salted_hmac

__all__ = [
    "COOKIE_NAME",
    "FIRST_FACTOR",
    "MAX_ACCOUNTS",
    "SECOND_FACTOR",
    "device_key",
    "is_known",
    "remember",
]

Factor = Literal["p", "t"]

COOKIE_NAME: Final = "homelink_device"
#: After a right password (the login page, a completed password reset).
FIRST_FACTOR: Final = "p"
#: After a right code from the account's authenticator app.
SECOND_FACTOR: Final = "t"
MAX_ACCOUNTS: Final = 5
MAX_AGE: Final = timedelta(days=180)

COOKIE_SALT = "homelink.ratelimit.devices.cookie"
DIGEST_SALT = "homelink.ratelimit.devices.account"
DIGEST_CHARS = 32  # 128 bits of HMAC-SHA256: a guess at a digest is hopeless
SEPARATOR = "."
_ENTRY = re.compile(rf"^[{FIRST_FACTOR}{SECOND_FACTOR}][0-9a-f]{{{DIGEST_CHARS}}}$")
#: The browser's own random id, so a known device's limit is this browser's alone: a shared
#: office PC where the owner once signed in must not use up the limit of her phone.
_DEVICE = re.compile(r"^d[0-9a-f]{16}$")


def device_key(request: HttpRequest, account_identity: str) -> str:
    """The identity a known device's limit counts under: the account and this browser's id."""
    found = next((part[1:] for part in _parts(request) if _DEVICE.match(part)), "")
    return f"{account_identity} {found}"


def is_known(request: HttpRequest, account_identity: str, *, factor: Factor = FIRST_FACTOR) -> bool:
    """Whether this browser's cookie says ``account_identity`` (an account's username) has given
    ``factor`` here under its current password. False for no cookie, a cookie whose signature or
    age fails, an unknown account, or a password changed since."""
    entries = [e[1:] for e in _entries(request) if e[0] == factor]
    if not entries:
        return False
    digest = _digest(factor, account_identity)
    if digest is None:
        return False
    return any(constant_time_compare(digest, entry) for entry in entries)


def remember(
    request: HttpRequest,
    response: HttpResponseBase,
    account_identity: str,
    *,
    factor: Factor = FIRST_FACTOR,
    password_hash: str | None = None,
) -> None:
    """Set the cookie on ``response`` with ``account_identity`` known for ``factor`` on this
    browser, newest first, keeping at most :data:`MAX_ACCOUNTS` per factor. Call after the
    password (or code) was accepted, and after any password change was saved: the digest binds
    the password as it is now. ``password_hash``: the account's hash as it is now, when the
    caller holds the user just signed in (otherwise it is read)."""
    digest = _digest(factor, account_identity, password_hash)
    if digest is None:
        return
    mine = factor + digest
    device = next((part for part in _parts(request) if _DEVICE.match(part)), "")
    kept: list[str] = [device or "d" + secrets.token_hex(8), mine]
    counts = {FIRST_FACTOR: 0, SECOND_FACTOR: 0, factor: 1}
    for entry in _entries(request):
        if entry == mine or counts[entry[0]] >= MAX_ACCOUNTS:
            continue
        counts[entry[0]] += 1
        kept.append(entry)
    response.set_signed_cookie(
        COOKIE_NAME,
        SEPARATOR.join(kept),
        salt=COOKIE_SALT,
        max_age=MAX_AGE,
        secure=settings.SESSION_COOKIE_SECURE,
        httponly=True,
        samesite="Lax",
    )


def _parts(request: HttpRequest) -> list[str]:
    value = request.get_signed_cookie(COOKIE_NAME, default="", salt=COOKIE_SALT, max_age=MAX_AGE)
    return value.split(SEPARATOR) if value else []


def _entries(request: HttpRequest) -> list[str]:
    return [entry for entry in _parts(request) if _ENTRY.match(entry)]


def _digest(factor: Factor, account_identity: str, password_hash: str | None = None) -> str | None:
    """The keyed digest of the account as it is now, or None when there is no such account (or it
    has no password): nothing can be known for it."""
    if password_hash is None:
        user_model = get_user_model()
        password_hash = (
            user_model._default_manager.filter(**{user_model.USERNAME_FIELD: account_identity})
            .values_list("password", flat=True)
            .first()
        )
    if not password_hash or password_hash.startswith("!"):
        return None
    value = f"{factor}\x00{account_identity}\x00{password_hash}"
    return salted_hmac(DIGEST_SALT, value, algorithm="sha256").hexdigest()[:DIGEST_CHARS]
