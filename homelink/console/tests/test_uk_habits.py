"""UK habits on the pages: numbers as the school's region writes them (stored in E.164), and
year groups in school order (Nursery, Reception, 1 … 13) wherever years are offered."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse
from django.utils import timezone

from homelink.accounts.models import Parent
from homelink.accounts.tests.conftest import logged_in, make_parent
from homelink.messaging.models import Delivery, SmsBlock
from homelink.mis.tests.factories import contact, pupil, run_import
from homelink.register.models import Link, Member, Source
from homelink.register.services import adult_create, link_add
from homelink.schools.models import School

pytestmark = pytest.mark.django_db

UK = "07700 900456"  # Ethel Turing's mobile in build_world, stored as +447700900456
UK_E164 = "+447700900456"


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def signed_in(client, admin_a):
    client.force_login(admin_a)
    return client


def page(client, name: str, **kwargs: object) -> str:
    response = client.get(reverse(f"console:{name}", kwargs=kwargs))
    assert response.status_code == 200, response
    return response.content.decode()


# --- phone numbers --------------------------------------------------------------------------------


def test_the_member_page_shows_numbers_as_the_office_dials_them(signed_in, world_a) -> None:
    alan = Member.objects.get(school=world_a.school, forename="Alan")
    abroad = adult_create(
        school=world_a.school,
        forename="Amélie",
        surname="Turing",
        mobile="+33 6 12 34 56 78",
        actor="test",
    )
    link_add(student=alan, adult=abroad, source=Source.MANUAL, actor="test")

    html = page(signed_in, "member", urn=world_a.school.urn, member_id=alan.pk)

    assert UK in html  # fictional 07700 9 numbers too, which libphonenumber calls invalid
    assert "+33 6 12 34 56 78" in html  # a number abroad, international
    assert UK_E164 not in html
    assert Link.objects.get(adult=abroad).adult.mobile == "+33612345678"  # still E.164


def test_replies_recipients_and_blocked_numbers_read_the_same_way(signed_in, world_a) -> None:
    school, message = world_a.school, world_a.message
    Delivery.objects.create(
        message=message,
        school=school,
        channel="sms",
        to=UK_E164,
        adult_ids=[],
        name="Ethel Turing",
        status=Delivery.Status.SENT,
        next_attempt_at=timezone.now(),
    )
    SmsBlock.objects.create(school=school, number=UK_E164, keyword="STOP")

    detail = page(signed_in, "message", urn=school.urn, message_id=message.pk)
    assert f">{UK}</td>" in detail  # the recipients' "To" column
    assert "anne@a.example" in detail  # an email in the same column is left alone
    replies = page(signed_in, "replies", urn=school.urn)
    assert replies.count(UK) >= 2  # who texted, and the blocked number
    assert UK_E164 not in detail + replies


def test_the_csv_export_keeps_e164(signed_in, world_a) -> None:
    # A spreadsheet or another system reads +44… unambiguously (and keeps the leading digit).
    Delivery.objects.create(
        message=world_a.message,
        school=world_a.school,
        channel="sms",
        to=UK_E164,
        adult_ids=[],
        status=Delivery.Status.SENT,
        next_attempt_at=timezone.now(),
    )
    response = signed_in.get(
        reverse(
            "console:message_csv",
            kwargs={"urn": world_a.school.urn, "message_id": world_a.message.pk},
        )
    )
    assert UK_E164 in b"".join(response.streaming_content).decode("utf-8-sig")


def test_a_parent_sees_and_edits_their_number_the_uk_way(db) -> None:
    user = make_parent()
    Parent.objects.filter(user=user).update(
        mobile="+447700900123", mobile_verified_at=timezone.now()
    )
    client = logged_in(user)

    assert "07700 900123" in client.get(reverse("account")).content.decode()
    details = client.get(reverse("details")).content.decode()
    assert 'value="07700 900123"' in details
    # Saving the form as shown changes nothing (the number normalises back to the same one).
    saved = client.post(
        reverse("details"), {"email": user.email, "mobile": "07700 900123"}, follow=True
    )
    assert "Nothing has changed." in saved.content.decode()
    assert Parent.objects.get(user=user).mobile == "+447700900123"


# --- year groups ----------------------------------------------------------------------------------

SCHOOL_ORDER = ["N1", "N2", "R", "1", "2", "10", "11", "13", "X"]


@pytest.fixture
def all_years(school: School) -> School:
    run_import(
        school,
        [
            pupil(
                f"A1000000000{n:02d}",
                f"P{n}",
                "Example",
                contact(1, "Kim", f"C{n}", email=f"k{n}@example.org"),
                year=year,
            )
            for n, year in enumerate(["11", "X", "2", "R", "10", "N2", "1", "13", "N1"])
        ],
    )
    return school


def option_values(html: str, name: str) -> list[str]:
    select = re.search(rf'<select name="{name}"[^>]*>(.*?)</select>', html, re.S)
    assert select is not None, html
    return [v for v in re.findall(r'<option value="([^"]*)"', select.group(1)) if v]


def test_the_members_filter_lists_years_in_school_order(signed_in, all_years) -> None:
    html = page(signed_in, "members", urn=all_years.urn)
    assert option_values(html, "year") == SCHOOL_ORDER


def test_the_letters_page_lists_years_in_school_order(signed_in, all_years) -> None:
    html = page(signed_in, "letters", urn=all_years.urn)
    assert option_values(html, "year") == SCHOOL_ORDER


def test_compose_offers_year_groups_in_school_order_by_their_names(signed_in, all_years) -> None:
    html = page(signed_in, "message_new", urn=all_years.urn)
    values = re.findall(r'name="years" value="([^"]+)"', html)
    assert values == SCHOOL_ORDER
    for label in ("Nursery 1", "Reception", "Year 13"):
        assert label in html
