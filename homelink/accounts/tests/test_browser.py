"""Parents' pages in a real browser: Chromium through Playwright, against the live server.

Run alone with ``.venv/bin/pytest homelink/accounts/tests/test_browser.py -n 2`` (or ``-m
browser`` for every browser test). Without Chromium these skip and say why; under ``CI`` they
fail instead. Fixtures and checks: homelink/browser_testing.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from homelink.accounts.models import Parent
from homelink.browser_testing import (
    PHONE,
    assert_accessible,
    assert_no_horizontal_scroll,
    assert_styles_loaded,
    check_page,
    codes_from_pdf,
    expect,
    focus_order,
    outbox_find,
)
from homelink.mis.tests.factories import contact, pupil, run_import
from homelink.register.models import Adult, Link, Member, Source
from homelink.registration.linking import link_with_code
from homelink.registration.selectors import code_lookup
from homelink.schools.models import School
from homelink.staff.tests.operators import current_code

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

pytestmark = pytest.mark.browser

PASSWORD = "a long enough passphrase 42"


@pytest.fixture
def letters(school: School, tmp_path: Path) -> dict[str, str]:
    """The school's roll through the real import, then letters from the CLI: each student's
    code, as read back out of the PDF, by the student's name."""
    run_import(
        school,
        [
            pupil("A100000000001", "Ruby", "Hughes", contact(1, "Sam", "Hughes")),
            pupil("A100000000002", "Owen", "Patel", contact(1, "Nia", "Patel")),
        ],
    )
    out = tmp_path / "letters.pdf"
    call_command("letters", "--school", school.urn, "--out", str(out))
    codes = {}
    for text, code in codes_from_pdf(out):
        name = re.search(r"To the parent or carer of (.+?) \(", text)
        assert name is not None, text
        codes[name.group(1)] = code
    return codes


# The machinery itself ---------------------------------------------------------------------------


def test_the_codes_read_out_of_the_letters_are_live(letters: dict[str, str]) -> None:
    assert set(letters) == {"Ruby Hughes", "Owen Patel"}
    for name, code in letters.items():
        found = code_lookup(raw=code)
        assert found is not None
        assert f"{found.member.forename} {found.member.surname}" == name


def operator_with_authenticator(**flags: bool) -> TOTPDevice:
    user = get_user_model().objects.create_user(
        username=OPERATOR, email=OPERATOR, password=PASSWORD, **flags
    )
    return TOTPDevice.objects.create(user=user, name="phone", confirmed=True)


def give_code(page: Page, device: TOTPDevice) -> None:
    """The admin's second factor, after the password (homelink/console/admin_site.py)."""
    expect(page).to_have_url(re.compile(r"/console/otp/verify/\?next="))
    page.get_by_label("Code from your authenticator app").fill(current_code(device))
    page.get_by_role("button", name="Continue").click()


def test_the_live_server_shares_the_test_database_and_serves_static_files(page: Page) -> None:
    device = operator_with_authenticator(is_staff=True, is_superuser=True)
    # The admin sends operators to the site's own sign-in page, where the login limits apply.
    page.goto("/admin/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/admin/"))
    assert_styles_loaded(page)  # the site's CSS, through the static files handler
    page.get_by_label("Email address").fill(OPERATOR)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    give_code(page, device)
    expect(page.get_by_role("heading", name="Site administration")).to_be_visible()
    # ... and what the server wrote, the test reads.
    assert get_user_model().objects.get(username=OPERATOR).last_login is not None


def test_the_phone_check_sees_a_page_wider_than_a_phone(
    phone_page: Page, new_page: Callable[..., Page]
) -> None:
    head = '<html lang="en"><head><meta name="viewport" content="width=device-width"></head>'
    phone_page.set_content(f"{head}<body><p>fits</p></body></html>")
    assert_no_horizontal_scroll(phone_page)
    phone_page.set_content(f'{head}<body><div id="wide" style="width: 800px">wide</div></body>')
    with pytest.raises(AssertionError, match=r"scrolls sideways at 390px wide.*div#wide"):
        assert_no_horizontal_scroll(phone_page)
    # Without the viewport meta, a phone lays the page out 980px wide and shrinks it to fit.
    unscaled = new_page(**PHONE)
    unscaled.set_content('<html lang="en"><body><div style="width: 800px">wide</div></body>')
    with pytest.raises(AssertionError, match=r"laid out 980px wide on a 390px screen"):
        assert_no_horizontal_scroll(unscaled)


def test_axe_passes_a_clean_page_and_lists_what_is_wrong_with_another(page: Page) -> None:
    page.set_content(
        '<!doctype html><html lang="en"><head><title>Fine</title></head><body><main>'
        '<h1>Fine</h1><label for="name">Name</label><input id="name"></main></body></html>'
    )
    assert_accessible(page)
    page.set_content(
        '<!doctype html><html lang="en"><head><title>Not fine</title></head><body><main>'
        '<h1>Not fine</h1><input id="nameless"><img src="data:,"></main></body></html>'
    )
    with pytest.raises(AssertionError) as failed:
        assert_accessible(page)
    message = str(failed.value)
    assert "image-alt (critical)" in message
    assert "label (critical)" in message
    assert "#nameless" in message


def test_each_new_page_is_a_different_person(new_page: Callable[..., Page]) -> None:
    device = operator_with_authenticator(is_staff=True)
    first, second = new_page(), new_page()
    first.goto("/admin/")
    first.get_by_label("Email address").fill(OPERATOR)
    first.get_by_label("Password").fill(PASSWORD)
    first.get_by_role("button", name="Log in").click()
    give_code(first, device)
    expect(first.get_by_role("heading", name="Site administration")).to_be_visible()
    second.goto("/admin/")
    expect(second).to_have_url(re.compile(r"/login/\?next=/admin/"))


OPERATOR = "operator@example.org"


# A parent, from the letter to opting out ------------------------------------------------------

PARENT_EMAIL = "jo.hughes@example.org"
CONFIRM_LINK = r"/account/confirm/[^/\s]+/"
MOBILE_E164 = "+447700900123"


def log_in(page: Page, email: str, password: str = PASSWORD) -> None:
    page.goto("/login/")
    check_page(page)
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Your account", level=1)).to_be_visible()
    check_page(page)


def enter_code(page: Page, code: str, relationship: str = "Mother") -> None:
    page.goto("/account/link/")
    check_page(page)
    page.get_by_label("Security code").fill(code)
    page.get_by_label(relationship, exact=True).check()
    page.get_by_role("button", name="Link to my child").click()


def notice(page: Page) -> Locator:
    """The page's status messages ("You are now linked to ...")."""
    return page.get_by_role("status")


def test_a_parent_signs_up_links_with_the_letter_edits_details_and_opts_out_on_a_phone(
    phone_page: Page, letters: dict[str, str], local_outbox: None
) -> None:
    page = phone_page

    # Sign up: the fields in order, and a mistake told at the field it is about.
    page.goto("/register/")
    check_page(page)
    assert focus_order(page, page.get_by_label("Email address"), 5) == [
        "#id_forename",
        "#id_surname",
        "#id_password1",
        "#id_password2",
        "button:Create account",
    ]
    page.get_by_label("Email address").fill(PARENT_EMAIL)
    page.get_by_label("First name").fill("Jo")
    page.get_by_label("Last name").fill("Hughes")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password again").fill(PASSWORD + " typo")
    page.get_by_role("button", name="Create account").click()
    again = page.get_by_label("Password again")
    expect(again).to_have_attribute("aria-invalid", "true")
    expect(again).to_have_accessible_description(re.compile("passwords do not match"))
    expect(page.get_by_role("alert")).to_contain_text("passwords do not match")
    check_page(page)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    again.fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(notice(page)).to_contain_text("Your account is ready")
    check_page(page)

    # Confirm the address with the link in the email, as the outbox shows it.
    confirm = outbox_find(page, to=PARENT_EMAIL, pattern=CONFIRM_LINK)
    page.goto(confirm.group(0))
    if "/login/" in page.url:
        log_in(page, PARENT_EMAIL)
    expect(notice(page)).to_contain_text("your email address is confirmed")
    check_page(page)

    # Link with the code read off the letter.
    enter_code(page, letters["Ruby Hughes"])
    expect(notice(page)).to_contain_text("You are now linked to Ruby")
    # Having just given the school their details, the parent reads its privacy notice first.
    expect(page.get_by_role("heading", level=1)).to_contain_text("uses your details")
    check_page(page)
    page.get_by_role("link", name="Continue to your account").click()
    expect(page.get_by_role("main")).to_contain_text("Ruby Hughes")
    check_page(page)

    # A mobile number, confirmed with the code sent to it by SMS.
    page.get_by_role("link", name="Change your email or mobile").click()
    expect(page.get_by_label("Email address")).to_have_value(PARENT_EMAIL)
    check_page(page)
    page.get_by_label("Mobile number").fill("07700 900123")
    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(re.compile(r"/account/mobile/$"))
    check_page(page)
    sms = outbox_find(page, to=MOBILE_E164, pattern=r"\b\d{6}\b")
    page.goto("/account/mobile/")
    page.get_by_label("Code from the text message").fill(sms.group(0))
    page.get_by_role("button", name="Confirm").click()
    expect(notice(page)).to_contain_text("your mobile number is confirmed")
    check_page(page)

    # Opt out of everything.
    page.get_by_role("link", name="Opt out of all messages").click()
    check_page(page)
    page.get_by_role("button", name="Opt out of all messages").click()
    expect(notice(page)).to_contain_text("You have opted out")
    expect(page.get_by_role("button", name="Opt back in")).to_be_visible()
    check_page(page)

    # What the register now says.
    adult = Adult.objects.get(account__email=PARENT_EMAIL)
    assert (adult.forename, adult.surname) == ("Jo", "Hughes")
    assert adult.registered
    assert adult.source == Source.WEB
    assert adult.email == PARENT_EMAIL
    assert adult.mobile == MOBILE_E164
    assert adult.opted_out
    [link] = Link.objects.filter(adult=adult)
    assert (link.student.forename, link.source) == ("Ruby", Source.WEB)
    parent = Parent.objects.get(user__email=PARENT_EMAIL)
    assert parent.email_verified_at is not None
    assert parent.verified_mobile == MOBILE_E164


def confirmed_parent(email: str, forename: str, surname: str) -> None:
    """A parent account whose email is confirmed (made directly: the sign-up itself is the test
    above)."""
    user = get_user_model().objects.create_user(
        username=email, email=email, password=PASSWORD, first_name=forename, last_name=surname
    )
    Parent.objects.create(user=user, email_verified_at=timezone.now())


def test_four_adults_link_with_one_letter_and_the_fifth_is_told_why_not(
    new_page: Callable[..., Page], letters: dict[str, str], school: School
) -> None:
    code = letters["Owen Patel"]
    # The first adult linked already (as in the test above, but through the service).
    confirmed_parent("first@example.org", "First", "Adult")
    link_with_code(user=get_user_model().objects.get(username="first@example.org"), raw_code=code)

    for number in (2, 3, 4):
        email = f"adult{number}@example.org"
        confirmed_parent(email, f"Adult{number}", "Patel")
        page = new_page()
        log_in(page, email)
        enter_code(page, code)
        expect(notice(page)).to_contain_text("You are now linked to Owen")
        check_page(page)

    confirmed_parent("fifth@example.org", "Fifth", "Adult")
    page = new_page()
    log_in(page, "fifth@example.org")
    enter_code(page, code)
    refusal = "4 adults have already linked themselves to Owen"
    field = page.get_by_label("Security code")
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(field).to_have_accessible_description(re.compile(refusal))
    expect(page.get_by_role("alert")).to_contain_text(refusal)
    expect(page.get_by_role("alert")).to_contain_text("contact the school office")
    check_page(page)

    owen = Member.objects.get(school=school, forename="Owen")
    web = Link.objects.filter(student=owen, source=Source.WEB)
    assert sorted(web.values_list("adult__account__username", flat=True)) == [
        "adult2@example.org",
        "adult3@example.org",
        "adult4@example.org",
        "first@example.org",
    ]
    assert (
        not Adult.objects.filter(account__username="fifth@example.org")
        .filter(links__student=owen)
        .exists()
    )
