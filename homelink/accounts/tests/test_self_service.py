"""What a registered parent does for themselves: preferences, unlinking, opting out, deleting the
account; and the pages around them (privacy notice, outbox, CSRF, logs)."""

from __future__ import annotations

import logging
import re

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from homelink.accounts.tests.conftest import PASSWORD, PAT_EMAIL, logged_in, make_parent
from homelink.audit.models import AuditEvent
from homelink.messaging.models import OutboxMessage
from homelink.mis.tests.factories import pupil, run_import
from homelink.register.models import Adult, Link, Member, Source
from homelink.registration.redeem import redeem_code
from homelink.registration.tests.factories import letter
from homelink.schools.models import School

pytestmark = pytest.mark.django_db


@pytest.fixture
def second_school(db: None) -> School:
    school = School.objects.create(urn="100002", name="Hill Primary")
    run_import(school, [pupil("B100000000001", "Robin", "Smith", year="3")])
    return school


@pytest.fixture
def pat(roll: School, second_school: School) -> User:
    """Pat: the MIS's adult for Sam at Example Academy (matched by the confirmed email), and a
    new web adult for Robin at Hill Primary; one login for both schools."""
    user = make_parent()
    redeem_code(user=user, raw_code=letter(roll), ip="192.0.2.1")
    redeem_code(user=user, raw_code=letter(second_school, "B100000000001"), ip="192.0.2.1")
    return user


def test_the_account_page_lists_children_at_every_school(pat: User) -> None:
    page = logged_in(pat).get("/account/").content.decode()
    assert "Sam Smith" in page and "Example Academy" in page
    assert "Robin Smith" in page and "Hill Primary" in page
    assert PAT_EMAIL in page
    assert sorted(Adult.objects.filter(account=pat).values_list("source", flat=True)) == [
        "import",
        "web",
    ]


def test_preferences_set_every_adult_of_the_account(pat: User) -> None:
    client = logged_in(pat)
    page = client.get(reverse("preferences")).content.decode()
    assert "<legend>How should the school contact you?</legend>" in page
    assert client.post(reverse("preferences"), {"channels": "sms"})["Location"] == "/account/"
    assert set(Adult.objects.filter(account=pat).values_list("email_off", "sms_off")) == {
        (True, False)
    }
    client.post(reverse("preferences"), {"channels": "email"})
    assert set(Adult.objects.filter(account=pat).values_list("email_off", "sms_off")) == {
        (False, True)
    }
    client.post(reverse("preferences"), {"channels": "both"})
    assert set(Adult.objects.filter(account=pat).values_list("email_off", "sms_off")) == {
        (False, False)
    }
    assert "By email and text message." in client.get("/account/").content.decode()
    bad = client.post(reverse("preferences"), {"channels": "pigeon"})
    assert bad.status_code == 200 and "There is a problem" in bad.content.decode()


def test_unlinking_asks_first_and_removes_only_the_accounts_own_web_links(
    pat: User, roll: School
) -> None:
    client = logged_in(pat)
    sam_link = Link.objects.get(student__mis_id="A100000000001")
    assert sam_link.source == Source.WEB  # an imported link Pat claimed with the letter
    confirm = client.get(reverse("unlink", args=[sam_link.pk]))
    assert "Unlink from Sam Smith?" in confirm.content.decode()
    assert Link.objects.filter(pk=sam_link.pk).exists()
    assert client.post(reverse("unlink", args=[sam_link.pk]))["Location"] == "/account/"
    assert not Link.objects.filter(pk=sam_link.pk).exists()
    assert "You are no longer linked to Sam." in client.get("/account/").content.decode()
    assert AuditEvent.objects.filter(action="link.removed", school=roll).count() == 1

    # Someone else's link, and a link the school made, are not Pat's to remove.
    other = make_parent("chris@example.org", "Chris", "Jones")
    redeem_code(user=other, raw_code=letter(roll, "A100000000002"), ip="192.0.2.2")
    theirs = Link.objects.get(adult__account=other)
    assert client.post(reverse("unlink", args=[theirs.pk])).status_code == 404
    Link.objects.filter(pk=theirs.pk).update(adult=Adult.objects.get(account=pat, school=roll))
    Link.objects.filter(pk=theirs.pk).update(source=Source.MANUAL)
    assert client.post(reverse("unlink", args=[theirs.pk])).status_code == 404
    assert Link.objects.filter(pk=theirs.pk).exists()


def test_opting_out_and_back_in_covers_every_school(pat: User) -> None:
    client = logged_in(pat)
    assert "Opt out of all messages" in client.get(reverse("opt_out")).content.decode()
    assert client.post(reverse("opt_out"), {"opted_out": "1"})["Location"] == "/account/"
    assert set(Adult.objects.filter(account=pat).values_list("opted_out", flat=True)) == {True}
    assert "Opt back in" in client.get("/account/").content.decode()
    events = AuditEvent.objects.filter(action="person.opted_out")
    assert events.count() == 2
    assert all(e.detail == {"at_their_request": True} for e in events)
    client.post(reverse("opt_out"), {"opted_out": "0"})
    assert set(Adult.objects.filter(account=pat).values_list("opted_out", flat=True)) == {False}
    assert AuditEvent.objects.filter(action="person.opted_in").count() == 2


def test_deleting_the_account_keeps_the_mis_adult_and_removes_the_web_adult(
    pat: User, roll: School, second_school: School
) -> None:
    client = logged_in(pat)
    page = client.get(reverse("delete_account")).content.decode()
    assert '<label for="id_password">' in page
    wrong = client.post(reverse("delete_account"), {"password": "not it at all"})
    assert "That password is not right." in wrong.content.decode()
    assert User.objects.filter(pk=pat.pk).exists()

    done = client.post(reverse("delete_account"), {"password": PASSWORD})
    assert done["Location"] == "/login/"
    assert not User.objects.filter(pk=pat.pk).exists()
    mis_adult = Adult.objects.get(school=roll, forename="Pat")
    assert (mis_adult.account_id, mis_adult.registered, mis_adult.source) == (None, False, "import")
    assert Link.objects.filter(adult=mis_adult).count() == 1  # Sam keeps a contact
    assert not Adult.objects.filter(school=second_school).exists()
    assert not Link.objects.filter(school=second_school).exists()
    assert Member.objects.filter(school=second_school).count() == 1
    assert client.get("/account/")["Location"].startswith("/login/")


def test_the_privacy_notice_is_linked_from_sign_up_and_every_footer() -> None:
    page = Client().get(reverse("privacy")).content.decode()
    for words in ("data processor", "opt out", "delete your account", "school matters"):
        assert words in page.lower()
    assert 'href="/privacy/"' in Client().get(reverse("login")).content.decode()


@pytest.mark.parametrize("name", ["register", "login", "privacy", "password_reset"])
def test_pages_have_the_accessible_skeleton(name: str) -> None:
    html = Client().get(reverse(name)).content.decode()
    assert '<html lang="en-GB">' in html
    assert 'name="viewport"' in html
    assert '<a class="skip-link" href="#main">' in html
    assert '<main id="main"' in html
    assert html.count("<h1") == 1
    assert "homelink/site.css" in html
    for field_id in re.findall(r'<input[^>]+id="([^"]+)"', html):
        assert f'<label for="{field_id}">' in html, field_id


def test_the_outbox_page_lists_messages_only_where_enabled(settings) -> None:
    for n in range(105):
        OutboxMessage.objects.create(channel="sms", to="+447700900999", body=f"message {n:03d}")
    settings.HOMELINK_SHOW_OUTBOX = True
    page = Client().get(reverse("outbox")).content.decode()
    assert page.count('class="panel outbox-message"') == 100
    assert page.index("message 104") < page.index("message 103")
    assert "message 004" not in page
    settings.HOMELINK_SHOW_OUTBOX = False
    assert Client().get(reverse("outbox")).status_code == 404


def test_every_form_needs_its_csrf_token() -> None:
    user = make_parent()
    anonymous = Client(enforce_csrf_checks=True)
    assert anonymous.post(reverse("register"), {"email": "x@example.org"}).status_code == 403
    assert (
        anonymous.post(reverse("login"), {"email": PAT_EMAIL, "password": PASSWORD}).status_code
        == 403
    )
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    for name in ("link_code", "details", "preferences", "opt_out", "delete_account", "logout"):
        assert client.post(reverse(name), {}).status_code == 403, name
    # With the token the same form works.
    page = client.get(reverse("preferences"))
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode())
    assert token is not None
    ok = client.post(
        reverse("preferences"), {"channels": "sms", "csrfmiddlewaretoken": token.group(1)}
    )
    assert ok.status_code == 302


@pytest.mark.django_db(transaction=True)
def test_no_code_email_or_number_reaches_the_logs(
    roll: School, caplog: pytest.LogCaptureFixture, settings
) -> None:
    # The development outbox, as in the demo (Django's test runner swaps in its own backend).
    settings.EMAIL_BACKEND = "homelink.messaging.email_backend.OutboxEmailBackend"
    caplog.set_level(logging.DEBUG)
    client = Client(REMOTE_ADDR="192.0.2.77")
    email, mobile = "robin.log@example.org", "07700 900555"
    client.post(
        reverse("register"),
        {
            "email": email,
            "forename": "Robin",
            "surname": "Log",
            "password1": PASSWORD,
            "password2": PASSWORD,
        },
    )
    mail = OutboxMessage.objects.get(channel="email", to=email)
    confirm = re.search(r"/account/confirm/\S+/", mail.body)
    assert confirm is not None
    client.get(confirm.group(0))
    client.post(reverse("login"), {"email": email, "password": "wrong password here"})
    code = letter(roll)
    for _ in range(3):
        client.post(reverse("link_code"), {"code": code[:-1] + "0", "relationship": "father"})
    client.post(reverse("link_code"), {"code": code, "relationship": "father"})
    client.post(reverse("details"), {"email": email, "mobile": mobile})
    sms = OutboxMessage.objects.get(channel="sms")
    sms_code = re.search(r"\b(\d{6})\b", sms.body)
    assert sms_code is not None
    client.post(
        reverse("verify_mobile"), {"code": "999999" if sms_code.group(1) != "999999" else "0"}
    )
    client.post(reverse("verify_mobile"), {"code": sms_code.group(1)})
    client.post(reverse("opt_out"), {"opted_out": "1"})
    assert Adult.objects.get(account__email=email).mobile == "+447700900555"
    assert caplog.records  # the flows did log (ids and counts)

    logged = caplog.text + "".join(str(r.args) for r in caplog.records)
    for secret in (
        email,
        mobile,
        "+447700900555",
        "7700900555",
        code,
        code.replace("-", ""),
        sms_code.group(1),
    ):
        assert secret.lower() not in logged.lower(), secret


@pytest.mark.django_db
def test_a_schools_only_administrator_cannot_delete_their_account_and_leave_it_without_one(
    school,
) -> None:
    from django.contrib.auth.models import User

    from homelink.accounts.services import AccountError, account_delete
    from homelink.staff.models import Role, StaffMembership

    user = User.objects.create_user(username="office@example.org", email="office@example.org")
    StaffMembership.objects.create(user=user, school=school, role=Role.ADMINISTRATOR)
    with pytest.raises(AccountError, match="only administrator"):
        account_delete(user=user)
    assert User.objects.filter(pk=user.pk).exists()
    assert StaffMembership.objects.filter(school=school).count() == 1
