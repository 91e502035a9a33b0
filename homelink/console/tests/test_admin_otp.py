"""The operators' admin behind the second factor (homelink/console/admin_site.py): no admin page
for a session that has not given a code, operators set up and give codes on the console's
second-factor pages, and no page anywhere shows an authenticator's secret once it is set up.

Every admin URL is walked from the admin site's own URL patterns (each model's and the site's),
so a page added later is walked too."""

from __future__ import annotations

import io
import re
from base64 import b32encode
from typing import Any
from urllib.parse import urlencode

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import URLPattern, URLResolver, reverse
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from homelink.audit.models import AuditEvent
from homelink.console.tests.conftest import World, make_user
from homelink.messaging.models import GatewayHealth, InboundSms, OutboxMessage, SmsBlock
from homelink.staff import otp
from homelink.staff.tests.operators import (
    current_code,
    make_operator,
    verified_operator,
    verified_session,
)

pytestmark = pytest.mark.django_db

#: Site-level admin views not fetched, and why. Any other named admin URL is walked.
NOT_WALKED = {
    "login": "homelink/urls.py answers /admin/login/ first (to the site's sign-in page)",
    "view_on_site": "redirects to the object's own page on the site; no admin page",
}
#: Walked only while not verified: a verified GET would do something (or nothing useful).
ONLY_UNVERIFIED = {"logout"}

RESET_LINK = "https://homelink.example/reset/MQ/c4f9-0123456789abcdef0123456789abcdef/"
PARENT_TEXT = "My code is 824613, thanks"


@pytest.fixture(autouse=True)
def _no_otp_throttle(settings):
    settings.OTP_TOTP_THROTTLE_FACTOR = 0


@pytest.fixture
def everything(world_a: World, admin_a: Any) -> dict[str, Any]:
    """A row of every model the admin registers, including a staff member's confirmed
    authenticator and a local-outbox message holding a working reset link."""
    from homelink.messaging.tasks import deliver

    staff_device = TOTPDevice.objects.create(user=admin_a, name="phone", confirmed=True)
    Group.objects.create(name="helpdesk")
    SmsBlock.objects.create(school=world_a.school, number="+447700900999", keyword="STOP")
    InboundSms.objects.filter(school=world_a.school).update(text=PARENT_TEXT)
    GatewayHealth.objects.create(gateway="outbox")
    deliver.enqueue("sms")
    from homelink.trusts.invitations import trust_invite
    from homelink.trusts.models import TrustMembership
    from homelink.trusts.services import trust_add

    trust = trust_add(name="Admin Trust", schools=[world_a.school], actor="test")
    TrustMembership.objects.create(user=admin_a, trust=trust, role="administrator")
    trust_invite(trust=trust, email="invited@trust.example", role="viewer", actor="test")
    OutboxMessage.objects.create(
        channel="email", to="parent@example.org", subject="Reset", body=f"Go to {RESET_LINK}"
    )
    missing = [
        model._meta.label for model in admin.site._registry if not model._default_manager.exists()
    ]
    assert not missing, f"add a row of {missing} to this fixture, so its pages are walked"
    return {"world": world_a, "staff_device": staff_device}


def _params(pattern: URLPattern) -> list[str]:
    converters = getattr(pattern.pattern, "converters", None)
    if converters is not None:
        return list(converters)
    return list(pattern.pattern.regex.groupindex)


def admin_urls(*, verified: bool) -> list[str]:
    """Every admin page: the site's own views, each app's index, and each model's views (with
    the model's first row where they take one)."""
    site = admin.site
    urls: list[str] = []
    for entry in site.get_urls():
        if isinstance(entry, URLResolver) or not entry.name:
            continue  # the models' includes (below) and the final catch-all
        if entry.name in NOT_WALKED or (verified and entry.name in ONLY_UNVERIFIED):
            continue
        if entry.name == "app_list":
            labels = {model._meta.app_label for model in site._registry}
            urls += [reverse("admin:app_list", kwargs={"app_label": label}) for label in labels]
            continue
        assert not _params(entry), f"walk admin:{entry.name} with its parameters"
        urls.append(reverse(f"admin:{entry.name}"))
    for model, model_admin in site._registry.items():
        row = model._default_manager.order_by("pk").first()
        assert row is not None, model
        for pattern in model_admin.get_urls():
            if not isinstance(pattern, URLPattern) or not pattern.name:
                continue
            kwargs = dict.fromkeys(_params(pattern), row.pk)
            urls.append(reverse(f"admin:{pattern.name}", kwargs=kwargs))
    return urls


def secrets_of(device: TOTPDevice) -> list[str]:
    """The device's key as hex and base32 (plain, lower case and in the set-up page's groups of
    four), and the start of an otpauth URI."""
    b32 = b32encode(device.bin_key).decode("ascii").rstrip("=")
    return [device.key, device.key.upper(), b32, b32.lower(), otp.secret_text(device), "otpauth"]


# --- The admin site ------------------------------------------------------------------------------


def test_the_admin_is_the_second_factor_site():
    from homelink.console.admin_site import OperatorAdminSite, SecretFreeDeviceAdmin

    assert isinstance(admin.site._wrapped, OperatorAdminSite)
    assert admin.site.name == "admin"
    # Every app's registrations are on it, the device's with the secret-free admin.
    labels = {model._meta.label for model in admin.site._registry}
    assert {"schools.School", "register.Member", "staff.StaffMembership"} <= labels
    assert isinstance(admin.site._registry[TOTPDevice], SecretFreeDeviceAdmin)


def test_a_device_admin_that_shows_the_key_cannot_be_registered():
    from django_otp.plugins.otp_totp.admin import TOTPDeviceAdmin

    from homelink.console.admin_site import OperatorAdminSite, SecretFreeDeviceAdmin

    site = OperatorAdminSite("elsewhere")
    site.register(TOTPDevice, TOTPDeviceAdmin)
    registered = site._registry[TOTPDevice]
    assert isinstance(registered, SecretFreeDeviceAdmin)
    assert not isinstance(registered, TOTPDeviceAdmin)


def test_no_changelist_can_be_filtered_on_a_secret(admin_a: Any) -> None:
    """A filter is an oracle: ``?key__startswith=a`` would tell, one character at a time, a key
    that is never shown. Every model's admin refuses filters on secrets (a 400, the same
    whether the guess is right or wrong), and the other filters still work."""
    client = Client(raise_request_exception=False)
    device = TOTPDevice.objects.create(user=admin_a, name="phone", confirmed=True)
    verified_session(client)
    devices = reverse("admin:otp_totp_totpdevice_changelist")
    users = reverse("admin:auth_user_changelist")
    for url, lookup in (
        (devices, f"key__startswith={device.key[:2]}"),
        (devices, f"user__password__startswith={admin_a.password[:4]}"),
        (users, f"password__startswith={admin_a.password[:4]}"),
        (reverse("admin:staff_staffinvitation_changelist"), "token_hash__startswith=a"),
    ):
        assert client.get(f"{url}?{lookup}").status_code == 400, lookup
    assert client.get(f"{devices}?confirmed__exact=1").status_code == 200


def test_operators_enrol_on_the_server_not_on_the_web(client: Client, settings) -> None:
    """On a real install a phished operator password must not be enough to enrol the attacker's
    phone: the web set-up page refuses operators and says how to enrol on the server. School
    staff still set theirs up on the web."""
    settings.HOMELINK_DEV = False
    operator = make_operator()
    client.force_login(operator)
    first = client.get(reverse("admin:index"))
    page = client.get(first["Location"])
    assert page.status_code == 403
    assert "homelink otp enrol --user op@example.org" in page.content.decode()
    answer = client.post(reverse("console_otp:setup"), {"token": "123456"})
    assert answer.status_code == 403
    assert not TOTPDevice.objects.filter(user=operator).exists()
    assert client.get(reverse("admin:index")).status_code == 302


# --- A password is not enough --------------------------------------------------------------------


@pytest.mark.parametrize("superuser", [True, False], ids=["superuser", "is_staff"])
def test_an_operator_signed_in_with_a_password_only_is_sent_to_give_a_code(
    client: Client, everything: dict[str, Any], superuser: bool
) -> None:
    operator = make_operator(superuser=superuser)
    device = TOTPDevice.objects.create(user=operator, name="phone", confirmed=True)
    client.force_login(operator)
    urls = admin_urls(verified=False)
    assert len(urls) > 50
    for url in urls:
        for method in ("get", "post"):
            response = getattr(client, method)(url)
            assert response.status_code == 302, f"{method.upper()} {url}"
            assert response["Location"] == (
                f"{reverse('console_otp:verify')}?{urlencode({'next': url})}"
            ), f"{method.upper()} {url}"
    # Not even a delete went through.
    assert TOTPDevice.objects.filter(pk=device.pk).exists()
    assert TOTPDevice.objects.filter(pk=everything["staff_device"].pk).exists()


def test_an_operator_without_an_authenticator_is_sent_to_set_one_up(
    client: Client, everything: dict[str, Any]
) -> None:
    client.force_login(make_operator())
    for url in admin_urls(verified=False):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"] == f"{reverse('console_otp:setup')}?{urlencode({'next': url})}"


def test_a_verified_session_of_another_account_does_not_count(client: Client, admin_a: Any) -> None:
    operator = make_operator()
    TOTPDevice.objects.create(user=operator, name="phone", confirmed=True)
    theirs = TOTPDevice.objects.create(user=admin_a, name="phone", confirmed=True)
    client.force_login(operator)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = theirs.persistent_id
    session.save()
    response = client.get(reverse("admin:index"))
    assert response["Location"].startswith(reverse("console_otp:verify"))


@pytest.mark.parametrize("who", ["anonymous", "parent", "verified staff"])
def test_people_who_are_not_operators_get_the_sign_in_page(
    client: Client, admin_a: Any, who: str
) -> None:
    if who == "parent":
        client.force_login(make_user("parent@example.org"))  # type: ignore[arg-type]
    elif who == "verified staff":
        verified_operator(client, admin_a)  # a school's administrator with a code, not an operator
    for name in (
        "admin:index",
        "admin:auth_user_changelist",
        "admin:otp_totp_totpdevice_changelist",
    ):
        response = client.get(reverse(name), follow=True)
        # Through /admin/login/ to the site's sign-in page (homelink/urls.py).
        assert response.redirect_chain[-1][0].startswith(f"{reverse('login')}?next=")
        assert response.status_code == 200


def test_the_admins_own_login_view_never_asks_for_a_password(rf: Any) -> None:
    """Reached only if homelink/urls.py stopped sending /admin/login/ to the site's page."""
    from django.contrib.auth.models import AnonymousUser

    request = rf.get("/admin/login/", {"next": "/admin/auth/"})
    request.user = AnonymousUser()
    response = admin.site.login(request)
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next=/admin/auth/"


# --- With a code ---------------------------------------------------------------------------------


def test_after_giving_a_code_the_admin_works(client: Client, everything: dict[str, Any]) -> None:
    operator = make_operator()
    device = TOTPDevice.objects.create(user=operator, name="phone", confirmed=True)
    client.force_login(operator)
    asked = client.get(reverse("admin:index"))
    verify = asked["Location"]
    page = client.get(verify)
    assert page.status_code == 200
    answer = client.post(verify, {"token": current_code(device), "next": reverse("admin:index")})
    assert answer["Location"] == reverse("admin:index")
    assert client.get(reverse("admin:index")).status_code == 200
    for model in admin.site._registry:
        info = (model._meta.app_label, model._meta.model_name)
        assert client.get(reverse("admin:{}_{}_changelist".format(*info))).status_code == 200, info
        row = model._default_manager.order_by("pk").first()
        assert row is not None, info
        change = client.get(reverse("admin:{}_{}_change".format(*info), args=[row.pk]))
        assert change.status_code == 200, info


def test_operators_sign_in_on_the_sites_page_then_give_a_code(client: Client) -> None:
    operator = make_operator("op@example.org")
    device = TOTPDevice.objects.create(user=operator, name="phone", confirmed=True)
    users = reverse("admin:auth_user_changelist")
    signed_in = client.post(
        reverse("login"),
        {"email": "op@example.org", "password": "correct horse battery staple", "next": users},
        follow=True,
    )
    # Password accepted, back to the admin page, and on to the second factor.
    assert [hop for hop, _ in signed_in.redirect_chain] == [
        users,
        f"{reverse('console_otp:verify')}?{urlencode({'next': users})}",
    ]
    answer = client.post(
        reverse("console_otp:verify"), {"token": current_code(device), "next": users}
    )
    assert answer["Location"] == users
    assert client.get(users).status_code == 200


def test_an_operators_first_visit_sets_up_an_authenticator(client: Client) -> None:
    operator = make_operator()
    client.force_login(operator)
    users = reverse("admin:auth_user_changelist")
    setup = client.get(users)["Location"]
    page = client.get(setup)
    assert page.status_code == 200
    device = TOTPDevice.objects.get(user=operator, confirmed=False)
    body = page.content.decode()
    assert otp.secret_text(device) in body and "otpauth://" in body
    assert "operators' admin requires a second factor" in body
    answer = client.post(setup, {"token": current_code(device), "next": users})
    assert answer["Location"] == users
    assert client.get(users).status_code == 200


def test_operators_cannot_remove_their_own_authenticator_on_the_console(client: Client) -> None:
    device = verified_operator(client)
    response = client.post(reverse("console_otp:remove"), {"token": current_code(device)})
    assert response["Location"] == reverse("console_otp:index")
    assert TOTPDevice.objects.filter(pk=device.pk).exists()
    assert "cannot remove it here" in client.get(reverse("console_otp:index")).content.decode()


def test_an_operator_with_no_school_goes_back_to_the_admin(client: Client) -> None:
    operator = make_operator()
    device = TOTPDevice.objects.create(user=operator, name="phone", confirmed=True)
    client.force_login(operator)
    answer = client.post(reverse("console_otp:verify"), {"token": current_code(device)})
    assert answer["Location"] == reverse("admin:index")


# --- No page shows a secret ----------------------------------------------------------------------


def test_no_admin_page_shows_an_authenticators_secret_or_a_reset_link(
    client: Client, everything: dict[str, Any]
) -> None:
    own = verified_session(client)
    devices = [own, everything["staff_device"]]
    forbidden = [s for d in devices for s in secrets_of(d)]
    forbidden += [
        RESET_LINK,
        RESET_LINK.split("/")[-2],
        PARENT_TEXT,
        str(client.session.session_key),
    ]
    forbidden.append(everything["world"].code.code_hash)  # a letter's code, hashed
    walked = 0
    for url in admin_urls(verified=True):
        response = client.get(url)
        assert response.status_code in (200, 302, 403, 405), url
        if response.status_code == 302:
            assert not response["Location"].startswith(reverse("console_otp:verify")), url
        body = response.content.decode()
        for secret in forbidden:
            assert secret not in body, (url, secret)
        walked += 1
    assert walked > 50
    # django-otp's configuration and QR code pages do not exist.
    for gone in ("otp_totp_totpdevice_config", "otp_totp_totpdevice_qrcode"):
        assert not any(
            p.name == gone
            for p in admin.site._registry[TOTPDevice].get_urls()
            if isinstance(p, URLPattern)
        )


def test_devices_are_listed_read_only_without_add(client: Client, admin_a: Any) -> None:
    device = TOTPDevice.objects.create(user=admin_a, name="phone", confirmed=True)
    verified_session(client)
    listing = client.get(reverse("admin:otp_totp_totpdevice_changelist")).content.decode()
    assert "office@a.example" in listing
    assert client.get(reverse("admin:otp_totp_totpdevice_add")).status_code == 403
    change = reverse("admin:otp_totp_totpdevice_change", args=[device.pk])
    client.post(change, {"user": admin_a.pk, "name": "x", "confirmed": "on", "key": "00" * 20})
    device.refresh_from_db()
    assert device.name == "phone"
    assert device.key != "00" * 20


def test_an_operator_deletes_a_lost_authenticator(client: Client, admin_a: Any, school) -> None:
    staff_client = Client()
    lost = verified_operator(staff_client, admin_a)
    operator_device = verified_operator(client)
    response = client.post(
        reverse("admin:otp_totp_totpdevice_delete", args=[lost.pk]), {"post": "yes"}
    )
    assert response.status_code == 302
    assert not TOTPDevice.objects.filter(pk=lost.pk).exists()
    event = AuditEvent.objects.get(action="staff.second_factor_removed")
    assert event.school == school
    assert event.actor_label == f"admin:{operator_device.user_id}"
    assert event.detail == {"user_id": admin_a.pk, "device_id": lost.pk}
    # The staff member's session verified by it is no longer verified: they set up a new one.
    page = staff_client.get(reverse("console_otp:verify"))
    assert page.status_code == 302  # nothing to verify with any more


def test_bulk_deleting_devices_audits_each(client: Client, admin_a: Any, viewer_a: Any) -> None:
    ids = [
        TOTPDevice.objects.create(user=user, name="phone", confirmed=True).pk
        for user in (admin_a, viewer_a)
    ]
    verified_operator(client)
    client.post(
        reverse("admin:otp_totp_totpdevice_changelist"),
        {"action": "delete_selected", "_selected_action": ids, "post": "yes"},
    )
    assert not TOTPDevice.objects.filter(pk__in=ids).exists()
    assert AuditEvent.objects.filter(action="staff.second_factor_removed").count() == 2


@pytest.mark.parametrize("who", ["staff", "operator"])
def test_the_set_up_page_stops_showing_the_secret_once_confirmed(
    client: Client, admin_a: Any, who: str
) -> None:
    user = admin_a if who == "staff" else make_operator()
    client.force_login(user)
    setup = reverse("console_otp:setup")
    first = client.get(setup)
    assert first.status_code == 200
    device = TOTPDevice.objects.get(user=user)
    secrets = secrets_of(device)
    assert otp.secret_text(device) in first.content.decode()
    confirmed = client.post(setup, {"token": current_code(device)})
    assert confirmed.status_code == 302
    device.refresh_from_db()
    assert device.confirmed
    for response in (
        client.get(setup),
        client.get(setup, follow=True),
        client.post(setup, {"token": "123456"}, follow=True),
        client.get(reverse("console_otp:index")),
        client.get(reverse("console_otp:verify"), follow=True),
    ):
        body = response.content.decode()
        for secret in secrets:
            assert secret not in body
    # A new sign-in (password only) gets no secret either.
    client.logout()
    client.force_login(user)
    for response in (client.get(setup, follow=True), client.get(reverse("console_otp:index"))):
        body = response.content.decode()
        assert not any(secret in body for secret in secrets)


# --- Setting up from the terminal ----------------------------------------------------------------


class CodeFromOutput(io.StringIO):
    """Standard input that answers with the current code of the secret the command printed
    (as a person reading the terminal into their app would), or a wrong one."""

    def __init__(self, out: io.StringIO, *, wrong: bool = False) -> None:
        super().__init__()
        self.out = out
        self.wrong = wrong

    def readline(self, size: int | None = -1) -> str:  # type: ignore[override]
        secret = re.search(r"Secret: ([A-Z2-7 ]+)", self.out.getvalue()).group(1)  # type: ignore[union-attr]
        from base64 import b32decode

        key = b32decode(secret.replace(" ", "") + "=" * (-len(secret.replace(" ", "")) % 8))
        token = TOTP(key).token()
        if self.wrong:
            token = (token + 500_000) % 1_000_000
        return f"{token:06d}\n"


def test_the_command_sets_up_an_operators_authenticator(db: None) -> None:
    operator = make_operator()
    out = io.StringIO()
    call_command("otp", "enrol", "--user", "OP@example.org", stdin=CodeFromOutput(out), stdout=out)
    printed = out.getvalue()
    device = TOTPDevice.objects.get(user=operator)
    assert device.confirmed
    assert printed.count(otp.secret_text(device)) == 1
    assert "otpauth://totp/homelink%3Aop%40example.org?secret=" in printed
    assert "is set up" in printed
    # The code typed in the terminal is not accepted again.
    assert device.last_t >= 0


def test_the_command_saves_nothing_without_a_right_code(db: None) -> None:
    operator = make_operator()
    out = io.StringIO()
    with pytest.raises(CommandError, match="nothing was saved"):
        call_command(
            "otp",
            "enrol",
            "--user",
            operator.email,
            stdin=CodeFromOutput(out, wrong=True),
            stdout=out,
        )
    assert not TOTPDevice.objects.filter(user=operator).exists()


def test_the_command_replaces_only_when_asked(db: None) -> None:
    operator = make_operator()
    old = TOTPDevice.objects.create(user=operator, name="lost", confirmed=True)
    out = io.StringIO()
    with pytest.raises(CommandError, match="--replace"):
        call_command("otp", "enrol", "--user", operator.email, stdin=io.StringIO(), stdout=out)
    assert "Secret" not in out.getvalue()
    call_command(
        "otp", "enrol", "--user", operator.email, "--replace", stdin=CodeFromOutput(out), stdout=out
    )
    assert not TOTPDevice.objects.filter(pk=old.pk).exists()
    assert TOTPDevice.objects.filter(user=operator, confirmed=True).count() == 1


def test_the_command_refuses_a_parents_account(db: None) -> None:
    make_user("parent@example.org")
    with pytest.raises(CommandError, match="neither a site operator nor school staff"):
        call_command("otp", "enrol", "--user", "parent@example.org", stdin=io.StringIO())
