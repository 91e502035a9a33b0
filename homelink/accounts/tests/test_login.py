"""Logging in: limits per address and per account, and one answer for every failure."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from homelink.accounts.tests.conftest import PASSWORD, make_parent, without_csrf
from homelink.ratelimit.policies import LOGIN_PER_ACCOUNT, LOGIN_PER_IP
from homelink.schools.models import School

pytestmark = pytest.mark.django_db

SPRAYER = "203.0.113.50"


def login(email: str, password: str, ip: str = "192.0.2.10"):
    return Client(REMOTE_ADDR=ip).post(reverse("login"), {"email": email, "password": password})


def test_logging_in_and_out() -> None:
    user = make_parent()
    client = Client()
    response = client.post(
        reverse("login"), {"email": "PAT.SMITH@example.org", "password": PASSWORD}
    )
    assert response["Location"] == "/account/"
    assert client.get("/account/").status_code == 200
    # Log out is a POST (a link or an image must not log anyone out).
    assert client.get(reverse("logout")).status_code == 405
    assert client.post(reverse("logout"))["Location"] == "/login/"
    assert client.get("/account/")["Location"] == "/login/?next=/account/"
    assert user.is_active


def test_next_is_followed_only_on_this_site() -> None:
    make_parent()
    ok = Client().post(
        "/login/?next=/account/link/", {"email": "pat.smith@example.org", "password": PASSWORD}
    )
    assert ok["Location"] == "/account/link/"
    away = Client().post(
        "/login/?next=https://evil.example/",
        {"email": "pat.smith@example.org", "password": PASSWORD},
    )
    assert away["Location"] == "/account/"


def test_unknown_email_and_wrong_password_get_the_same_answer() -> None:
    make_parent()
    unknown = login("nobody@example.org", PASSWORD)
    wrong = login("pat.smith@example.org", "not the password at all")
    assert unknown.status_code == wrong.status_code == 200
    same = without_csrf(unknown.content.decode()).replace("nobody@example.org", "EMAIL")
    other = without_csrf(wrong.content.decode()).replace("pat.smith@example.org", "EMAIL")
    assert same == other
    assert "The email address or password is not right" in same


def test_a_spray_from_one_address_is_stopped() -> None:
    make_parent()
    answers = [
        login(f"guess{n}@example.org", "password123", ip=SPRAYER).content.decode()
        for n in range(LOGIN_PER_IP.limit + 10)
    ]
    assert all("not right" in a for a in answers[: LOGIN_PER_IP.limit])
    assert all(
        "There have been too many attempts to log in" in a for a in answers[LOGIN_PER_IP.limit :]
    )
    # Even the right password is refused from that address now...
    stopped = login("pat.smith@example.org", PASSWORD, ip=SPRAYER)
    assert stopped.status_code == 200
    assert "There have been too many attempts to log in" in stopped.content.decode()
    # ...while the parent at home logs in.
    assert login("pat.smith@example.org", PASSWORD, ip="198.51.100.20")["Location"] == "/account/"


def test_guessing_one_account_locks_it_from_every_address_until_a_success_elsewhere() -> None:
    make_parent()
    for n in range(LOGIN_PER_ACCOUNT.limit):
        assert (
            "not right"
            in login("pat.smith@example.org", f"guess {n}", ip=f"192.0.2.{n + 1}").content.decode()
        )
    locked = login("pat.smith@example.org", PASSWORD, ip="198.51.100.30")
    assert "There have been too many attempts to log in" in locked.content.decode()


def test_a_success_resets_the_account_count() -> None:
    make_parent()
    for n in range(LOGIN_PER_ACCOUNT.limit - 1):
        login("pat.smith@example.org", f"guess {n}")
    assert login("pat.smith@example.org", PASSWORD)["Location"] == "/account/"
    for n in range(LOGIN_PER_ACCOUNT.limit - 1):
        login("pat.smith@example.org", f"guess {n}")
    assert login("pat.smith@example.org", PASSWORD)["Location"] == "/account/"


@pytest.mark.django_db
def test_school_staff_land_on_their_console_after_signing_in(
    client: Client, school: School
) -> None:
    from homelink.console.models import Role, StaffMembership

    user = User.objects.create_user(
        username="office@example.org",
        email="office@example.org",
        password="a long staff password 42",
    )
    StaffMembership.objects.create(user=user, school=school, role=Role.ADMINISTRATOR)
    response = client.post(
        "/login/", {"email": "office@example.org", "password": "a long staff password 42"}
    )
    assert response.status_code == 302
    assert response["Location"] == "/console/"
