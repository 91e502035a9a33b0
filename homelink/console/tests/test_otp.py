"""The staff console's second factor, with django-otp's real TOTP device: set up, confirm,
verify once per session, wrong and replayed codes, the limits (the owner's known browser has its
own; new devices are refused by address, and past the account's cap the password ends), removal,
the school's setting, and the decision ``staff_view`` asks :func:`second_factor_redirect` for."""

from __future__ import annotations

import inspect
import re
from typing import Any
from urllib.parse import urlencode, urlsplit

import django_otp
import pytest
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.messages import get_messages
from django.core import mail
from django.http import HttpRequest, HttpResponse
from django.test import Client, RequestFactory
from django.urls import include, path, reverse
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.middleware import OTPMiddleware
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

import homelink.urls
from homelink.audit.models import AuditEvent
from homelink.console import permissions
from homelink.console.tests.conftest import make_user, member_of
from homelink.ratelimit import devices, limiter
from homelink.ratelimit.limiter import Budget
from homelink.ratelimit.policies import (
    OTP_KNOWN_DEVICE,
    OTP_NEW_DEVICES,
    OTP_PER_ACCOUNT_IP,
    OTP_PER_IP,
)
from homelink.schools.models import School
from homelink.staff import otp
from homelink.staff.models import Role, StaffMembership

# Until homelink/urls.py mounts homelink.console.otp.urls, these tests mount it themselves.
if any(getattr(p, "namespace", None) == "console_otp" for p in homelink.urls.urlpatterns):
    urlpatterns = homelink.urls.urlpatterns
else:
    urlpatterns = [
        path("console/otp/", include("homelink.console.otp.urls")),
        *homelink.urls.urlpatterns,
    ]

pytestmark = pytest.mark.urls(__name__)

STAFF_VIEW_ASKS = "second_factor_redirect" in inspect.getsource(permissions)


@pytest.fixture(autouse=True)
def slept(monkeypatch) -> list[float]:
    """The site-wide budget's delays (the only ones left), recorded instead of waited."""
    delays: list[float] = []
    monkeypatch.setattr(otp, "_sleep", delays.append)
    return delays


HERE = "127.0.0.1"  # the test client's address
PASSWORD = "correct horse battery staple"  # make_user's


def from_address(user: Any, ip: str) -> Client:
    """A browser signed in as ``user`` from ``ip``."""
    browser = Client(REMOTE_ADDR=ip)
    browser.force_login(user)
    return browser


# --- Helpers -------------------------------------------------------------------------------------


def code_for(device: TOTPDevice, *, wrong: bool = False) -> str:
    """The code an app shows now, or at the next step when now's has been used (django-otp
    accepts a code once, and one step either side of now)."""
    device.refresh_from_db()
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    step = max(totp.t(), device.last_t + 1)
    at = TOTP(device.bin_key, device.step, device.t0, device.digits, 0)
    at.time = device.t0 + step * device.step
    token = at.token()
    if wrong:
        token = (token + 500_000) % 1_000_000
    return f"{token:06d}"


def confirmed_for(user: Any) -> TOTPDevice:
    device = TOTPDevice.objects.create(user=user, name="app", confirmed=True)
    return device


def url(name: str, **query: str) -> str:
    return reverse(f"console_otp:{name}") + (f"?{urlencode(query)}" if query else "")


def error_of(body: str) -> str:
    """The form's error paragraph on a page."""
    return re.search(r'<p class="error"[^>]*>.*?</p>', body, re.S).group(0)  # type: ignore[union-attr]


def message_texts(response: Any) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def decide(client, user: Any, membership: StaffMembership, where: str) -> HttpResponse | None:
    """Run second_factor_redirect on a request to ``where`` carrying ``client``'s session,
    through the real authentication and OTP middleware."""
    request = RequestFactory().get(where)
    request.session = client.session
    seen: dict[str, HttpResponse | None] = {}

    def view(req: HttpRequest) -> HttpResponse:
        seen["answer"] = otp.second_factor_redirect(req, membership)
        return HttpResponse()

    AuthenticationMiddleware(OTPMiddleware(view))(request)
    return seen["answer"]


@pytest.fixture
def admin_membership(admin_a, school: School) -> StaffMembership:
    return StaffMembership.objects.get(user=admin_a, school=school)


@pytest.fixture
def dashboard(school: School) -> str:
    return reverse("console:dashboard", kwargs={"urn": school.urn})


# --- second_factor_redirect ----------------------------------------------------------------------


def test_no_authenticator_and_not_required_is_served(client, admin_a, admin_membership, dashboard):
    client.force_login(admin_a)
    assert decide(client, admin_a, admin_membership, dashboard) is None


def test_an_unconfirmed_authenticator_changes_nothing(client, admin_a, admin_membership, dashboard):
    TOTPDevice.objects.create(user=admin_a, name="half set up", confirmed=False)
    client.force_login(admin_a)
    assert decide(client, admin_a, admin_membership, dashboard) is None


def test_required_without_authenticator_goes_to_set_up(
    client, admin_a, admin_membership, school, dashboard
):
    otp.school_require_second_factor(school=school, required=True, actor="test")
    admin_membership.refresh_from_db()
    client.force_login(admin_a)
    answer = decide(client, admin_a, admin_membership, f"{dashboard}?page=2")
    assert answer is not None
    assert answer.status_code == 302
    assert answer["Location"] == url("setup", next=f"{dashboard}?page=2")


@pytest.mark.parametrize("required", [False, True])
def test_an_authenticator_asks_for_a_code_once_per_session(
    client, admin_a, admin_membership, school, dashboard, required
):
    otp.school_require_second_factor(school=school, required=required, actor="test")
    admin_membership.refresh_from_db()
    device = confirmed_for(admin_a)
    client.force_login(admin_a)
    answer = decide(client, admin_a, admin_membership, dashboard)
    assert answer is not None
    assert answer["Location"] == url("verify", next=dashboard)
    response = client.post(url("verify"), {"token": code_for(device), "next": dashboard})
    assert response.status_code == 302
    assert response["Location"] == dashboard
    assert decide(client, admin_a, admin_membership, dashboard) is None


def test_another_accounts_device_in_the_session_does_not_count(
    client, admin_a, viewer_a, admin_membership, dashboard
):
    confirmed_for(admin_a)
    theirs = confirmed_for(viewer_a)
    client.force_login(admin_a)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = theirs.persistent_id
    session.save()
    answer = decide(client, admin_a, admin_membership, dashboard)
    assert answer is not None
    assert answer["Location"].startswith(url("verify"))


def test_the_decision_is_per_school(client, school, school_b, dashboard):
    user = make_user("trust@example.org")
    at_a = member_of(user, school, Role.VIEWER)
    at_b = member_of(user, school_b, Role.VIEWER)
    otp.school_require_second_factor(school=school_b, required=True, actor="test")
    at_b.refresh_from_db()
    client.force_login(user)
    assert decide(client, user, at_a, dashboard) is None
    assert decide(client, user, at_b, f"/console/{school_b.urn}/") is not None


# --- Who may see the pages -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["index", "setup", "verify"])
def test_signed_out_people_are_asked_to_sign_in(client, name):
    response = client.get(url(name))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize(
    ("name", "method"),
    [
        ("index", "get"),
        ("setup", "get"),
        ("setup", "post"),
        ("verify", "get"),
        ("verify", "post"),
        ("remove", "post"),
    ],
)
def test_accounts_without_a_staff_role_get_404(client, db, name, method):
    parent = make_user("parent@example.org")
    client.force_login(parent)
    response = getattr(client, method)(url(name), {"token": "123456"} if method == "post" else {})
    assert response.status_code == 404
    assert not TOTPDevice.objects.filter(user=parent).exists()


# --- Setting up ----------------------------------------------------------------------------------


def test_set_up_shows_the_secret_as_text_uri_and_qr_code(client, admin_a):
    client.force_login(admin_a)
    response = client.get(url("setup"))
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    device = TOTPDevice.objects.get(user=admin_a)
    assert not device.confirmed
    body = response.content.decode()
    secret = otp.secret_text(device)
    assert secret in body
    groups = secret.split(" ")
    assert len(groups) == 8 and all(len(g) == 4 for g in groups)  # 20 bytes = 32 characters
    assert "otpauth://totp/homelink%3Aoffice%40a.example?secret=" in body
    assert "&amp;issuer=homelink" in body
    assert '<svg aria-hidden="true"' in body
    assert "<?xml" not in body and "<script" not in body
    # Reloading keeps the secret the person may be typing in.
    client.get(url("setup"))
    assert list(TOTPDevice.objects.filter(user=admin_a).values_list("pk", flat=True)) == [device.pk]


def test_the_uri_carries_the_devices_secret_and_timing(db, admin_a):
    device = otp.pending_device(admin_a)
    uri = otp.otpauth_uri(device)
    assert otp.secret_text(device).replace(" ", "") in uri
    assert "digits=6" in uri and "period=30" in uri and "algorithm=SHA1" in uri


def test_confirming_with_the_first_code_sets_up_and_verifies_the_session(
    client, admin_a, school, dashboard
):
    client.force_login(admin_a)
    client.get(url("setup"))
    device = TOTPDevice.objects.get(user=admin_a)
    response = client.post(url("setup"), {"token": code_for(device), "next": dashboard})
    assert response.status_code == 302
    assert response["Location"] == dashboard
    device.refresh_from_db()
    assert device.confirmed
    assert client.session[DEVICE_ID_SESSION_KEY] == device.persistent_id
    event = AuditEvent.objects.get(action="staff.second_factor_added")
    assert event.school == school and event.actor == admin_a
    assert event.detail == {"user_id": admin_a.pk, "device_id": device.pk}
    # Verified: the pages do not ask again in this session.
    assert client.get(url("verify", next=dashboard))["Location"] == dashboard


def test_a_spaced_code_is_accepted(client, admin_a):
    client.force_login(admin_a)
    client.get(url("setup"))
    device = TOTPDevice.objects.get(user=admin_a)
    token = code_for(device)
    client.post(url("setup"), {"token": f"{token[:3]} {token[3:]}"})
    device.refresh_from_db()
    assert device.confirmed


def test_a_wrong_code_does_not_confirm(client, admin_a):
    client.force_login(admin_a)
    client.get(url("setup"))
    device = TOTPDevice.objects.get(user=admin_a)
    response = client.post(url("setup"), {"token": code_for(device, wrong=True)})
    assert response.status_code == 200
    assert otp.CODE_REFUSED in response.content.decode()
    device.refresh_from_db()
    assert not device.confirmed
    assert DEVICE_ID_SESSION_KEY not in client.session
    assert not AuditEvent.objects.filter(action="staff.second_factor_added").exists()


def test_not_six_digits_is_a_form_error_and_costs_no_attempt(client, admin_a):
    client.force_login(admin_a)
    client.get(url("setup"))
    for _ in range(OTP_PER_ACCOUNT_IP.limit + 2):
        response = client.post(url("setup"), {"token": "12ab"})
        assert "Enter the 6 digits" in response.content.decode()
    device = TOTPDevice.objects.get(user=admin_a)
    client.post(url("setup"), {"token": code_for(device)})
    device.refresh_from_db()
    assert device.confirmed


def test_with_an_authenticator_set_up_cannot_add_another(client, admin_a):
    confirmed_for(admin_a)
    client.force_login(admin_a)
    response = client.get(url("setup"))
    assert response["Location"] == url("index")
    response = client.post(url("setup"), {"token": "123456"})
    assert response["Location"] == url("index")
    assert TOTPDevice.objects.filter(user=admin_a).count() == 1


def test_confirming_drops_other_half_set_up_devices(client, admin_a):
    stale = TOTPDevice.objects.create(user=admin_a, name="old", confirmed=False)
    client.force_login(admin_a)
    client.get(url("setup"))
    device = TOTPDevice.objects.get(user=admin_a)  # the stale one is reused, not duplicated
    assert device.pk == stale.pk
    client.post(url("setup"), {"token": code_for(device)})
    assert list(TOTPDevice.objects.filter(user=admin_a).values_list("confirmed", flat=True)) == [
        True
    ]


def test_an_off_site_next_goes_to_the_console(client, admin_a):
    client.force_login(admin_a)
    client.get(url("setup"))
    device = TOTPDevice.objects.get(user=admin_a)
    response = client.post(
        url("setup"), {"token": code_for(device), "next": "https://evil.example/"}
    )
    assert response["Location"] == reverse("console:home")


# --- Verifying -----------------------------------------------------------------------------------


def test_verify_with_the_right_code(client, admin_a, dashboard):
    device = confirmed_for(admin_a)
    client.force_login(admin_a)
    page = client.get(url("verify", next=dashboard))
    assert page.status_code == 200
    assert f'value="{dashboard}"' in page.content.decode()
    assert 'autocomplete="one-time-code"' in page.content.decode()
    response = client.post(url("verify"), {"token": code_for(device), "next": dashboard})
    assert response["Location"] == dashboard
    assert client.session[DEVICE_ID_SESSION_KEY] == device.persistent_id


def test_verify_with_a_wrong_code(client, admin_a):
    device = confirmed_for(admin_a)
    client.force_login(admin_a)
    response = client.post(url("verify"), {"token": code_for(device, wrong=True)})
    assert response.status_code == 200
    assert otp.CODE_REFUSED in response.content.decode()
    assert DEVICE_ID_SESSION_KEY not in client.session


def test_a_code_is_accepted_once(client, admin_a):
    device = confirmed_for(admin_a)
    token = code_for(device)
    client.force_login(admin_a)
    client.post(url("verify"), {"token": token})
    assert DEVICE_ID_SESSION_KEY in client.session
    client.logout()
    client.force_login(admin_a)
    response = client.post(url("verify"), {"token": token})
    assert otp.CODE_REFUSED in response.content.decode()
    assert DEVICE_ID_SESSION_KEY not in client.session


def test_verify_without_an_authenticator(client, admin_a, school, dashboard):
    client.force_login(admin_a)
    assert client.get(url("verify", next=dashboard))["Location"] == dashboard
    otp.school_require_second_factor(school=school, required=True, actor="test")
    assert client.get(url("verify", next=dashboard))["Location"] == url("setup", next=dashboard)


def test_five_wrong_codes_refuse_that_address_with_the_same_answer(client, admin_a):
    device = confirmed_for(admin_a)
    client.force_login(admin_a)
    wrong = []
    for _ in range(OTP_PER_ACCOUNT_IP.limit):
        response = client.post(url("verify"), {"token": code_for(device, wrong=True)})
        wrong.append(response.content.decode())
    refused = client.post(url("verify"), {"token": code_for(device)})
    assert refused.status_code == 200
    assert otp.CODE_REFUSED in refused.content.decode()
    assert error_of(refused.content.decode()) == error_of(wrong[-1])
    assert DEVICE_ID_SESSION_KEY not in client.session
    # The right code is not consumed while refused: the limit refuses before checking it.
    device.refresh_from_db()
    assert device.last_t == -1
    assert not otp.token_allowed(admin_a, HERE)


def known_browser(user: Any, device: TOTPDevice, ip: str) -> Client:
    """A browser where ``user`` gave a right code before (it carries the device cookie), signed
    in again since, not yet verified in this session."""
    browser = from_address(user, ip)
    browser.post(url("verify"), {"token": code_for(device)})
    assert DEVICE_ID_SESSION_KEY in browser.session
    assert devices.COOKIE_NAME in browser.cookies
    browser.post(reverse("logout"))  # the site's sign-out: the device cookie stays
    browser.force_login(user)
    return browser


def signed_in_with_password(ip: str) -> Client:
    """A thief's browser, signed in through the login page with the stolen password."""
    browser = Client(REMOTE_ADDR=ip)
    answer = browser.post(reverse("login"), {"email": "office@a.example", "password": PASSWORD})
    assert answer.status_code == 302
    return browser


def test_wrong_codes_never_lock_the_owner_out(admin_a, slept):
    """Someone who has the password (only they reach this page) tries codes on the owner's own
    address and elsewhere, past every address's limit and short of the account's cap, with
    django-otp's own throttle as the project sets it: the owner's browser gets in at once."""
    device = confirmed_for(admin_a)
    at_school = "192.0.2.200"
    owner = known_browser(admin_a, device, at_school)
    thieves = [(at_school, OTP_PER_ACCOUNT_IP.limit + 3), ("203.0.113.1", 2), ("203.0.113.2", 2)]
    for ip, codes in thieves:
        thief = from_address(admin_a, ip)
        for _ in range(codes):
            thief.post(url("verify"), {"token": code_for(device, wrong=True)})
        assert DEVICE_ID_SESSION_KEY not in thief.session
    assert not otp.token_allowed(admin_a, at_school)  # the school's address is refused...
    slept.clear()
    owner.post(url("verify"), {"token": code_for(device)})  # ...but not the owner's browser
    assert owner.session[DEVICE_ID_SESSION_KEY] == device.persistent_id
    assert slept == []  # nothing waited


def test_a_known_device_counts_only_against_its_own_limit(admin_a):
    """The owner's own mistakes: her browser waits after OTP_KNOWN_DEVICE.limit of them, counts
    nothing against new devices, and neither warns her nor ends her password."""
    device = confirmed_for(admin_a)
    owner = known_browser(admin_a, device, "198.51.100.7")
    for _ in range(OTP_KNOWN_DEVICE.limit):
        owner.post(url("verify"), {"token": code_for(device, wrong=True)})
    refused = owner.post(url("verify"), {"token": code_for(device)})
    assert otp.CODE_REFUSED in refused.content.decode()
    assert DEVICE_ID_SESSION_KEY not in owner.session
    assert mail.outbox == []
    admin_a.refresh_from_db()
    assert admin_a.check_password(PASSWORD)
    assert OTP_NEW_DEVICES.hit(f"user:{admin_a.pk}").remaining == OTP_NEW_DEVICES.limit - 1


def test_a_stolen_password_does_not_make_the_thiefs_browser_known_for_codes(admin_a):
    device = confirmed_for(admin_a)
    thief = signed_in_with_password("203.0.113.5")
    assert devices.COOKIE_NAME in thief.cookies  # known for the password it gave...
    thief.post(url("verify"), {"token": code_for(device, wrong=True)})
    # ...but its code counted against the new devices' cap.
    assert OTP_NEW_DEVICES.hit(f"user:{admin_a.pk}").remaining == OTP_NEW_DEVICES.limit - 2


def test_wrong_codes_past_the_cap_end_the_password_and_every_session(
    admin_a, school, monkeypatch, caplog
):
    """A stolen password tried from 400 addresses got 2,000 codes; now the account's new devices
    get OTP_NEW_DEVICES.limit (10) wrong codes in all. The last one means the password is known
    to someone else: it is replaced, every session ends (the thieves' and the owner's), the owner
    is emailed a link to choose a new one, and the school's audit trail shows it."""
    device = confirmed_for(admin_a)
    owner = known_browser(admin_a, device, "198.51.100.7")
    checked: list[str] = []
    real = django_otp.verify_token

    def counting(user, device_id, token):
        checked.append(token)
        return real(user, device_id, token)

    monkeypatch.setattr(django_otp, "verify_token", counting)
    thieves = [signed_in_with_password(f"203.0.113.{a + 1}") for a in range(40)]
    for thief in thieves:
        thief.post(url("verify"), {"token": code_for(device, wrong=True)})
    assert OTP_NEW_DEVICES.limit <= 10
    assert len(checked) == OTP_NEW_DEVICES.limit
    # The password is gone: nobody knows the new one.
    admin_a.refresh_from_db()
    assert not admin_a.check_password(PASSWORD)
    assert admin_a.has_usable_password()  # so the reset form still emails the owner a link
    # Every session is over: the thieves' and the owner's are asked to sign in.
    dashboard = reverse("console:dashboard", kwargs={"urn": school.urn})
    for browser in (thieves[0], thieves[OTP_NEW_DEVICES.limit - 1], thieves[-1], owner):
        assert browser.get(dashboard)["Location"].startswith(reverse("login"))
    # The password does not come back from the thieves' browsers.
    assert (
        thieves[0]
        .post(reverse("login"), {"email": "office@a.example", "password": PASSWORD})
        .status_code
        == 200
    )
    # The owner heard at the warning and at the end, with a link to choose a new password.
    warning, ended = mail.outbox
    assert warning.to == ended.to == [admin_a.email]
    assert "someone else knows your password" in warning.body
    assert "turned it off" in ended.body
    assert "/password-reset/" in ended.body
    assert device.key not in warning.body + ended.body
    event = AuditEvent.objects.get(action="staff.password_disabled")
    assert event.school == school and event.detail == {
        "user_id": admin_a.pk,
        "device_id": device.pk,
    }
    # Logged by the account's id only.
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert f"user={admin_a.pk}" in logged and "office@a.example" not in logged

    # The owner follows the link, chooses a password, and gets in with it and her app, whatever
    # the thieves' addresses had used up.
    link = re.search(r"https?://\S+/password-reset/\S+", ended.body).group(0)
    browser = Client(REMOTE_ADDR="198.51.100.8")
    form = browser.get(urlsplit(link).path, follow=True)
    new = "a new and long passphrase 9"
    browser.post(form.redirect_chain[-1][0], {"new_password1": new, "new_password2": new})
    answer = browser.post(reverse("login"), {"email": "office@a.example", "password": new})
    assert answer["Location"] == "/console/"
    browser.post(url("verify"), {"token": code_for(device)})
    assert browser.session[DEVICE_ID_SESSION_KEY] == device.persistent_id


def test_django_otps_own_throttle_is_off():
    # It would refuse the right code for 2**(failures-1) seconds: days, after an hour of a
    # stolen password's guesses. homelink's limits replace it.
    from django.conf import settings

    assert settings.OTP_TOTP_THROTTLE_FACTOR == 0


def test_an_address_is_refused_after_its_limit_for_all_accounts(db, admin_a):
    # Stolen passwords of several accounts, tried from one address.
    per_account = OTP_PER_ACCOUNT_IP.limit
    accounts = [make_user(f"user{n}@a.example") for n in range(OTP_PER_IP.limit // per_account)]
    for user in accounts:
        assert all(otp.token_allowed(user, "203.0.113.9") for _ in range(per_account))
    assert not otp.token_allowed(admin_a, "203.0.113.9")
    assert otp.token_allowed(admin_a, "198.51.100.7")


def test_signed_out_guesses_cost_the_owner_nothing(client, admin_a, slept):
    device = confirmed_for(admin_a)
    for n in range(20):
        response = client.post(url("verify"), {"token": f"{n:06d}"})
        assert response["Location"].startswith(reverse("login"))
    client.force_login(admin_a)
    client.post(url("verify"), {"token": code_for(device)})
    assert client.session[DEVICE_ID_SESSION_KEY] == device.persistent_id
    assert slept == []


def test_nothing_waits_but_the_site_wide_budget(admin_a, slept, monkeypatch):
    device = confirmed_for(admin_a)
    for a in range(8):
        from_address(admin_a, f"203.0.113.{a + 1}").post(
            url("verify"), {"token": code_for(device, wrong=True)}
        )
    assert slept == []
    monkeypatch.setattr(otp, "OTP_BUDGET", Budget("otp:global", per_minute=2))
    for a in range(4):
        from_address(admin_a, f"203.0.113.{a + 20}").post(url("verify"), {"token": "000000"})
    assert len(slept) == 2 and max(slept) <= limiter.MAX_DELAY


def test_the_owner_is_warned_once_when_wrong_codes_pile_up(admin_a):
    device = confirmed_for(admin_a)
    for a in range(OTP_NEW_DEVICES.limit - 1):
        from_address(admin_a, f"203.0.113.{a + 1}").post(
            url("verify"), {"token": code_for(device, wrong=True)}
        )
    [alert] = mail.outbox
    assert alert.to == [admin_a.email]
    assert "someone else knows your password" in alert.body
    assert "/password-reset/" in alert.body or reverse("password_reset") in alert.body
    assert device.key not in alert.body
    # Short of the cap, the password still works.
    admin_a.refresh_from_db()
    assert admin_a.check_password(PASSWORD)


def test_the_limit_is_per_account(client, admin_a, viewer_a):
    confirmed_for(admin_a)
    theirs = confirmed_for(viewer_a)
    for _ in range(OTP_PER_ACCOUNT_IP.limit + 1):
        otp.token_allowed(admin_a, HERE)
    client.force_login(viewer_a)
    client.post(url("verify"), {"token": code_for(theirs)})
    assert client.session[DEVICE_ID_SESSION_KEY] == theirs.persistent_id


def test_a_right_code_starts_the_count_again(client, admin_a):
    device = confirmed_for(admin_a)
    client.force_login(admin_a)
    for _ in range(OTP_PER_ACCOUNT_IP.limit - 1):
        client.post(url("verify"), {"token": code_for(device, wrong=True)})
    client.post(url("verify"), {"token": code_for(device)})
    assert DEVICE_ID_SESSION_KEY in client.session
    assert OTP_PER_ACCOUNT_IP.hit(f"user:{admin_a.pk} {HERE}").remaining == (
        OTP_PER_ACCOUNT_IP.limit - 1
    )


# --- Removing ------------------------------------------------------------------------------------


def verified_client(client, user: Any) -> TOTPDevice:
    device = confirmed_for(user)
    client.force_login(user)
    client.post(url("verify"), {"token": code_for(device)})
    assert DEVICE_ID_SESSION_KEY in client.session
    return device


def test_the_index_page_offers_removal_with_a_code(client, admin_a):
    verified_client(client, admin_a)
    body = client.get(url("index")).content.decode()
    assert "Remove your authenticator" in body
    assert f'action="{url("remove")}"' in body


def test_removal_is_post_only(client, admin_a):
    verified_client(client, admin_a)
    assert client.get(url("remove")).status_code == 405
    assert TOTPDevice.objects.filter(user=admin_a).exists()


def test_removal_needs_a_fresh_code(client, admin_a):
    device = verified_client(client, admin_a)
    response = client.post(url("remove"), {"token": code_for(device, wrong=True)})
    assert response["Location"] == url("index")
    assert otp.CODE_REFUSED in message_texts(response)
    assert TOTPDevice.objects.filter(pk=device.pk).exists()


def test_removal_with_a_fresh_code(client, admin_a, school, admin_membership, dashboard):
    device = verified_client(client, admin_a)
    response = client.post(url("remove"), {"token": code_for(device)})
    assert response["Location"] == url("index")
    assert not TOTPDevice.objects.filter(user=admin_a).exists()
    assert DEVICE_ID_SESSION_KEY not in client.session
    event = AuditEvent.objects.get(action="staff.second_factor_removed")
    assert event.school == school and event.actor == admin_a
    # No authenticator, not required: the console no longer asks.
    assert decide(client, admin_a, admin_membership, dashboard) is None


def test_no_removal_when_a_school_requires_it(client, admin_a, school):
    device = verified_client(client, admin_a)
    otp.school_require_second_factor(school=school, required=True, actor="test")
    response = client.post(url("remove"), {"token": code_for(device)})
    assert any("requires a second factor" in m for m in message_texts(response))
    assert TOTPDevice.objects.filter(pk=device.pk).exists()
    assert DEVICE_ID_SESSION_KEY in client.session
    assert "cannot remove it" in client.get(url("index")).content.decode()
    # Refused before the code was checked: the code is still good, and no attempt counted.
    device.refresh_from_db()
    assert OTP_PER_ACCOUNT_IP.hit(f"user:{admin_a.pk} {HERE}").remaining == (
        OTP_PER_ACCOUNT_IP.limit - 1
    )


def test_no_removal_when_any_of_the_accounts_schools_requires_it(client, school_b):
    user = make_user("trust@example.org")
    member_of(user, school_b, Role.VIEWER)
    device = verified_client(client, user)
    otp.school_require_second_factor(school=school_b, required=True, actor="test")
    client.post(url("remove"), {"token": code_for(device)})
    assert TOTPDevice.objects.filter(pk=device.pk).exists()


def test_removing_with_nothing_to_remove(client, admin_a):
    client.force_login(admin_a)
    response = client.post(url("remove"), {"token": "123456"})
    assert "You have no authenticator to remove." in message_texts(response)


# --- The school's setting ------------------------------------------------------------------------


def test_an_administrator_makes_it_compulsory_and_it_is_audited(db, school, admin_a):
    otp.school_require_second_factor(school=school, required=True, actor=admin_a)
    school.refresh_from_db()
    assert school.require_second_factor
    event = AuditEvent.objects.get(action="school.second_factor_required")
    assert event.actor == admin_a and event.actor_label == f"user:{admin_a.pk}"
    assert event.detail == {"require_second_factor": True}
    # Saying it again changes nothing and records nothing.
    otp.school_require_second_factor(school=school, required=True, actor=admin_a)
    assert AuditEvent.objects.filter(action__startswith="school.second_factor").count() == 1
    otp.school_require_second_factor(school=school, required=False, actor="cli")
    school.refresh_from_db()
    assert not school.require_second_factor
    assert AuditEvent.objects.filter(action="school.second_factor_optional").count() == 1


def test_staff_without_second_factor_counts_the_schools_staff(db, school, admin_a, viewer_a):
    assert otp.staff_without_second_factor(school) == 2
    confirmed_for(admin_a)
    TOTPDevice.objects.create(user=viewer_a, name="half", confirmed=False)
    assert otp.staff_without_second_factor(school) == 1


def test_schools_default_to_not_requiring_it(school):
    assert school.require_second_factor is False


# --- End to end, once staff_view asks second_factor_redirect ------------------------------------


@pytest.mark.skipif(
    not STAFF_VIEW_ASKS, reason="staff_view does not call otp.second_factor_redirect yet"
)
def test_console_pages_ask_for_the_second_factor(client, admin_a, school, dashboard):
    device = confirmed_for(admin_a)
    client.force_login(admin_a)
    response = client.get(dashboard)
    assert response["Location"] == url("verify", next=dashboard)
    response = client.post(url("verify"), {"token": code_for(device), "next": dashboard})
    assert client.get(response["Location"]).status_code == 200


@pytest.mark.skipif(
    not STAFF_VIEW_ASKS, reason="staff_view does not call otp.second_factor_redirect yet"
)
def test_a_school_that_requires_it_sends_staff_to_set_up(client, viewer_a, school, dashboard):
    otp.school_require_second_factor(school=school, required=True, actor="test")
    client.force_login(viewer_a)
    response = client.get(dashboard)
    assert response["Location"] == url("setup", next=dashboard)
    client.get(response["Location"])
    device = TOTPDevice.objects.get(user=viewer_a)
    response = client.post(url("setup"), {"token": code_for(device), "next": dashboard})
    assert response["Location"] == dashboard
    assert client.get(dashboard).status_code == 200


def test_mistyped_codes_while_setting_up_never_turn_the_owners_password_off(admin_a):
    """Setting up the app, the owner mistypes codes from two addresses (a phone's clock a
    minute out): the addresses wait, but nothing says her password is known to someone else,
    and it still works."""
    device = otp.pending_device(admin_a)
    wrong = code_for(device, wrong=True)
    for ip in ("198.51.100.1", "198.51.100.2", "198.51.100.3"):
        browser = from_address(admin_a, ip)
        for _ in range(OTP_PER_ACCOUNT_IP.limit):
            browser.post(url("setup"), {"token": wrong})
    admin_a.refresh_from_db()
    assert admin_a.check_password(PASSWORD)
    assert mail.outbox == []
    assert not AuditEvent.objects.filter(action="staff.password_disabled").exists()
    assert (
        from_address(admin_a, "198.51.100.9")
        .post(url("setup"), {"token": code_for(device)})
        .status_code
        == 302
    )
    device.refresh_from_db()
    assert device.confirmed
