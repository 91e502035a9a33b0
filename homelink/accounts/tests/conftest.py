"""Fixtures for the parents' pages: parents and students (the SMTP server is shared:
:mod:`homelink.mail_testing`)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.contrib.auth.models import User
from django.test import Client

from homelink.accounts import services, tokens
from homelink.mis.tests.factories import contact, pupil, run_import
from homelink.schools.models import School

PASSWORD = "a long enough passphrase 42"
PAT_EMAIL = "pat.smith@example.org"
PAT_MOBILE = "07700 900001"


def link_path(text: str, kind: str = "account/confirm") -> str:
    """The path of the first link to ``kind`` in an email, ready for the test client."""
    match = re.search(rf"https?://\S+/{kind}/\S+", text)
    assert match is not None, text
    return urlsplit(match.group(0)).path


def make_parent(
    email: str = PAT_EMAIL, forename: str = "Pat", surname: str = "Smith", confirmed: bool = True
) -> User:
    """A parent account made by the sign-up service, its email confirmed by its own token."""
    user = services.account_register(
        email=email, forename=forename, surname=surname, password=PASSWORD
    )
    if confirmed:
        services.email_confirm(
            token=tokens.make_email_token(user_id=user.pk, email=email, password_hash=user.password)
        )
        user.refresh_from_db()
    return user


def logged_in(user: User, **client_kwargs: Any) -> Client:
    client = Client(**client_kwargs)
    client.force_login(user)
    return client


@pytest.fixture
def roll(school: School) -> School:
    """Sam (Pat Smith is the MIS's priority-1 contact, with an email and a mobile) and Alex
    (no contacts)."""
    run_import(
        school,
        [
            pupil(
                "A100000000001",
                "Sam",
                "Smith",
                contact(1, "Pat", "Smith", email=PAT_EMAIL, mobile=PAT_MOBILE),
                year="7",
            ),
            pupil("A100000000002", "Alex", "Jones", year="9"),
        ],
    )
    return school


def without_csrf(html: str) -> str:
    """A page with its per-response CSRF token masked, so two answers can be compared."""
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', "", html)


@pytest.fixture(autouse=True)
def fast_password_hashing(settings: Any) -> None:
    # The real hasher is slow on purpose; these tests log in hundreds of times.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def slept(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The delays the site-wide budgets asked for (the only ones left), recorded instead of
    waited, so hundreds of attempts take no longer than the requests themselves."""
    delays: list[float] = []
    monkeypatch.setattr(services, "_sleep", delays.append)
    return delays
