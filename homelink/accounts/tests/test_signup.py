"""Sign-up, email confirmation over real SMTP, email changes and password reset."""

from __future__ import annotations

import time

import pytest
from django.contrib.auth.models import User
from django.core import signing
from django.test import Client
from django.urls import reverse

from homelink.accounts import tokens
from homelink.accounts.models import Parent
from homelink.accounts.services import CONFIRM_SUBJECT
from homelink.accounts.tests.conftest import PASSWORD, link_path, logged_in, make_parent
from homelink.mail_testing import Mailbox
from homelink.register.models import Adult
from homelink.registration.redeem import redeem_code
from homelink.registration.tests.factories import letter

pytestmark = pytest.mark.django_db(transaction=True)


class FourDaysAgo(signing.TimestampSigner):
    def timestamp(self) -> str:
        return signing.b62_encode(int(time.time()) - 4 * 24 * 3600)


def sign_up(client: Client, email: str = "Pat.Smith@Example.org", **extra: str):
    data = {
        "email": email,
        "forename": "Pat",
        "surname": "Smith",
        "password1": PASSWORD,
        "password2": PASSWORD,
    }
    data.update(extra)
    return client.post(reverse("register"), data)


def test_sign_up_sends_a_confirmation_link_over_smtp_that_confirms_the_address(
    smtp: Mailbox,
) -> None:
    client = Client()
    page = client.get("/register/")
    assert "Register to receive messages from your child's school" in page.content.decode()
    assert 'href="/privacy/"' in page.content.decode()

    response = sign_up(client)
    assert response.status_code == 302
    assert response["Location"] == "/account/"
    user = User.objects.get()
    assert (user.username, user.email, user.first_name) == (
        "pat.smith@example.org",
        "pat.smith@example.org",
        "Pat",
    )
    account = client.get("/account/").content.decode()
    assert "Not confirmed yet" in account
    assert "Send the link again" in account

    [message] = smtp.to("pat.smith@example.org")
    assert message["Subject"] == CONFIRM_SUBJECT
    body = Mailbox.body(message)
    assert "http://127.0.0.1:8000/account/confirm/" in body  # settings.HOMELINK_PUBLIC_URL

    # Opened on another device: no session needed.
    followed = Client().get(link_path(body))
    assert followed.status_code == 302
    assert followed["Location"] == "/login/"
    assert Parent.objects.get(user=user).email_verified_at is not None
    assert "Not confirmed yet" not in client.get("/account/").content.decode()


def test_an_address_is_unique_whatever_its_case(smtp: Mailbox) -> None:
    sign_up(Client())
    response = sign_up(Client(), email="PAT.SMITH@example.ORG")
    assert response.status_code == 200
    assert "An account with this email address already exists" in response.content.decode()
    assert User.objects.count() == 1


def test_django_password_validators_apply_and_errors_are_tied_to_fields(smtp: Mailbox) -> None:
    response = sign_up(Client(), password1="password", password2="password")
    html = response.content.decode()
    assert response.status_code == 200
    assert "There is a problem" in html
    assert 'aria-describedby="id_password1_helptext id_password1_error"' in html
    assert 'id="id_password1_error"' in html
    assert "too common" in html
    mismatch = sign_up(Client(), password2="something else entirely 9").content.decode()
    assert "The passwords do not match" in mismatch
    assert 'href="#id_password2"' in mismatch
    assert not User.objects.exists()


def test_links_expire_after_three_days_and_tampered_links_fail(smtp: Mailbox) -> None:
    user = make_parent(confirmed=False)
    stale = FourDaysAgo(salt=tokens.SALT).sign_object(
        {"u": user.pk, "e": tokens.email_digest(user.email)}
    )
    expired = Client().get(reverse("confirm_email", args=[stale]))
    assert expired.status_code == 400
    assert "expired" in expired.content.decode()
    forged = (
        tokens.make_email_token(user_id=user.pk, email=user.email, password_hash=user.password)[:-2]
        + "xx"
    )
    assert Client().get(reverse("confirm_email", args=[forged])).status_code == 400
    assert Parent.objects.get(user=user).email_verified_at is None


def test_resending_the_link_is_limited(smtp: Mailbox) -> None:
    user = make_parent(confirmed=False)
    client = logged_in(user)
    for _ in range(5):
        client.post(reverse("resend_confirmation"))
    # One at sign-up, then three resends an hour.
    assert len(smtp.to(user.email)) == 4
    page = client.get("/account/").content.decode()
    assert "We have sent several emails in the last hour" in page


def test_a_new_email_replaces_the_old_only_once_confirmed(smtp: Mailbox, roll) -> None:
    user = make_parent()
    # The parent is the school's adult already (the MIS had the same email).
    redeem_code(user=user, raw_code=letter(roll), ip="192.0.2.1")
    client = logged_in(user)
    response = client.post(reverse("details"), {"email": "pat.new@example.org", "mobile": ""})
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.email == "pat.smith@example.org"
    [message] = smtp.to("pat.new@example.org")
    assert client.get(link_path(Mailbox.body(message))).status_code == 302
    user.refresh_from_db()
    assert (user.email, user.username) == ("pat.new@example.org", "pat.new@example.org")
    assert Adult.objects.get(account=user).email == "pat.new@example.org"
    # The old confirmation link (for the old address) no longer confirms anything new.
    [first] = smtp.to("pat.smith@example.org")
    assert client.get(link_path(Mailbox.body(first))).status_code == 400


def test_password_reset_by_email_over_smtp(smtp: Mailbox) -> None:
    user = make_parent()
    client = Client()
    assert client.get("/password-reset/").status_code == 200
    response = client.post("/password-reset/", {"email": "PAT.SMITH@example.org"})
    assert response["Location"] == reverse("password_reset_done")
    # Unknown addresses get the same page and no email.
    assert client.post("/password-reset/", {"email": "nobody@example.org"})["Location"] == (
        reverse("password_reset_done")
    )
    [message] = [m for m in smtp.messages if m["Subject"] == "Reset your homelink password"]
    body = Mailbox.body(message)
    assert "http://127.0.0.1:8000/password-reset/" in body
    form = client.get(link_path(body, "password-reset"), follow=True)
    assert "Choose a new password" in form.content.decode()
    new = "another quite long passphrase 7"
    done = client.post(
        form.redirect_chain[-1][0], {"new_password1": new, "new_password2": new}, follow=True
    )
    assert "Your password has been changed" in done.content.decode()
    login = Client().post("/login/", {"email": user.email, "password": new})
    assert login["Location"] == "/account/"
