"""Logging in: limits that refuse addresses, a delay (never a refusal) per account, and one
answer for every failure. Whoever knows an address must not be able to keep its owner out."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client, RequestFactory
from django.urls import reverse
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from homelink.accounts import services
from homelink.accounts.tests.conftest import PASSWORD, make_parent, without_csrf
from homelink.console import otp
from homelink.console.models import Role, StaffMembership
from homelink.ratelimit.policies import (
    LOGIN_BACKOFF,
    LOGIN_PER_ACCOUNT_IP,
    LOGIN_PER_IP,
    OTP_PER_ACCOUNT_IP,
)
from homelink.schools.models import School

pytestmark = pytest.mark.django_db

SPRAYER = "203.0.113.50"
OWNER_AT_HOME = "198.51.100.77"
LIMITED = "There have been too many attempts to log in"


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


def attack(email: str, *, addresses: int, each: int = LOGIN_PER_ACCOUNT_IP.limit + 2) -> list[str]:
    """Wrong passwords for ``email`` from many addresses, each going past its own limit."""
    return [
        login(email, f"guess {n}", ip=f"203.0.113.{a + 1}").content.decode()
        for a in range(addresses)
        for n in range(each)
    ]


def test_the_owner_logs_in_with_the_right_password_during_an_attack(slept: list[float]) -> None:
    make_parent()
    answers = attack("pat.smith@example.org", addresses=12)
    assert sum("not right" in a for a in answers) == 12 * LOGIN_PER_ACCOUNT_IP.limit
    assert sum(LIMITED in a for a in answers) == 12 * 2
    # Over a hundred wrong passwords: the owner still gets in, at worst a few seconds late.
    slept.clear()
    assert login("pat.smith@example.org", PASSWORD, ip=OWNER_AT_HOME)["Location"] == "/account/"
    assert slept == [LOGIN_BACKOFF.cap]
    # And their success clears the delay.
    slept.clear()
    login("pat.smith@example.org", PASSWORD, ip=OWNER_AT_HOME)
    assert slept == []


def test_an_attacking_address_is_refused_for_the_account_and_the_answer_reveals_nothing() -> None:
    make_parent()
    known = attack("pat.smith@example.org", addresses=1)
    unknown = attack("nobody@example.org", addresses=1)
    limit = LOGIN_PER_ACCOUNT_IP.limit
    assert all("not right" in a for a in known[:limit])
    assert all(LIMITED in a for a in known[limit:])
    # The same answers, in the same order, whether the account exists or not.
    assert [without_csrf(a).replace("pat.smith", "EMAIL") for a in known] == [
        without_csrf(a).replace("nobody", "EMAIL") for a in unknown
    ]
    # That address is refused even the right password for the account...
    refused = login("pat.smith@example.org", PASSWORD, ip="203.0.113.1").content.decode()
    assert LIMITED in refused and "from your connection" in refused
    # ...while the owner, anywhere else, gets in.
    assert login("pat.smith@example.org", PASSWORD, ip=OWNER_AT_HOME)["Location"] == "/account/"


def test_the_delay_grows_with_each_failure_and_stops_at_a_few_seconds() -> None:
    make_parent()
    request = RequestFactory().post("/login/")

    def delays(email: str, password: str, count: int) -> list[float]:
        slept: list[float] = []
        for n in range(count):
            services.account_authenticate(
                request=request,
                email=email,
                password=password,
                ip=f"192.0.2.{n + 1}",
                sleep=slept.append,
            )
        return slept

    wrong = delays("pat.smith@example.org", "wrong", 9)
    assert wrong == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]  # three free, then doubling, capped
    assert LOGIN_BACKOFF.cap <= 3.0
    # The same for an address with no account behind it.
    assert delays("nobody@example.org", "wrong", 9) == wrong
    # The right password waits like a wrong one (a fast answer would give it away), then
    # clears the count.
    assert delays("pat.smith@example.org", PASSWORD, 1) == [3.0]
    assert delays("pat.smith@example.org", "wrong", 3) == []


def code_for(device: TOTPDevice) -> str:
    """The code the owner's app shows now (or at the next step, when now's has been used)."""
    device.refresh_from_db()
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    at = TOTP(device.bin_key, device.step, device.t0, device.digits, 0)
    at.time = device.t0 + max(totp.t(), device.last_t + 1) * device.step
    return f"{at.token():06d}"


@pytest.mark.parametrize("with_authenticator", [False, True], ids=["password", "password+app"])
def test_staff_get_into_the_console_during_an_attack(
    school: School, with_authenticator: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Someone who knows a staff address guesses passwords from many addresses; someone who
    also has the password guesses the app's codes from many addresses. The owner gets in."""
    monkeypatch.setattr(otp, "_sleep", lambda seconds: None)
    # A colleague whose email is confirmed (the console grants nothing to an unconfirmed one).
    staff = make_parent(email="office@example.org", forename="Sam", surname="Office")
    StaffMembership.objects.create(user=staff, school=school, role=Role.ADMINISTRATOR)
    device = TOTPDevice.objects.create(user=staff, name="app", confirmed=with_authenticator)
    attack("office@example.org", addresses=6)
    if with_authenticator:
        for a in range(6):
            thief = Client(REMOTE_ADDR=f"203.0.113.{100 + a}")
            assert (
                thief.post(reverse("login"), {"email": "office@example.org", "password": PASSWORD})[
                    "Location"
                ]
                == "/console/"
            )
            for n in range(OTP_PER_ACCOUNT_IP.limit + 2):
                thief.post(reverse("console_otp:verify"), {"token": f"{n:06d}"})
            assert DEVICE_ID_SESSION_KEY not in thief.session

    owner = Client(REMOTE_ADDR=OWNER_AT_HOME)
    signed_in = owner.post(reverse("login"), {"email": "office@example.org", "password": PASSWORD})
    assert signed_in["Location"] == "/console/"
    if with_authenticator:
        verified = owner.post(reverse("console_otp:verify"), {"token": code_for(device)})
        assert verified.status_code == 302
        assert owner.session[DEVICE_ID_SESSION_KEY] == device.persistent_id
    home = owner.get(reverse("console:dashboard", kwargs={"urn": school.urn}))
    assert home.status_code == 200


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
