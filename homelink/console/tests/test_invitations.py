"""Staff invitations: a role reaches an account only when the owner of its mailbox accepts the
emailed link, so registering a future colleague's address first gains nothing.

Through the client as the people involved would: an attacker who signs up at /register/ with the
address, the school's administrator on the Staff page (or the operator with ``homelink staff``),
and the real owner reading the email."""

from __future__ import annotations

import importlib
import io
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from homelink.accounts.models import Parent
from homelink.audit.models import AuditEvent
from homelink.console.tests.conftest import make_user
from homelink.schools.models import School
from homelink.staff import invitations
from homelink.staff.invitations import (
    INVITATION_PER_IP,
    invitation_accept,
    staff_invite,
    token_hash,
)
from homelink.staff.models import Role, StaffInvitation, StaffMembership
from homelink.staff.selectors import email_confirmed
from homelink.staff.testing import confirm_email_directly

PUBLIC = "https://homelink.example.org"
OWNER = "head@school.example"
ATTACKER_PASSWORD = "attackers own passphrase 9"
OWNER_PASSWORD = "owners brand new passphrase 7"
LINK = re.compile(re.escape(PUBLIC) + r"(/staff/invitation/([A-Za-z0-9_-]+)/)")


@pytest.fixture(autouse=True)
def _public_url(settings: Any) -> None:
    settings.HOMELINK_PUBLIC_URL = PUBLIC


@pytest.fixture
def mailing(django_capture_on_commit_callbacks: Any) -> Callable[[], Any]:
    """``with mailing():`` runs what commits inside it, then sends the mail it queued (the
    test's own transaction never commits, so nothing would go out otherwise)."""

    def run() -> Any:
        return django_capture_on_commit_callbacks(execute=True)

    return run


@pytest.fixture
def admin_client(client: Client, admin_a: Any) -> Client:
    client.force_login(admin_a)
    return client


def staff_url(school: School, name: str = "staff", **ids: Any) -> str:
    return reverse(f"console:{name}", kwargs={"urn": school.urn, **ids})


def dashboard(school: School) -> str:
    return staff_url(school, "dashboard")


def link_in(message: Any) -> tuple[str, str]:
    """(path, token) of the acceptance link in an invitation email."""
    found = LINK.search(message.body)
    assert found is not None, message.body
    return found.group(1), found.group(2)


def open_path() -> str:
    """Where the page is served once the link's token is in the session."""
    return reverse("staff_invitation", args=["open"])


def open_link(client: Client, path: str) -> Any:
    """Follow an invitation link: its token goes into the session, and the page is served at
    an address without it."""
    response = client.get(path)
    assert response.status_code == 302 and response["Location"] == open_path(), path
    return client.get(open_path())


def accept_as_new(path: str, password: str = OWNER_PASSWORD) -> Any:
    client = Client()
    open_link(client, path)
    return client.post(open_path(), {"password1": password, "password2": password})


def invitation_mail(to: str) -> Any:
    sent = [m for m in mail.outbox if m.to == [to]]
    assert sent, [m.to for m in mail.outbox]
    return sent[-1]


def sign_up(address: str, password: str = ATTACKER_PASSWORD) -> Client:
    """Someone registers the address at /register/ and never confirms it."""
    attacker = Client()
    response = attacker.post(
        reverse("register"),
        {
            "email": address,
            "forename": "Mallory",
            "surname": "Example",
            "password1": password,
            "password2": password,
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    user = get_user_model().objects.get(username=address)
    assert not email_confirmed(user)
    return attacker


def invite_on_the_staff_page(client: Client, school: School, address: str, role: str) -> Any:
    return client.post(staff_url(school, "staff_add"), {"email": address, "role": role})


def staff_command(*args: str, stdin: str = "") -> str:
    out = io.StringIO()
    call_command("staff", *args, stdin=io.StringIO(stdin), stdout=out, stderr=out)
    return out.getvalue()


# --- Registering first gains nothing ------------------------------------------------------------


def test_a_pre_registered_address_added_on_the_staff_page_gets_404(
    admin_client, school, admin_a, mailing
):
    attacker = sign_up(OWNER)
    with mailing():
        response = invite_on_the_staff_page(admin_client, school, OWNER, Role.ADMINISTRATOR)
    assert response.status_code == 302
    squatter = get_user_model().objects.get(username=OWNER)
    assert not StaffMembership.objects.filter(user=squatter).exists()
    assert attacker.get(dashboard(school)).status_code == 404
    assert attacker.get(staff_url(school)).status_code == 404
    # Not even the school's name on the console's home page.
    home = attacker.get(reverse("console:home"))
    assert school.name not in home.content.decode()
    # The email went to the address, with a link to accept: not a role.
    assert invitation_mail(OWNER).subject.startswith(school.name)


def test_a_pre_registered_address_added_by_the_command_gets_404(school, mailing):
    attacker = sign_up(OWNER)
    with mailing():
        out = staff_command(
            "add", "--school", school.urn, "--email", OWNER, "--role", "administrator"
        )
    assert "they get the role when they accept" in out
    assert not StaffMembership.objects.exists()
    assert attacker.get(dashboard(school)).status_code == 404
    # The printed link is the emailed one.
    path, _ = link_in(invitation_mail(OWNER))
    assert PUBLIC + path in out


def test_an_old_membership_of_an_unconfirmed_account_grants_nothing(school):
    """Defence in depth: however a membership came to an account nobody proved the address
    of (before invitations existed, or by hand), the console answers as for a stranger."""
    attacker = sign_up(OWNER)
    squatter = get_user_model().objects.get(username=OWNER)
    StaffMembership.objects.create(user=squatter, school=school, role=Role.ADMINISTRATOR)
    assert attacker.get(dashboard(school)).status_code == 404
    assert attacker.get(staff_url(school)).status_code == 404
    confirm_email_directly(squatter)
    assert attacker.get(dashboard(school)).status_code == 200


# --- The owner accepts ---------------------------------------------------------------------------


def test_the_owner_accepts_from_the_email_and_the_squatter_is_locked_out(
    admin_client, school, admin_a, mailing
):
    attacker = sign_up(OWNER)
    squatter = get_user_model().objects.get(username=OWNER)
    # What an attacker with a seat would do first: enrol their own authenticator.
    TOTPDevice.objects.create(user=squatter, name="attacker's phone", confirmed=True)
    with mailing():
        invite_on_the_staff_page(admin_client, school, OWNER, Role.ADMINISTRATOR)
    path, _ = link_in(invitation_mail(OWNER))

    owner = Client()
    page = open_link(owner, path)
    assert page.status_code == 200
    html = page.content.decode()
    assert school.name in html and "administrator" in html
    assert "never confirmed" in html and 'name="password1"' in html
    response = owner.post(open_path(), {"password1": OWNER_PASSWORD, "password2": OWNER_PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == dashboard(school)

    squatter.refresh_from_db()
    membership = StaffMembership.objects.get(user=squatter, school=school)
    assert membership.role == Role.ADMINISTRATOR
    assert email_confirmed(squatter)
    assert squatter.check_password(OWNER_PASSWORD)
    assert not squatter.check_password(ATTACKER_PASSWORD)
    assert not TOTPDevice.objects.filter(user=squatter).exists()
    # The owner is signed in and works in the console.
    assert owner.get(dashboard(school)).status_code == 200
    # The attacker's session ended with the password, and the old password no longer signs in.
    assert attacker.get(reverse("account"))["Location"].startswith(reverse("login"))
    again = Client().post(reverse("login"), {"email": OWNER, "password": ATTACKER_PASSWORD})
    assert again.status_code == 200 and not again.wsgi_request.user.is_authenticated
    # The audit trail names ids, never the address.
    event = AuditEvent.objects.get(action="staff.added")
    assert event.detail == {
        "role": "administrator",
        "user_id": squatter.pk,
        "invitation_id": StaffInvitation.objects.get().pk,
        "account": "reclaimed",
        "authenticators_removed": 1,
    }
    for event in AuditEvent.objects.all():
        assert OWNER not in str(event.detail), event.action


def test_the_owner_signed_in_to_their_own_unconfirmed_account_stays_signed_in(school, mailing):
    """They registered as a parent and never confirmed: accepting sets a new password, and
    this session carries on (only the account's other sessions end)."""
    own = sign_up(OWNER)
    with mailing():
        invited = staff_invite(school=school, email=OWNER, role="viewer", actor="cli")
    open_link(own, invited.url.removeprefix(PUBLIC))
    response = own.post(open_path(), {"password1": OWNER_PASSWORD, "password2": OWNER_PASSWORD})
    assert response["Location"] == dashboard(school)
    assert own.get(dashboard(school)).status_code == 200


def test_a_change_of_address_the_squatter_started_is_cancelled(school, mailing):
    """Confirmed later, it would move the account, and its new role, to the attacker."""
    sign_up(OWNER)
    squatter = get_user_model().objects.get(username=OWNER)
    Parent.objects.filter(user=squatter).update(pending_email="mallory@evil.example")
    with mailing():
        invited = staff_invite(school=school, email=OWNER, role="viewer", actor="cli")
    token = invited.url.rstrip("/").rsplit("/", 1)[1]
    invitation_accept(token=token, user=None, password=OWNER_PASSWORD)
    assert Parent.objects.get(user=squatter).pending_email == ""


def test_a_new_address_chooses_a_password_and_is_signed_in(admin_client, school, mailing):
    with mailing():
        response = invite_on_the_staff_page(
            admin_client, school, "New.Teacher@School.example", "sender"
        )
    assert response.status_code == 302
    address = "new.teacher@school.example"
    path, token = link_in(invitation_mail(address))
    assert not get_user_model().objects.filter(username=address).exists()

    newcomer = Client()
    page = open_link(newcomer, path).content.decode()
    assert "Choose a password" in page and "never confirmed" not in page
    weak = newcomer.post(open_path(), {"password1": "password", "password2": "password"})
    assert weak.status_code == 400
    assert "too common" in weak.content.decode()
    assert not get_user_model().objects.filter(username=address).exists()
    different = newcomer.post(
        open_path(), {"password1": OWNER_PASSWORD, "password2": "something else"}
    )
    assert different.status_code == 400

    response = newcomer.post(
        open_path(), {"password1": OWNER_PASSWORD, "password2": OWNER_PASSWORD}
    )
    assert response.status_code == 302 and response["Location"] == dashboard(school)
    user = get_user_model().objects.get(username=address)
    assert user.email == address and user.check_password(OWNER_PASSWORD)
    assert email_confirmed(user)
    assert StaffMembership.objects.get(user=user, school=school).role == Role.SENDER
    assert newcomer.get(dashboard(school)).status_code == 200
    # The token is not kept anywhere, only its keyed hash.
    row = StaffInvitation.objects.get()
    assert token not in str(list(StaffInvitation.objects.values_list()))
    assert row.token_hash == token_hash(token) and row.accepted_by == user


def test_a_confirmed_account_signs_in_to_accept(admin_client, school, school_b, mailing):
    owner_user = make_user(OWNER)
    confirm_email_directly(owner_user)
    TOTPDevice.objects.create(user=owner_user, name="own phone", confirmed=True)
    with mailing():
        invite_on_the_staff_page(admin_client, school, OWNER, Role.VIEWER)
    path, _ = link_in(invitation_mail(OWNER))

    owner = Client()
    response = open_link(owner, path)
    assert response.status_code == 302
    # The token stays in the session: the sign-in page's address does not carry it.
    assert response["Location"] == f"{reverse('login')}?next={open_path()}"
    post = owner.post(open_path(), {"password1": "x", "password2": "x"})
    assert post.status_code == 302 and post["Location"].startswith(reverse("login"))
    assert not StaffMembership.objects.filter(user=owner_user).exists()

    signed_in = owner.post(
        response["Location"],
        {"email": OWNER, "password": "correct horse battery staple", "next": open_path()},
    )
    assert signed_in["Location"] == open_path()
    page = owner.get(open_path()).content.decode()
    assert "Accept the invitation" in page and 'name="password1"' not in page
    response = owner.post(open_path())
    assert response.status_code == 302
    assert StaffMembership.objects.get(user=owner_user, school=school).role == Role.VIEWER
    owner_user.refresh_from_db()
    # Their password and their own authenticator are theirs to keep.
    assert owner_user.check_password("correct horse battery staple")
    assert TOTPDevice.objects.filter(user=owner_user).exists()
    assert AuditEvent.objects.get(action="staff.added").detail["account"] == "existing"


def test_a_different_signed_in_account_is_refused_and_nothing_changes(
    admin_client, school, admin_a, mailing
):
    for address, confirmed in ((OWNER, True), ("nobody.yet@school.example", False)):
        if confirmed:
            confirm_email_directly(make_user(address))
        with mailing():
            invite_on_the_staff_page(admin_client, school, address, Role.ADMINISTRATOR)
        path, _ = link_in(invitation_mail(address))
        before = list(StaffMembership.objects.values_list())
        for response in (
            open_link(admin_client, path),
            admin_client.post(
                open_path(), {"password1": OWNER_PASSWORD, "password2": OWNER_PASSWORD}
            ),
        ):
            assert response.status_code == 403
            assert "Sign out first" in response.content.decode()
        assert list(StaffMembership.objects.values_list()) == before
        assert StaffInvitation.objects.get(email=address).accepted_at is None
    assert not get_user_model().objects.filter(username="nobody.yet@school.example").exists()


# --- Links that do not work ----------------------------------------------------------------------


def _unavailable_page(client: Client, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 404, path
    return response.content.decode()


def test_expired_revoked_used_replaced_and_unknown_links_get_one_answer(
    admin_client, school, mailing
):
    def invite(address: str) -> str:
        with mailing():
            invite_on_the_staff_page(admin_client, school, address, Role.VIEWER)
        return link_in(invitation_mail(address))[0]

    expired = invite("expired@school.example")
    StaffInvitation.objects.filter(email="expired@school.example").update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    revoked = invite("revoked@school.example")
    admin_client.post(
        staff_url(
            school,
            "staff_invitation_revoke",
            invitation_id=StaffInvitation.objects.get(email="revoked@school.example").pk,
        )
    )
    used = invite("used@school.example")
    assert accept_as_new(used)["Location"] == dashboard(school)
    replaced = invite("replaced@school.example")
    invite("replaced@school.example")  # a second invitation: a new link, the old one dead
    unknown = reverse("staff_invitation", args=["A" * 43])
    malformed = reverse("staff_invitation", args=["not-a-token"])

    before = (
        list(StaffInvitation.objects.order_by("pk").values_list()),
        list(StaffMembership.objects.order_by("pk").values_list()),
        get_user_model().objects.count(),
    )
    stranger = Client()
    answers = {_unavailable_page(stranger, path) for path in (expired, revoked, used, replaced)}
    answers |= {_unavailable_page(stranger, path) for path in (unknown, malformed)}
    assert len(answers) == 1
    for path in (expired, revoked, used, replaced, unknown, open_path()):
        response = stranger.post(path, {"password1": OWNER_PASSWORD, "password2": OWNER_PASSWORD})
        assert response.status_code == 404
    after = (
        list(StaffInvitation.objects.order_by("pk").values_list()),
        list(StaffMembership.objects.order_by("pk").values_list()),
        get_user_model().objects.count(),
    )
    assert after == before


def test_guessing_tokens_is_limited_per_address(school, mailing):
    with mailing():
        invited = staff_invite(school=school, email=OWNER, role="viewer", actor="cli")
    path = invited.url.removeprefix(PUBLIC)
    guesser = Client(REMOTE_ADDR="203.0.113.9")
    for n in range(INVITATION_PER_IP.limit):
        token = f"{n:043d}"
        assert guesser.get(reverse("staff_invitation", args=[token])).status_code == 404
    # Past the limit even the right link gets the same answer from that address…
    assert guesser.get(path).status_code == 404
    # …but not from the owner's.
    assert open_link(Client(REMOTE_ADDR="198.51.100.7"), path).status_code == 200
    # A person opening their own link does not use up the limit.
    owner = Client(REMOTE_ADDR="198.51.100.8")
    for _ in range(INVITATION_PER_IP.limit + 5):
        assert open_link(owner, path).status_code == 200


# --- The Staff page ------------------------------------------------------------------------------


def test_the_staff_page_answers_the_same_whether_or_not_the_address_has_an_account(
    admin_client, school, school_b, admin_a
):
    """Byte for byte, apart from the address: one school's administrator cannot learn whether
    an address is a parent, or staff at another school, anywhere on the install."""
    confirmed_elsewhere = "teacher@trust.example"
    other_school_staff = make_user(confirmed_elsewhere)
    confirm_email_directly(other_school_staff)
    StaffMembership.objects.create(user=other_school_staff, school=school_b, role="administrator")
    unconfirmed = "parent@home.example"
    sign_up(unconfirmed)
    nobody = "nobody@nowhere.example"

    def answer(address: str) -> tuple[Any, ...]:
        savepoint = transaction.savepoint()
        response = invite_on_the_staff_page(admin_client, school, address, Role.ADMINISTRATOR)
        page = admin_client.get(response["Location"])
        transaction.savepoint_rollback(savepoint)
        body = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", page.content.decode())
        body = re.sub(r"\d{1,2} \w{3} \d{4}(, \d{2}:\d{2})?", "DATE", body)
        # Each try is rolled back, but PostgreSQL's sequences are not: the new row's id moves on.
        body = re.sub(r"/invitations/\d+/", "/invitations/ID/", body)
        return (
            response.status_code,
            response["Location"],
            response.content,
            page.status_code,
            body.replace(address, "ADDRESS"),
        )

    answers = [answer(a) for a in (confirmed_elsewhere, unconfirmed, nobody)]
    assert answers[0] == answers[1] == answers[2]
    assert (
        "We emailed an invitation to ADDRESS. They get the role when they accept it."
        in (answers[0][4])
    )


def test_the_staff_page_lists_waiting_invitations_to_send_again_or_withdraw(
    admin_client, school, mailing
):
    with mailing():
        invite_on_the_staff_page(admin_client, school, OWNER, Role.SENDER)
    first_path, _ = link_in(invitation_mail(OWNER))
    invitation = StaffInvitation.objects.get()
    html = admin_client.get(staff_url(school)).content.decode()
    assert OWNER in html and "Sender" in html
    assert staff_url(school, "staff_invitation_resend", invitation_id=invitation.pk) in html
    assert staff_url(school, "staff_invitation_revoke", invitation_id=invitation.pk) in html
    assert invitation.token_hash not in html

    # Inviting the address again refreshes the one invitation: the new role, a new link.
    with mailing():
        invite_on_the_staff_page(admin_client, school, OWNER, Role.VIEWER)
    assert StaffInvitation.objects.count() == 1
    assert StaffInvitation.objects.get().role == Role.VIEWER
    second_path, _ = link_in(invitation_mail(OWNER))
    assert second_path != first_path
    assert Client().get(first_path).status_code == 404

    with mailing():
        resent = admin_client.post(
            staff_url(school, "staff_invitation_resend", invitation_id=invitation.pk)
        )
    assert resent.status_code == 302
    third_path, _ = link_in(invitation_mail(OWNER))
    assert Client().get(second_path).status_code == 404
    assert open_link(Client(), third_path).status_code == 200
    assert len(mail.outbox) == 3

    revoked = admin_client.post(
        staff_url(school, "staff_invitation_revoke", invitation_id=invitation.pk), follow=True
    )
    assert "The invitation to head@school.example is withdrawn" in revoked.content.decode()
    assert StaffInvitation.objects.get().revoked_at is not None
    assert Client().get(third_path).status_code == 404
    assert OWNER not in admin_client.get(staff_url(school)).content.decode()
    actions = list(AuditEvent.objects.order_by("pk").values_list("action", flat=True))
    assert actions == [
        "staff.invited",
        "staff.invited",
        "staff.invitation_resent",
        "staff.invitation_revoked",
    ]
    for event in AuditEvent.objects.all():
        assert OWNER not in str(event.detail)


def test_inviting_someone_already_on_this_schools_staff_says_so(admin_client, school, admin_a):
    response = invite_on_the_staff_page(admin_client, school, "OFFICE@a.example", "viewer")
    assert response.status_code == 400
    assert "already on the staff here" in response.content.decode()
    assert not StaffInvitation.objects.exists()
    assert not mail.outbox


def test_the_forms_are_protected_against_cross_site_posts(school, admin_a, mailing):
    with mailing():
        invited = staff_invite(school=school, email=OWNER, role="viewer", actor="cli")
    path = invited.url.removeprefix(PUBLIC)
    strict = Client(enforce_csrf_checks=True)
    page = open_link(strict, path).content.decode()
    assert page.count('<form method="post"') == page.count('name="csrfmiddlewaretoken"') == 1
    forged = strict.post(open_path(), {"password1": OWNER_PASSWORD, "password2": OWNER_PASSWORD})
    assert forged.status_code == 403
    assert not get_user_model().objects.filter(username=OWNER).exists()

    strict.force_login(admin_a)
    html = strict.get(staff_url(school)).content.decode()
    assert html.count('<form method="post"') == html.count('name="csrfmiddlewaretoken"')
    invitation = StaffInvitation.objects.get()
    for url, data in (
        (staff_url(school, "staff_add"), {"email": "x@school.example", "role": "viewer"}),
        (staff_url(school, "staff_invitation_resend", invitation_id=invitation.pk), {}),
        (staff_url(school, "staff_invitation_revoke", invitation_id=invitation.pk), {}),
    ):
        assert strict.post(url, data).status_code == 403, url
    assert list(StaffInvitation.objects.values_list("token_hash", "revoked_at")) == [
        (invitation.token_hash, None)
    ]


# --- Existing staff, the demo ------------------------------------------------------------------


class AppsBeforeTheMove:
    """The app registry as that migration sees it: the staff models were the console's then
    (they moved to homelink.staff, tables and all, in console/migrations/0004)."""

    def get_model(self, app_label: str, model_name: str) -> Any:
        return apps.get_model("staff" if app_label == "console" else app_label, model_name)


def test_the_migration_confirms_staff_made_by_the_tools_and_suspends_squatters(school):
    """Staff accounts made by `homelink staff add` or the Staff page have no Parent row (a
    sign-up always makes one): confirmed. A sign-up never confirmed loses its role, which
    waits as an invitation for the mailbox's owner."""
    migration = importlib.import_module("homelink.console.migrations.0003_staff_emails_confirmed")
    made_by_tools = make_user("made@school.example")
    StaffMembership.objects.create(user=made_by_tools, school=school, role="administrator")
    # Made by the tools too, then opened /account/ a day later (which makes an empty row).
    visitor = make_user("visitor@school.example")
    StaffMembership.objects.create(user=visitor, school=school, role="administrator")
    Parent.objects.create(user=visitor)
    Parent.objects.filter(user=visitor).update(created_at=timezone.now() + timedelta(days=1))
    sign_up(OWNER)
    squatter = get_user_model().objects.get(username=OWNER)
    StaffMembership.objects.create(user=squatter, school=school, role="sender")

    migration.forwards(AppsBeforeTheMove(), None)

    assert email_confirmed(made_by_tools) and email_confirmed(visitor)
    assert StaffMembership.objects.filter(user=made_by_tools).exists()
    assert StaffMembership.objects.filter(user=visitor).exists()
    assert not email_confirmed(squatter)
    assert not StaffMembership.objects.filter(user=squatter).exists()
    waiting = StaffInvitation.objects.get()
    assert (waiting.email, waiting.role) == (OWNER, "sender")
    assert waiting.expires_at <= timezone.now()  # nobody holds its link: it is sent again
    event = AuditEvent.objects.get(action="staff.removed")
    assert event.detail["reason"] == "email_not_confirmed"


def test_the_demo_still_prints_a_working_console_login(db, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    out = io.StringIO()
    call_command("demo", "--no-serve", "--pupils", "5", stdout=out)
    from homelink.schools.management.commands.demo import ADMIN_USERNAME, DEMO_URN

    password = re.search(r"^\s*password: (\S+)$", out.getvalue(), re.MULTILINE)
    assert password is not None, out.getvalue()
    client = Client()
    response = client.post(
        reverse("login"), {"email": ADMIN_USERNAME, "password": password.group(1)}
    )
    assert response.status_code == 302
    assert client.get(reverse("console:dashboard", kwargs={"urn": DEMO_URN})).status_code == 200


# --- The command line ----------------------------------------------------------------------------


@contextmanager
def _no_mail_sent() -> Iterator[None]:
    before = len(mail.outbox)
    yield
    assert len(mail.outbox) == before


def test_the_command_refuses_a_password_on_standard_input(school, mailing):
    with mailing(), _no_mail_sent(), pytest.raises(CommandError, match="takes no password"):
        staff_command(
            "add",
            "--school",
            school.urn,
            "--email",
            OWNER,
            "--role",
            "administrator",
            stdin="plum-orchard-velvet-42\n",
        )
    assert not StaffInvitation.objects.exists()
    assert not get_user_model().objects.exists()


def test_the_real_command_refuses_a_piped_password_before_anything_else():
    script = Path(sys.executable).parent / "homelink"
    done = subprocess.run(
        [script, "staff", "add", "--school", "000000", "--email", OWNER, "--role", "viewer"],
        input="plum-orchard-velvet-42\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "takes no password" in done.stderr
    assert "plum-orchard" not in done.stderr + done.stdout


def confirmation_link(to: str) -> str:
    sent = [m for m in mail.outbox if m.to == [to] and "/account/confirm/" in m.body]
    assert sent, [m.to for m in mail.outbox]
    found = re.search(r"https?://\S+(/account/confirm/\S+/)", str(sent[-1].body))
    assert found is not None
    return found.group(1)


def test_a_pending_change_of_address_cannot_carry_the_role_away(admin_client, school, mailing):
    """The squatter registers the address, asks to move the account to their own address and
    keeps that link; the owner confirms the sign-up email that reached them, resets the password,
    signs in and accepts. The squatter's saved link must then do nothing."""
    attacker = Client()
    with mailing():
        attacker.post(
            reverse("register"),
            {
                "email": OWNER,
                "forename": "Mallory",
                "surname": "Example",
                "password1": ATTACKER_PASSWORD,
                "password2": ATTACKER_PASSWORD,
            },
        )
    with mailing():
        attacker.post(reverse("details"), {"email": "mallory@evil.example", "mobile": ""})
    saved = confirmation_link("mallory@evil.example")
    # The owner follows the sign-up confirmation that came to their inbox.
    assert Client().get(confirmation_link(OWNER)).status_code == 302
    squatter = get_user_model().objects.get(username=OWNER)
    assert email_confirmed(squatter)
    # ... resets the password by email, signs in, and accepts the invitation.
    squatter.set_password(OWNER_PASSWORD)
    squatter.save()
    with mailing():
        invite_on_the_staff_page(admin_client, school, OWNER, Role.ADMINISTRATOR)
    path, _ = link_in(invitation_mail(OWNER))
    owner = Client()
    owner.force_login(squatter)
    open_link(owner, path)
    assert owner.post(open_path(), {})["Location"] == dashboard(school)
    assert StaffMembership.objects.filter(user=squatter, school=school).exists()
    # The attacker's saved link no longer moves the account.
    assert Client().get(saved).status_code == 400
    squatter.refresh_from_db()
    assert squatter.email == OWNER and squatter.username == OWNER
    assert Parent.objects.get(user=squatter).pending_email == ""


def test_a_first_confirmation_drops_changes_asked_before_it(db):
    from homelink.accounts.tests.conftest import make_parent

    user = make_parent("first@example.org", confirmed=False)
    Parent.objects.filter(user=user).update(pending_email="else@example.org")
    from homelink.accounts import services, tokens

    link = tokens.make_email_token(
        user_id=user.pk, email="first@example.org", password_hash=user.password
    )
    services.email_confirm(token=link)
    parent = Parent.objects.get(user=user)
    assert parent.email_verified_at is not None and parent.pending_email == ""


def test_a_new_password_voids_confirmation_links_sent_before(db):
    from homelink.accounts import services, tokens
    from homelink.accounts.tests.conftest import make_parent

    user = make_parent("reset@example.org")
    Parent.objects.filter(user=user).update(pending_email="moved@example.org")
    before = tokens.make_email_token(
        user_id=user.pk, email="moved@example.org", password_hash=user.password
    )
    user.set_password("a completely new passphrase 3")
    user.save()
    with pytest.raises(services.ConfirmationFailed, match="password was changed"):
        services.email_confirm(token=before)
    user.refresh_from_db()
    assert user.email == "reset@example.org"


# --- Limits on sending ---------------------------------------------------------------------------


def test_a_schools_administrators_cannot_mail_without_end(admin_client, school, mailing):
    """The console sends an email with a school name its administrator chose to any address:
    a handful a day, not a relay for spam."""
    limit = invitations.INVITATIONS_PER_SCHOOL.limit
    with mailing():
        for n in range(limit):
            response = invite_on_the_staff_page(
                admin_client, school, f"p{n}@spam.example", Role.VIEWER
            )
            assert response.status_code == 302, n
        refused = invite_on_the_staff_page(admin_client, school, "one@more.example", Role.VIEWER)
    assert refused.status_code == 400
    assert "sent a lot of invitations today" in refused.content.decode()
    assert not StaffInvitation.objects.filter(email="one@more.example").exists()
    assert len([m for m in mail.outbox if m.to == ["one@more.example"]]) == 0
    # The operator's command line is not limited.
    with mailing():
        staff_command(
            "add", "--school", school.urn, "--email", "cli@ok.example", "--role", "viewer"
        )
    assert StaffInvitation.objects.filter(email="cli@ok.example").exists()


def test_one_invitation_is_sent_again_a_few_times_a_day(admin_a, school, mailing):
    with mailing():
        invited = staff_invite(school=school, email=OWNER, role="viewer", actor=admin_a)
    for _ in range(invitations.RESENDS_PER_INVITATION.limit):
        invitations.invitation_resend(invitation=invited.invitation, actor=admin_a)
    with pytest.raises(ValidationError, match="sent a lot of invitations today"):
        invitations.invitation_resend(invitation=invited.invitation, actor=admin_a)
