"""A mobile number becomes an SMS target only once the code texted to it is typed back; and
verification texts, which cost money, go only where they should: to confirmed accounts, to the
install's countries, a few per account and per number, under a site-wide budget."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from homelink.accounts import services
from homelink.accounts.limits import MOBILE_CODE_PER_ACCOUNT, MOBILE_CODE_PER_NUMBER
from homelink.accounts.models import Parent
from homelink.accounts.tests.conftest import logged_in, make_parent
from homelink.messaging.models import OutboxMessage
from homelink.ratelimit.limiter import MAX_DELAY
from homelink.register.models import Adult
from homelink.registration.redeem import redeem_code
from homelink.registration.tests.factories import letter
from homelink.schools.models import School

pytestmark = pytest.mark.django_db(transaction=True)

NEW_MOBILE = "07700 900123"
NEW_E164 = "+447700900123"
IRISH_MOBILE = "+353 85 123 4567"
IRISH_E164 = "+353851234567"


@pytest.fixture(autouse=True)
def _install_in_great_britain(school: School) -> School:
    # Verification texts go to the countries of the install's schools: here one, in GB.
    return school


def texts() -> int:
    return OutboxMessage.objects.filter(channel="sms").count()


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


def test_codes_sent_per_account_are_limited() -> None:
    client = logged_in(make_parent())
    for n in range(MOBILE_CODE_PER_ACCOUNT.limit + 2):
        ask_for_code(client, f"07700 900{n:03d}")
    assert texts() == MOBILE_CODE_PER_ACCOUNT.limit
    assert "We have sent several codes" in ask_for_code(client, "07700 900999").content.decode()


# --- Where verification texts may go (no SMS pumping) --------------------------------------------


def test_an_unconfirmed_account_is_sent_no_code_and_told_to_confirm_its_email_first() -> None:
    user = make_parent(confirmed=False)
    client = logged_in(user)
    page = client.get(reverse("details")).content.decode()
    assert "Confirm your email address first" in page
    assert f"Follow the\n      link in the email we sent to {user.email}" in page

    response = ask_for_code(client)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Confirm your email address first: follow the link in the email we sent you." in html
    assert 'aria-describedby="id_mobile_helptext id_mobile_error"' in html
    assert texts() == 0
    assert Parent.objects.get(user=user).pending_mobile == ""
    with pytest.raises(services.MobileRefused, match="Confirm your email address first"):
        services.mobile_code_send(user=user, raw_mobile=NEW_MOBILE)
    # A number left waiting (from before this rule) gets no new code either.
    Parent.objects.filter(user=user).update(pending_mobile=NEW_E164)
    resend = client.post(reverse("verify_mobile"), {"action": "resend"}, follow=True)
    assert "Confirm your email address first" in resend.content.decode()
    assert texts() == 0


def test_once_the_email_is_confirmed_the_code_is_sent() -> None:
    user = make_parent(confirmed=False)
    client = logged_in(user)
    ask_for_code(client)
    Parent.objects.filter(user=user).update(email_verified_at=timezone.now())
    assert ask_for_code(client)["Location"] == reverse("verify_mobile")
    assert texts() == 1
    assert "Confirm your email address first" not in client.get(reverse("details")).content.decode()


def test_a_number_in_a_country_the_install_does_not_serve_is_sent_nothing(settings) -> None:
    client = logged_in(make_parent())
    for number in (IRISH_MOBILE, "+33 6 12 34 56 78", "+1 201 555 0123"):
        response = ask_for_code(client, number)
        assert response.status_code == 200, number
        assert (
            "We can only send text messages to mobile numbers in the United Kingdom."
            in response.content.decode()
        ), number
    assert texts() == 0
    # The fictional range libphonenumber calls invalid is the United Kingdom's, and works.
    assert ask_for_code(client)["Location"] == reverse("verify_mobile")
    assert texts() == 1


def test_the_countries_are_the_operators_setting_never_a_schools(settings) -> None:
    """A school's administrator sets their school's phone region on its Settings page; the
    countries the whole install pays to text are the operator's choice alone."""
    user = make_parent()
    School.objects.create(urn="900001", name="Scoil Example", phone_region="IE")
    School.objects.create(urn="900002", name="Elsewhere", phone_region="UZ")
    assert services.sms_countries() == {"GB"}
    with pytest.raises(services.MobileRefused, match="only send text messages to mobile numbers"):
        services.mobile_code_send(user=user, raw_mobile="+998 90 123 45 67")

    settings.HOMELINK_SMS_COUNTRIES = ["GB", "IE"]
    assert services.mobile_code_send(user=user, raw_mobile=IRISH_MOBILE) == IRISH_E164
    settings.HOMELINK_SMS_COUNTRIES = ["FR"]
    with pytest.raises(
        services.MobileRefused, match="only send text messages to mobile numbers in France"
    ):
        services.mobile_code_send(user=user, raw_mobile=NEW_MOBILE)
    # Jersey's mobiles share +44 and UK networks: homelink reads them as the UK's everywhere.
    settings.HOMELINK_SMS_COUNTRIES = ["GB"]
    assert services.mobile_country("+447797123456") == "GB"
    assert services.mobile_code_send(user=user, raw_mobile="+44 7797 123456") == "+447797123456"
    assert OutboxMessage.objects.filter(channel="sms", to="+447797123456").count() == 1


def test_with_no_countries_no_text_is_sent(settings) -> None:
    user = make_parent()
    settings.HOMELINK_SMS_COUNTRIES = []
    with pytest.raises(services.MobileRefused, match="We cannot send text messages yet"):
        services.mobile_code_send(user=user, raw_mobile=NEW_MOBILE)
    assert texts() == 0


def test_a_daily_cap_refuses_verification_texts_across_the_install(settings) -> None:
    """Unlimited confirmed accounts (a domain that takes mail for any address) still cannot
    make the install text without end: past the day's cap, nobody gets a code until tomorrow."""
    settings.HOMELINK_VERIFY_SMS_PER_DAY = 2
    for n in range(3):
        user = make_parent(f"p{n}@example.org")
        if n < 2:
            services.mobile_code_send(user=user, raw_mobile=f"07700 90020{n}")
        else:
            with pytest.raises(services.TooManyRequests, match="cannot send more codes today"):
                services.mobile_code_send(user=user, raw_mobile=f"07700 90020{n}")
    assert texts() == 2


def test_codes_to_one_number_are_limited_whichever_account_asks() -> None:
    answers = [
        ask_for_code(logged_in(make_parent(email=f"parent{n}@example.org")))
        for n in range(MOBILE_CODE_PER_NUMBER.limit + 1)
    ]
    assert OutboxMessage.objects.filter(channel="sms", to=NEW_E164).count() == (
        MOBILE_CODE_PER_NUMBER.limit
    )
    # The same words as the per-account limit: which one it was would say the number is in use.
    assert "We have sent several codes in the last hour" in answers[-1].content.decode()
    # Another number is not held up.
    assert ask_for_code(logged_in(make_parent(email="other@example.org")), "07700 900777")[
        "Location"
    ] == reverse("verify_mobile")


def test_the_budget_slows_verification_texts_and_tells_the_operators_once(settings) -> None:
    settings.HOMELINK_VERIFY_SMS_BUDGET_PER_MINUTE = 3
    settings.ADMINS = [("Operator", "ops@example.org")]
    minute = timezone.now().replace(second=0, microsecond=0)
    users = [make_parent(email=f"parent{n}@example.org") for n in range(8)]
    delays: list[float] = []
    for n, user in enumerate(users):
        services.mobile_code_send(
            user=user, raw_mobile=f"07700 900{n:03d}", now=minute, sleep=delays.append
        )
    # Nobody is refused: every code goes, the ones past the budget a little later.
    assert texts() == len(users)
    assert len(delays) == len(users) - 3
    assert delays == sorted(delays) and delays[0] > 0 and delays[-1] <= MAX_DELAY
    alerts = [m for m in mail.outbox if m.to == ["ops@example.org"]]
    assert len(alerts) == 1
    assert "sms:verify" in alerts[0].subject
    # Numbers only: no number, address or code in the alert.
    assert "07700" not in alerts[0].body and "+44" not in alerts[0].body
    assert "@example.org" not in alerts[0].body


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
