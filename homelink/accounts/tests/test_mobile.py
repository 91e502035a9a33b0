"""A mobile number becomes an SMS target only once the code texted to it is typed back."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from homelink.accounts import services
from homelink.accounts.models import Parent
from homelink.accounts.tests.conftest import logged_in, make_parent
from homelink.messaging.models import OutboxMessage
from homelink.register.models import Adult
from homelink.registration.redeem import redeem_code
from homelink.registration.tests.factories import letter

pytestmark = pytest.mark.django_db(transaction=True)

NEW_MOBILE = "07700 900123"
NEW_E164 = "+447700900123"


def texted_code(to: str = NEW_E164) -> str:
    message = OutboxMessage.objects.filter(channel="sms", to=to).order_by("-pk").first()
    assert message is not None
    match = re.search(r"\b(\d{6})\b", message.body)
    assert match is not None
    return match.group(1)


def ask_for_code(client: Client, mobile: str = NEW_MOBILE):
    return client.post(reverse("details"), {"email": "pat.smith@example.org", "mobile": mobile})


def test_a_new_mobile_is_confirmed_by_the_code_texted_to_it(roll) -> None:
    user = make_parent()
    redeem_code(user=user, raw_code=letter(roll), ip="192.0.2.1")
    client = logged_in(user)
    assert ask_for_code(client)["Location"] == reverse("verify_mobile")
    parent = Parent.objects.get(user=user)
    assert (parent.mobile, parent.pending_mobile) == ("", NEW_E164)
    code = texted_code()
    assert code not in parent.mobile_code_hash
    # The register keeps the MIS's number until the new one is confirmed.
    assert Adult.objects.get(account=user).mobile == "+447700900001"

    page = client.get(reverse("verify_mobile")).content.decode()
    assert '<label for="id_code">' in page
    wrong = client.post(
        reverse("verify_mobile"), {"code": "000000" if code != "000000" else "111111"}
    )
    assert "That code is not right" in wrong.content.decode()
    right = client.post(reverse("verify_mobile"), {"code": f"{code[:3]} {code[3:]}"})
    assert right["Location"] == "/account/"
    parent.refresh_from_db()
    assert (parent.verified_mobile, parent.pending_mobile, parent.mobile_code_hash) == (
        NEW_E164,
        "",
        "",
    )
    assert Adult.objects.get(account=user).mobile == NEW_E164
    assert "Thank you: your mobile number is confirmed." in client.get("/account/").content.decode()


def test_landlines_are_refused_with_a_clear_message() -> None:
    client = logged_in(make_parent())
    response = ask_for_code(client, "020 7219 3000")
    html = response.content.decode()
    assert response.status_code == 200
    assert "That number is a landline, not a mobile" in html
    assert 'aria-describedby="id_mobile_helptext id_mobile_error"' in html
    assert not OutboxMessage.objects.filter(channel="sms").exists()
    assert "Enter a mobile number" in ask_for_code(client, "12").content.decode()


def test_a_code_works_five_times_at_most_and_for_fifteen_minutes() -> None:
    user = make_parent()
    client = logged_in(user)
    ask_for_code(client)
    code = texted_code()
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(services.MOBILE_CODE_ATTEMPTS):
        client.post(reverse("verify_mobile"), {"code": wrong})
    late = client.post(reverse("verify_mobile"), {"code": code})
    assert "That code no longer works. Ask for a new code." in late.content.decode()

    client.post(reverse("verify_mobile"), {"action": "resend"})
    fresh = texted_code()
    with pytest.raises(services.MobileRefused):
        services.mobile_confirm(
            user=user, code=fresh, now=timezone.now() + dt.timedelta(minutes=16)
        )
    assert services.mobile_confirm(user=user, code=fresh) == NEW_E164


def test_codes_sent_are_limited() -> None:
    client = logged_in(make_parent())
    for _ in range(7):
        ask_for_code(client)
    assert OutboxMessage.objects.filter(channel="sms").count() == 5
    assert "We have sent several codes" in ask_for_code(client).content.decode()


def test_removing_the_mobile_removes_it_from_the_register(roll) -> None:
    user = make_parent()
    redeem_code(user=user, raw_code=letter(roll), ip="192.0.2.1")
    client = logged_in(user)
    ask_for_code(client)
    client.post(reverse("verify_mobile"), {"code": texted_code()})
    assert client.post(reverse("details"), {"email": user.email, "mobile": ""})["Location"] == (
        "/account/"
    )
    assert Parent.objects.get(user=user).verified_mobile == ""
    assert Adult.objects.get(account=user).mobile == ""
