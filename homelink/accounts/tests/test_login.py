"""Logging in: limits that refuse new devices by address and by account, a limit of its own for
the owner's known devices (the device cookie), no delays, and one answer for every failure.
Whoever knows an address, or shares the owner's connection, must not be able to keep them out."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core import mail, signing
from django.test import Client, RequestFactory
from django.urls import reverse
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from homelink.accounts import services
from homelink.accounts.tests.conftest import PASSWORD, link_path, make_parent, without_csrf
from homelink.accounts.views import LOGIN_FAILED
from homelink.ratelimit import devices, limiter
from homelink.ratelimit.limiter import Budget
from homelink.ratelimit.policies import (
    LOGIN_KNOWN_DEVICE,
    LOGIN_NEW_DEVICES,
    LOGIN_PER_ACCOUNT_IP,
    LOGIN_PER_IP,
    OTP_PER_ACCOUNT_IP,
)
from homelink.schools.models import School
from homelink.staff.models import Role, StaffMembership

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


def attack(
    email: str, *, addresses: int, each: int = LOGIN_PER_ACCOUNT_IP.limit + 2, first: int = 1
) -> list[str]:
    """Wrong passwords for ``email`` from many addresses (new devices: no cookie), each going past
    its own limit."""
    return [
        login(email, f"guess {n}", ip=f"203.0.113.{first + a}").content.decode()
        for a in range(addresses)
        for n in range(each)
    ]


def signed_in_before(email: str, ip: str, password: str = PASSWORD) -> Client:
    """A browser where ``email``'s owner has signed in (so it carries the device cookie), signed
    out again."""
    browser = Client(REMOTE_ADDR=ip)
    assert browser.post(reverse("login"), {"email": email, "password": password}).status_code == 302
    assert devices.COOKIE_NAME in browser.cookies
    browser.post(reverse("logout"))
    return browser


def sign_in(browser: Client, email: str, password: str = PASSWORD):
    return browser.post(reverse("login"), {"email": email, "password": password})


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


def test_attackers_from_fifty_addresses_get_the_new_device_cap_and_no_more(
    monkeypatch: pytest.MonkeyPatch, slept: list[float]
) -> None:
    """The reviewer's 300 addresses got 2,700 passwords at one account; now every new device
    together gets LOGIN_NEW_DEVICES.limit (20) an hour, however many addresses there are."""
    make_parent()
    checked: list[str] = []
    real = services.authenticate

    def counting(request, **credentials):
        checked.append(credentials["password"])
        return real(request, **credentials)

    monkeypatch.setattr(services, "authenticate", counting)
    request = RequestFactory().post("/login/")
    refusals: list[str] = []
    for a in range(50):
        for n in range(LOGIN_PER_ACCOUNT_IP.limit):
            try:
                services.account_authenticate(
                    request=request,
                    email="pat.smith@example.org",
                    password=f"guess {a} {n}",
                    ip=f"203.0.113.{a + 1}",
                    known_device=False,
                )
            except services.TooManyRequests as exc:
                refusals.append(exc.message)
    assert LOGIN_NEW_DEVICES.limit <= 20
    assert LOGIN_NEW_DEVICES.window == LOGIN_NEW_DEVICES.lockout == timedelta(hours=1)
    assert len(checked) == LOGIN_NEW_DEVICES.limit
    assert len(refusals) == 50 * LOGIN_PER_ACCOUNT_IP.limit - LOGIN_NEW_DEVICES.limit
    assert set(refusals) == {services.LOGIN_NEW_DEVICES_LIMITED}
    # The right password from a new device is refused too: a lucky guess past the cap is worth
    # nothing, and the refusal comes before the password is checked.
    refused = login("pat.smith@example.org", PASSWORD, ip="203.0.113.200").content.decode()
    assert services.LOGIN_NEW_DEVICES_LIMITED in refused
    assert len(checked) == LOGIN_NEW_DEVICES.limit
    # Nothing waited: a refusal is immediate, and no delay holds a worker.
    assert slept == []


def test_the_owner_on_a_known_device_gets_in_when_every_other_limit_is_spent(
    slept: list[float],
) -> None:
    """The head signs in at school, on the school's one address. A pupil on that address sprays
    and guesses her password; attackers elsewhere use up the new-device cap. Her browser still
    gets her in with the right password, at once."""
    make_parent(email="head@example.org", forename="Hana", surname="Head")
    school = "192.0.2.200"
    heads_browser = signed_in_before("head@example.org", school)
    # The pupil: past the address's limit for her account, and for the address as a whole.
    pupil = [login("head@example.org", f"guess {n}", ip=school) for n in range(12)]
    assert LIMITED in pupil[-1].content.decode()
    for n in range(LOGIN_PER_IP.limit):
        login(f"guess{n}@example.org", "password123", ip=school)
    # Elsewhere: the account's cap for new devices.
    attack("head@example.org", addresses=3)
    for ip, expected in ((school, LIMITED), ("198.51.100.9", services.LOGIN_NEW_DEVICES_LIMITED)):
        refused = login("head@example.org", PASSWORD, ip=ip).content.decode()
        assert expected in refused
    slept.clear()
    assert sign_in(heads_browser, "head@example.org")["Location"] == "/account/"
    assert slept == []


def test_an_unknown_account_gets_the_same_refusals() -> None:
    make_parent()
    known = attack("pat.smith@example.org", addresses=3)
    unknown = attack("nobody@example.org", addresses=3)
    assert sum(services.LOGIN_NEW_DEVICES_LIMITED in a for a in known) == 10
    # The same answers, in the same order, whether the account exists or not.
    assert [without_csrf(a).replace("pat.smith", "EMAIL") for a in known] == [
        without_csrf(a).replace("nobody", "EMAIL") for a in unknown
    ]


def test_a_known_device_has_its_own_limit_which_only_it_can_spend(slept: list[float]) -> None:
    make_parent()
    mine = signed_in_before("pat.smith@example.org", OWNER_AT_HOME)
    wrong = [
        sign_in(mine, "pat.smith@example.org", "wrong") for _ in range(LOGIN_KNOWN_DEVICE.limit)
    ]
    assert all(LOGIN_FAILED in w.content.decode() for w in wrong)
    refused = sign_in(mine, "pat.smith@example.org").content.decode()
    assert services.LOGIN_KNOWN_DEVICE_LIMITED in refused
    # The owner's own mistakes never touched the new devices' limits: a new device gets in.
    assert login("pat.smith@example.org", PASSWORD, ip="198.51.100.8")["Location"] == "/account/"
    assert slept == []


def test_a_right_password_on_a_known_device_starts_its_count_again() -> None:
    make_parent()
    mine = signed_in_before("pat.smith@example.org", OWNER_AT_HOME)
    for _ in range(LOGIN_KNOWN_DEVICE.limit - 1):
        sign_in(mine, "pat.smith@example.org", "wrong")
    assert sign_in(mine, "pat.smith@example.org")["Location"] == "/account/"
    mine.post(reverse("logout"))
    for _ in range(LOGIN_KNOWN_DEVICE.limit - 1):
        sign_in(mine, "pat.smith@example.org", "wrong")
    assert sign_in(mine, "pat.smith@example.org")["Location"] == "/account/"


def test_the_cookie_is_signed_http_only_and_names_no_one(settings) -> None:
    settings.SESSION_COOKIE_SECURE = True
    make_parent()
    response = login("pat.smith@example.org", PASSWORD)
    cookie = response.cookies[devices.COOKIE_NAME]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"
    assert cookie["secure"] is True
    assert int(cookie["max-age"]) == 180 * 24 * 3600
    assert "pat" not in cookie.value.lower() and "example" not in cookie.value.lower()
    # A cookie for another account's browser, or an edited or forged one, is a new device.
    attack("pat.smith@example.org", addresses=3)
    value = cookie.value
    signed, signature = value.rsplit(":", 1)
    digest = signed.split(":", 1)[0]
    flipped = digest[:-1] + ("0" if digest[-1] != "0" else "1")
    salt = devices.COOKIE_NAME + devices.COOKIE_SALT
    for forged in (
        f"{flipped}:{signed.split(':', 1)[1]}:{signature}",  # the digest edited
        signed,  # the signature taken off
        digest,  # the entries alone
        # Signed, but not with this site's secret and salt.
        signing.TimestampSigner(key="not the site's secret", salt=salt).sign(digest),
        signing.get_cookie_signer(salt=devices.COOKIE_NAME).sign(digest),
    ):
        browser = Client(REMOTE_ADDR=OWNER_AT_HOME)
        browser.cookies[devices.COOKIE_NAME] = forged
        refused = sign_in(browser, "pat.smith@example.org").content.decode()
        assert services.LOGIN_NEW_DEVICES_LIMITED in refused, forged
    browser = Client(REMOTE_ADDR=OWNER_AT_HOME)
    browser.cookies[devices.COOKIE_NAME] = value
    assert sign_in(browser, "pat.smith@example.org")["Location"] == "/account/"


def test_a_password_reset_remembers_the_device_and_the_owner_gets_in_during_an_attack() -> None:
    """The owner on a brand-new device while new devices are refused: the reset link proves the
    mailbox, remembers this browser and starts the cap again."""
    make_parent()
    attack("pat.smith@example.org", addresses=3)
    owner = Client(REMOTE_ADDR=OWNER_AT_HOME)
    assert (
        services.LOGIN_NEW_DEVICES_LIMITED
        in sign_in(owner, "pat.smith@example.org").content.decode()
    )
    owner.post(reverse("password_reset"), {"email": "pat.smith@example.org"})
    [message] = mail.outbox
    form = owner.get(link_path(str(message.body), "password-reset"), follow=True)
    new = "another quite long passphrase 7"
    done = owner.post(form.redirect_chain[-1][0], {"new_password1": new, "new_password2": new})
    assert done["Location"] == reverse("password_reset_complete")
    assert devices.COOKIE_NAME in done.cookies
    # Attackers keep at it from new devices...
    attack("pat.smith@example.org", addresses=3, first=50)
    assert (
        services.LOGIN_NEW_DEVICES_LIMITED in login("pat.smith@example.org", new).content.decode()
    )
    # ...and the owner's browser gets in.
    assert sign_in(owner, "pat.smith@example.org", new)["Location"] == "/account/"


def test_a_changed_password_makes_old_devices_new(slept: list[float]) -> None:
    """A browser that knew the old password (a thief's, say) is a new device once it changes: it
    cannot spend the owner's known-device limit."""
    user = make_parent()
    thief = signed_in_before("pat.smith@example.org", "203.0.113.99")
    user.set_password("another quite long passphrase 7")
    user.save()
    attack("pat.smith@example.org", addresses=3)
    refused = sign_in(thief, "pat.smith@example.org", "guess").content.decode()
    assert services.LOGIN_NEW_DEVICES_LIMITED in refused


def test_no_attempt_waits_beyond_the_site_wide_budget(
    monkeypatch: pytest.MonkeyPatch, slept: list[float]
) -> None:
    """The only delay left is the site-wide budget's (past 600 a minute, at most two seconds)."""
    make_parent()
    monkeypatch.setattr(services, "LOGIN_BUDGET", Budget("login:global", per_minute=5))
    attack("pat.smith@example.org", addresses=3)
    assert len(slept) == 3 * (LOGIN_PER_ACCOUNT_IP.limit + 2) - 5
    assert max(slept) <= limiter.MAX_DELAY
    monkeypatch.setattr(services, "_sleep", time.sleep)
    started = time.monotonic()
    monkeypatch.setattr(services, "LOGIN_BUDGET", Budget("login:other", per_minute=600))
    attack("pat.smith@example.org", addresses=2)
    assert time.monotonic() - started < 5  # 24 attempts, none of them sleeping


def code_for(device: TOTPDevice) -> str:
    """The code the owner's app shows now (or at the next step, when now's has been used)."""
    device.refresh_from_db()
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    at = TOTP(device.bin_key, device.step, device.t0, device.digits, 0)
    at.time = device.t0 + max(totp.t(), device.last_t + 1) * device.step
    return f"{at.token():06d}"


@pytest.mark.parametrize("with_authenticator", [False, True], ids=["password", "password+app"])
def test_staff_get_into_the_console_during_an_attack(
    school: School, with_authenticator: bool, slept: list[float]
) -> None:
    """The office signs in on the school's one address, where a pupil guesses; attackers
    elsewhere use up the account's cap for new devices; someone who also has the password tries
    codes, from the school's address too. The owner's browser gets in, code and all."""
    staff = make_parent(email="office@example.org", forename="Sam", surname="Office")
    StaffMembership.objects.create(user=staff, school=school, role=Role.ADMINISTRATOR)
    device = TOTPDevice.objects.create(user=staff, name="app", confirmed=with_authenticator)
    at_school = "192.0.2.200"
    owner = Client(REMOTE_ADDR=at_school)
    assert sign_in(owner, "office@example.org")["Location"] == "/console/"
    if with_authenticator:
        # Her browser has given a code before: its codes count only against her own limit.
        owner.post(reverse("console_otp:verify"), {"token": code_for(device)})
        assert DEVICE_ID_SESSION_KEY in owner.session
    owner.post(reverse("logout"))

    for n in range(LOGIN_PER_IP.limit + 2):
        login("office@example.org" if n % 2 else f"guess{n}@example.org", "wrong", ip=at_school)
    attack("office@example.org", addresses=3)
    if with_authenticator:
        # A thief with the password, at the school and elsewhere: past the address's limit there,
        # short of the account's cap (which would end the password: test_otp covers that).
        for ip, codes in ((at_school, OTP_PER_ACCOUNT_IP.limit + 2), ("203.0.113.77", 3)):
            thief = Client(REMOTE_ADDR=ip)
            thief.force_login(staff)
            for n in range(codes):
                thief.post(reverse("console_otp:verify"), {"token": f"{n:06d}"})
            assert DEVICE_ID_SESSION_KEY not in thief.session

    slept.clear()
    assert sign_in(owner, "office@example.org")["Location"] == "/console/"
    if with_authenticator:
        verified = owner.post(reverse("console_otp:verify"), {"token": code_for(device)})
        assert verified.status_code == 302
        assert owner.session[DEVICE_ID_SESSION_KEY] == device.persistent_id
    home = owner.get(reverse("console:dashboard", kwargs={"urn": school.urn}))
    assert home.status_code == 200
    assert slept == []


@pytest.mark.django_db
def test_school_staff_land_on_their_console_after_signing_in(
    client: Client, school: School
) -> None:
    from homelink.staff.models import Role, StaffMembership

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


def test_a_shared_computer_cannot_spend_the_limit_of_the_owners_other_devices() -> None:
    """The owner once signed in at the office PC and on her phone. Someone at the PC types
    wrong passwords until it is refused: her phone still signs her in."""
    make_parent()
    office_pc = signed_in_before("pat.smith@example.org", "192.0.2.40")
    phone = signed_in_before("pat.smith@example.org", OWNER_AT_HOME)
    for _ in range(LOGIN_KNOWN_DEVICE.limit):
        sign_in(office_pc, "pat.smith@example.org", "wrong")
    assert (
        services.LOGIN_KNOWN_DEVICE_LIMITED
        in sign_in(office_pc, "pat.smith@example.org").content.decode()
    )
    assert sign_in(phone, "pat.smith@example.org")["Location"] == "/account/"
