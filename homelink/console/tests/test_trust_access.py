"""Trust staff in the console: given only by an invitation its mailbox's owner accepts (real SMTP
here), holding their trust role at each school of the trust (the higher of that and their own
role there), asked for the second factor exactly as the school's own staff are, and managed on
the trust's Staff page by trust administrators only.

The cross-trust and cross-school 404 sweep, and a school taken out of the trust, are in
homelink/console/tests/test_separation.py."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from django_otp.plugins.otp_totp.models import TOTPDevice

from homelink.audit.models import AuditEvent
from homelink.console.permissions import held_through_trust, membership_for
from homelink.console.tests.compose import preview, send
from homelink.console.tests.conftest import make_user as _make_user
from homelink.console.tests.conftest import member_of
from homelink.mail_testing import Mailbox
from homelink.messaging.models import Message
from homelink.schools.models import School
from homelink.staff.middleware import STAFF_KEY
from homelink.staff.models import Role
from homelink.staff.selectors import email_confirmed
from homelink.staff.testing import confirm_email_directly
from homelink.trusts import invitations
from homelink.trusts.invitations import RESENDS_PER_TRUST_INVITATION, trust_invite
from homelink.trusts.models import Trust, TrustInvitation, TrustMembership
from homelink.trusts.services import trust_add


def make_user(email: str) -> Any:
    """A staff account (typed Any: the project's user model, not AbstractBaseUser)."""
    return _make_user(email)


PUBLIC = "https://homelink.example.org"
PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "a brand new passphrase 42"
LINK = re.compile(re.escape(PUBLIC) + r"(/console/trust/invitation/([A-Za-z0-9_-]{43})/)")


@pytest.fixture(autouse=True)
def _public_url_and_fast_passwords(settings: Any) -> None:
    settings.HOMELINK_PUBLIC_URL = PUBLIC
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def sister(db: None) -> School:
    return School.objects.create(urn="100003", name="Sister Academy", la_code="838", estab="4513")


@pytest.fixture
def outsider(db: None) -> School:
    return School.objects.create(urn="100009", name="Outside School", la_code="838", estab="4519")


@pytest.fixture
def trust(school: School, sister: School, outsider: School) -> Trust:
    return trust_add(name="Oak Learning Trust", schools=[school, sister], actor="test")


def trust_member(email: str, trust: Trust, role: str) -> Any:
    user = make_user(email)
    confirm_email_directly(user)
    TrustMembership.objects.create(user=user, trust=trust, role=role)
    return user


@pytest.fixture
def central(trust: Trust) -> Any:
    """The trust's administrator."""
    return trust_member("central@oak.trust.example", trust, Role.ADMINISTRATOR)


def dashboard(school: School) -> str:
    return reverse("console:dashboard", args=[school.urn])


def overview(trust: Trust) -> str:
    return reverse("console:trust_overview", args=[trust.pk])


def staff_page(trust: Trust, name: str = "trust_staff", **ids: Any) -> str:
    return reverse(f"console:{name}", kwargs={"trust_id": trust.pk, **ids})


def open_path() -> str:
    return reverse("console:trust_invitation", args=["open"])


def link_in(mailbox: Mailbox, to: str) -> tuple[str, str]:
    [message] = mailbox.to(to)
    found = LINK.search(Mailbox.body(message))
    assert found is not None, Mailbox.body(message)
    return found.group(1), found.group(2)


# --- The invitation, end to end ------------------------------------------------------------------


def test_invited_on_the_staff_page_emailed_accepted_and_in(
    client: Client,
    trust: Trust,
    central: Any,
    school: School,
    sister: School,
    outsider: School,
    smtp: Mailbox,
    django_capture_on_commit_callbacks: Any,
) -> None:
    """The trust administrator invites an address; the real email's link is opened in another
    browser; the person chooses a password and lands on the trust's overview, a trust viewer
    at both of its schools and nowhere else."""
    client.force_login(central)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            staff_page(trust, "trust_staff_add"), {"email": "Clerk@Oak.Example", "role": "viewer"}
        )
    assert response.status_code == 302
    [message] = smtp.to("clerk@oak.example")
    assert message["Subject"] == "Oak Learning Trust invites you to its trust console on homelink"
    body = Mailbox.body(message)
    assert "as trust viewer" in body and "Example Academy, Sister Academy" in body
    page = client.get(staff_page(trust)).content.decode()
    assert "clerk@oak.example" in page and 'Invitations waiting <span class="count">1' in page
    # The console never shows the link: it is only in the email.
    path, token = link_in(smtp, "clerk@oak.example")
    assert token not in page

    browser = Client()
    response = browser.get(path)
    assert response.status_code == 302 and response["Location"] == open_path()
    page = browser.get(open_path()).content.decode()
    assert "Oak Learning Trust invites" in page and "trust viewer" in page
    assert token not in page
    response = browser.post(open_path(), {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert response.status_code == 302 and response["Location"] == overview(trust)

    clerk = get_user_model().objects.get(username="clerk@oak.example")
    assert email_confirmed(clerk)
    assert TrustMembership.objects.get(user=clerk).role == Role.VIEWER
    assert TrustInvitation.objects.get().accepted_by == clerk
    welcome = browser.get(overview(trust)).content.decode()
    assert "you are trust viewer at each of its schools" in welcome
    assert browser.get(dashboard(school)).status_code == 200
    assert browser.get(dashboard(sister)).status_code == 200
    assert browser.get(dashboard(outsider)).status_code == 404
    # The link works once.
    assert Client().get(path).status_code == 404
    # Each school of the trust has it in its trail, by id and role, never the address.
    for where in (school, sister):
        added = AuditEvent.objects.get(school=where, action="trust.staff_added")
        assert added.detail["role"] == "viewer" and added.detail["account"] == "new"
        assert "clerk@oak.example" not in str(added.detail)
    assert not AuditEvent.objects.filter(school=outsider).exists()


def test_an_account_with_a_confirmed_email_signs_in_to_accept(
    trust: Trust, school: School, mailoutbox: Any, django_capture_on_commit_callbacks: Any
) -> None:
    owner = make_user("head@oak.example")
    confirm_email_directly(owner)
    with django_capture_on_commit_callbacks(execute=True):
        trust_invite(trust=trust, email="head@oak.example", role=Role.SENDER, actor="cli")
    path = LINK.search(mailoutbox[-1].body).group(1)  # type: ignore[union-attr]
    browser = Client()
    browser.get(path)
    response = browser.get(open_path())
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    assert not TrustMembership.objects.exists()
    browser.force_login(owner)
    page = browser.get(open_path()).content.decode()
    assert "You are signed in as head@oak.example" in page
    response = browser.post(open_path(), {})
    assert response.status_code == 302
    assert TrustMembership.objects.get(user=owner).role == Role.SENDER
    assert browser.get(dashboard(school)).status_code == 200


def test_signing_up_with_the_address_first_gains_nothing(
    trust: Trust, school: School, mailoutbox: Any, django_capture_on_commit_callbacks: Any
) -> None:
    """Someone registers the future colleague's address and never confirms it: the invitation
    gives them nothing; the mailbox's owner, accepting, takes the account over."""
    attacker = Client()
    response = attacker.post(
        reverse("register"),
        {
            "email": "finance@oak.example",
            "forename": "Mallory",
            "surname": "Example",
            "password1": "attackers own passphrase 9",
            "password2": "attackers own passphrase 9",
        },
    )
    assert response.status_code == 302
    account = get_user_model().objects.get(username="finance@oak.example")
    with django_capture_on_commit_callbacks(execute=True):
        trust_invite(trust=trust, email="finance@oak.example", role=Role.ADMINISTRATOR, actor="cli")
    # A role attached to the unconfirmed account would grant nothing either.
    TrustMembership.objects.create(user=account, trust=trust, role=Role.ADMINISTRATOR)
    assert attacker.get(overview(trust)).status_code == 404
    assert attacker.get(dashboard(school)).status_code == 404
    TrustMembership.objects.filter(user=account).delete()

    path = LINK.search(mailoutbox[-1].body).group(1)  # type: ignore[union-attr]
    owner = Client()
    owner.get(path)
    page = owner.get(open_path()).content.decode()
    assert "its email address was never confirmed" in page
    owner.post(open_path(), {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    account.refresh_from_db()
    assert account.check_password(NEW_PASSWORD)
    assert owner.get(overview(trust)).status_code == 200
    # The attacker's session ended with the old password.
    assert attacker.get(overview(trust)).status_code == 302


def test_resend_replaces_the_link_and_revoke_ends_it(
    client: Client,
    trust: Trust,
    central: Any,
    mailoutbox: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        invited = trust_invite(trust=trust, email="x@oak.example", role=Role.VIEWER, actor="cli")
    first = LINK.search(mailoutbox[-1].body).group(1)  # type: ignore[union-attr]
    client.force_login(central)
    ids = {"trust_invitation_id": invited.invitation.pk}
    with django_capture_on_commit_callbacks(execute=True):
        client.post(staff_page(trust, "trust_invitation_resend", **ids))
    second = LINK.search(mailoutbox[-1].body).group(1)  # type: ignore[union-attr]
    assert first != second
    assert Client().get(first).status_code == 404
    assert Client().get(second).status_code == 302
    client.post(staff_page(trust, "trust_invitation_revoke", **ids))
    assert Client().get(second).status_code == 404
    assert TrustInvitation.objects.get().revoked_at is not None
    # Gone from the list of invitations waiting.
    assert (
        'Invitations waiting <span class="count">0'
        in client.get(staff_page(trust)).content.decode()
    )


def test_sending_one_invitation_again_is_limited(
    client: Client, trust: Trust, central: Any
) -> None:
    invited = trust_invite(trust=trust, email="x@oak.example", role=Role.VIEWER, actor="cli")
    client.force_login(central)
    url = staff_page(trust, "trust_invitation_resend", trust_invitation_id=invited.invitation.pk)
    for _ in range(RESENDS_PER_TRUST_INVITATION.limit):
        client.post(url)
    before = TrustInvitation.objects.get().token_hash
    response = client.post(url, follow=True)
    assert "This trust has sent a lot of invitations today" in response.content.decode()
    assert TrustInvitation.objects.get().token_hash == before


def test_inviting_someone_already_on_the_trusts_staff_is_refused(
    client: Client, trust: Trust, central: Any
) -> None:
    client.force_login(central)
    response = client.post(
        staff_page(trust, "trust_staff_add"),
        {"email": "central@oak.trust.example", "role": "viewer"},
    )
    assert response.status_code == 400
    assert "already on the trust&#x27;s staff (trust administrator)" in response.content.decode()
    assert not TrustInvitation.objects.exists()


# --- The trust's Staff page: administrators only ---------------------------------------------------


@pytest.mark.parametrize("role", [Role.VIEWER, Role.SENDER])
def test_only_trust_administrators_change_the_trusts_staff(
    client: Client, trust: Trust, central: Any, role: str
) -> None:
    user = trust_member(f"{role}@oak.trust.example", trust, role)
    own = TrustMembership.objects.get(user=user)
    client.force_login(user)
    page = client.get(staff_page(trust)).content.decode()
    assert "central@oak.trust.example" in page and "Send the invitation" not in page
    posts = [
        (staff_page(trust, "trust_staff_add"), {"email": "new@oak.example", "role": "viewer"}),
        (staff_page(trust, "trust_staff_role", trust_staff_id=own.pk), {"role": "administrator"}),
        (staff_page(trust, "trust_staff_remove", trust_staff_id=own.pk), {}),
    ]
    for url, data in posts:
        assert client.post(url, data).status_code == 403, url
    assert TrustMembership.objects.get(pk=own.pk).role == role
    assert not TrustInvitation.objects.exists()


def test_an_administrator_changes_roles_and_removes_but_keeps_one_administrator(
    client: Client, trust: Trust, central: Any
) -> None:
    clerk = trust_member("clerk@oak.trust.example", trust, Role.VIEWER)
    head = TrustMembership.objects.get(user=central)
    seat = TrustMembership.objects.get(user=clerk)
    client.force_login(central)
    response = client.post(
        staff_page(trust, "trust_staff_role", trust_staff_id=head.pk),
        {"role": "viewer"},
        follow=True,
    )
    assert "This is the trust&#x27;s only administrator" in response.content.decode()
    response = client.post(
        staff_page(trust, "trust_staff_remove", trust_staff_id=head.pk), follow=True
    )
    assert "only administrator" in response.content.decode()
    assert TrustMembership.objects.get(pk=head.pk).role == Role.ADMINISTRATOR

    response = client.post(
        staff_page(trust, "trust_staff_role", trust_staff_id=seat.pk),
        {"role": "sender"},
        follow=True,
    )
    assert "clerk@oak.trust.example is now trust sender." in response.content.decode()
    client.post(staff_page(trust, "trust_staff_remove", trust_staff_id=seat.pk))
    assert not TrustMembership.objects.filter(pk=seat.pk).exists()
    client.force_login(clerk)
    assert client.get(overview(trust)).status_code == 404


# --- The role at each school ---------------------------------------------------------------------


def test_the_higher_of_the_own_role_and_the_trust_role_holds(
    trust: Trust, school: School, sister: School, outsider: School
) -> None:
    viewer_here = make_user("both@oak.example")
    member_of(viewer_here, school, Role.VIEWER)
    TrustMembership.objects.create(user=viewer_here, trust=trust, role=Role.SENDER)
    here = membership_for(viewer_here, school.urn)
    assert here.role == Role.SENDER and held_through_trust(here)
    assert here.can(Role.SENDER) and not here.can(Role.ADMINISTRATOR)
    assert membership_for(viewer_here, sister.urn).role == Role.SENDER

    admin_here = make_user("head@oak.example")
    own = member_of(admin_here, school, Role.ADMINISTRATOR)
    TrustMembership.objects.create(user=admin_here, trust=trust, role=Role.VIEWER)
    assert membership_for(admin_here, school.urn) == own
    sister_role = membership_for(admin_here, sister.urn)
    assert sister_role.role == Role.VIEWER and not sister_role.can(Role.SENDER)
    assert not AuditEvent.objects.filter(action__startswith="staff.").exists()


def test_a_trust_sender_sends_at_a_trust_school_and_a_viewer_cannot(
    client: Client, trust: Trust, school: School
) -> None:
    from homelink.mis.tests.factories import build_roll

    build_roll(school)
    sender = trust_member("sender@oak.trust.example", trust, Role.SENDER)
    client.force_login(sender)
    _page, token = preview(client, school)
    response = send(client, school, token)
    assert response.status_code == 302
    message = Message.objects.get(school=school)
    assert message.created_by == sender
    # The same send again (a double click) queues nothing more.
    send(client, school, token)
    assert Message.objects.filter(school=school).count() == 1

    viewer = trust_member("viewer@oak.trust.example", trust, Role.VIEWER)
    client.force_login(viewer)
    assert client.get(reverse("console:message_new", args=[school.urn])).status_code == 200
    assert client.post(reverse("console:message_new", args=[school.urn]), {}).status_code == 403


def test_the_school_pages_say_the_role_is_the_trusts_and_link_to_the_trust(
    client: Client, trust: Trust, central: Any, school: School
) -> None:
    client.force_login(central)
    page = client.get(dashboard(school)).content.decode()
    assert "Trust administrator" in page
    assert f'href="{overview(trust)}">Oak Learning Trust (trust)</a>' in page


# --- The second factor ---------------------------------------------------------------------------


def test_a_school_requiring_a_second_factor_requires_it_of_its_trusts_staff(
    client: Client, trust: Trust, school: School, sister: School
) -> None:
    School.objects.filter(pk=school.pk).update(require_second_factor=True)
    viewer = trust_member("viewer@oak.trust.example", trust, Role.VIEWER)
    client.force_login(viewer)
    setup = reverse("console_otp:setup")
    response = client.get(dashboard(school))
    assert response.status_code == 302 and response["Location"].startswith(setup)
    # The sister school does not require it of its staff, nor then of the trust's.
    assert client.get(dashboard(sister)).status_code == 200
    # The trust's pages show every school, so one school's rule is enough.
    response = client.get(overview(trust))
    assert response.status_code == 302 and response["Location"].startswith(setup)
    # With an authenticator, every page asks for its code until the session has given one.
    TOTPDevice.objects.create(user=viewer, name="app", confirmed=True)
    verify = reverse("console_otp:verify")
    for url in (dashboard(school), dashboard(sister), overview(trust)):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(verify), url


def test_trust_staff_reach_the_second_factors_pages(
    client: Client, trust: Trust, school: School
) -> None:
    School.objects.filter(pk=school.pk).update(require_second_factor=True)
    viewer = trust_member("viewer@oak.trust.example", trust, Role.VIEWER)
    client.force_login(viewer)
    assert client.get(reverse("console_otp:setup")).status_code == 200
    # The school that requires it is named, as for its own staff.
    assert "Example Academy" in client.get(reverse("console_otp:index")).content.decode()


def test_a_trust_staff_session_is_a_staff_session(client: Client, trust: Trust) -> None:
    viewer = trust_member("viewer@oak.trust.example", trust, Role.VIEWER)
    client.force_login(viewer)
    assert client.get(overview(trust)).status_code == 200
    assert client.session.get(STAFF_KEY) is True


# --- The console's home --------------------------------------------------------------------------


def test_the_console_home_lists_the_users_trusts_and_schools(
    client: Client, trust: Trust, central: Any, outsider: School
) -> None:
    client.force_login(central)
    # Only a trust: straight to its overview.
    response = client.get(reverse("console:home"))
    assert response.status_code == 302 and response["Location"] == overview(trust)
    member_of(central, outsider, Role.VIEWER)
    page = client.get(reverse("console:home")).content.decode()
    assert "Your trusts and schools" in page
    assert f'href="{overview(trust)}">Oak Learning Trust</a>' in page
    for school in School.objects.all():
        assert f'href="{dashboard(school)}">{school.name}</a>' in page


def test_the_console_home_without_a_trust_is_unchanged(client: Client, school: School) -> None:
    office = make_user("office@a.example")
    member_of(office, school, Role.ADMINISTRATOR)
    client.force_login(office)
    response = client.get(reverse("console:home"))
    assert response.status_code == 302 and response["Location"] == dashboard(school)


def test_an_unknown_or_used_token_gets_one_answer(client: Client, trust: Trust) -> None:
    for token in ("x" * 43, "short", "open"):
        response = client.get(reverse("console:trust_invitation", args=[token]))
        assert response.status_code == 404
        assert "This invitation link does not work" in response.content.decode()
    assert invitations.trust_invitation_is_open("y" * 43) is False
