"""The known-device cookie: signed, HttpOnly, naming no one, bound to the password, at most five
accounts per factor."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core import signing
from django.http import HttpResponse
from django.test import RequestFactory

from homelink.ratelimit import devices

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fast_passwords(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def account(email: str) -> Any:
    return get_user_model().objects.create_user(
        username=email, email=email, password="a long enough passphrase 42"
    )


def browser(cookie: str | None = None) -> Any:
    request = RequestFactory().post("/login/")
    if cookie is not None:
        request.COOKIES[devices.COOKIE_NAME] = cookie
    return request


def remembered(
    email: str, cookie: str | None = None, factor: devices.Factor = devices.FIRST_FACTOR
) -> str:
    """The cookie after ``email`` is remembered on a browser that carried ``cookie``."""
    response = HttpResponse()
    devices.remember(browser(cookie), response, email, factor=factor)
    return response.cookies[devices.COOKIE_NAME].value


def test_a_remembered_account_is_known_and_no_other() -> None:
    account("pat@example.org")
    account("sam@example.org")
    cookie = remembered("pat@example.org")
    assert devices.is_known(browser(cookie), "pat@example.org")
    assert not devices.is_known(browser(cookie), "sam@example.org")
    assert not devices.is_known(browser(), "pat@example.org")
    # Known for the password is not known for the second factor.
    assert not devices.is_known(browser(cookie), "pat@example.org", factor=devices.SECOND_FACTOR)
    both = remembered("pat@example.org", cookie, factor=devices.SECOND_FACTOR)
    assert devices.is_known(browser(both), "pat@example.org")
    assert devices.is_known(browser(both), "pat@example.org", factor=devices.SECOND_FACTOR)


def test_the_cookie_is_http_only_lax_signed_and_secure_as_the_session_cookie(settings) -> None:
    account("pat@example.org")
    for secure in (True, False):
        settings.SESSION_COOKIE_SECURE = secure
        response = HttpResponse()
        devices.remember(browser(), response, "pat@example.org")
        cookie = response.cookies[devices.COOKIE_NAME]
        assert cookie["httponly"] is True
        assert cookie["samesite"] == "Lax"
        assert bool(cookie["secure"]) is secure
        assert int(cookie["max-age"]) == 180 * 24 * 60 * 60
        assert "pat" not in cookie.value and "example" not in cookie.value


def test_a_forged_or_edited_cookie_is_a_new_device() -> None:
    account("pat@example.org")
    cookie = remembered("pat@example.org")
    entries = cookie.rsplit(":", 2)[0]  # value:timestamp:signature
    edited = cookie.replace(entries, entries[:-1] + ("0" if entries[-1] != "0" else "1"))
    forged = signing.TimestampSigner(key="not the site's secret").sign(entries)
    for bad in (edited, forged, entries, cookie[:-2], "", "p" + "0" * 32):
        assert not devices.is_known(browser(bad), "pat@example.org"), bad


def test_an_expired_cookie_is_a_new_device(monkeypatch) -> None:
    account("pat@example.org")
    cookie = remembered("pat@example.org")
    later = time.time() + devices.MAX_AGE.total_seconds() + 60
    monkeypatch.setattr(signing, "time", SimpleNamespace(time=lambda: later))
    assert not devices.is_known(browser(cookie), "pat@example.org")


def test_a_changed_password_forgets_every_browser() -> None:
    user = account("pat@example.org")
    cookie = remembered("pat@example.org")
    user.set_password("another quite long passphrase 7")
    user.save()
    assert not devices.is_known(browser(cookie), "pat@example.org")
    user.set_unusable_password()
    user.save()
    response = HttpResponse()
    devices.remember(browser(), response, "pat@example.org")
    assert devices.COOKIE_NAME not in response.cookies


def test_an_unknown_account_is_never_remembered() -> None:
    response = HttpResponse()
    devices.remember(browser(), response, "nobody@example.org")
    assert devices.COOKIE_NAME not in response.cookies


def test_at_most_five_accounts_per_factor_newest_first() -> None:
    emails = [f"user{n}@example.org" for n in range(devices.MAX_ACCOUNTS + 2)]
    for email in emails:
        account(email)
    cookie = remembered(emails[0], factor=devices.SECOND_FACTOR)
    for email in emails:
        cookie = remembered(email, cookie)
    known = [e for e in emails if devices.is_known(browser(cookie), e)]
    assert known == emails[-devices.MAX_ACCOUNTS :]
    # The other factor's entries are kept apart from the count.
    assert devices.is_known(browser(cookie), emails[0], factor=devices.SECOND_FACTOR)
    # Remembering an account again moves it to the front instead of repeating it: the next new
    # one then pushes out the oldest of the others.
    again = remembered(emails[0], remembered(emails[2], cookie))
    assert [e for e in emails if devices.is_known(browser(again), e)] == [
        emails[0],
        emails[2],
        *emails[-devices.MAX_ACCOUNTS + 2 :],
    ]
    assert len(again) < 600
