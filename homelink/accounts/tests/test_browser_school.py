"""Linking with a letter in a real browser, at phone and desktop sizes: the parent says what
they are to the child, and their account shows the school as itself (name, office, logo).

Chromium through Playwright against the live server, axe-core on every page (check_page);
see homelink/browser_testing.py.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from PIL import Image

from homelink.accounts.models import Parent
from homelink.browser_testing import PHONE, check_page, expect
from homelink.mis.tests.factories import contact, pupil, run_import
from homelink.register.models import Link, Source
from homelink.registration.tests.factories import letter
from homelink.schools.logos import logo_clean
from homelink.schools.models import School, SchoolLogo

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

PASSWORD = "a long enough passphrase 42"
EMAIL = "jo.hughes@example.org"
SIZES: dict[str, dict[str, Any]] = {
    "phone": PHONE,
    "desktop": {"viewport": {"width": 1280, "height": 800}},
}


@pytest.fixture
def branded(school: School) -> School:
    """Example Academy with its office phone and logo set, and Ruby on roll."""
    out = io.BytesIO()
    Image.new("RGB", (240, 80), (20, 60, 140)).save(out, "PNG")
    logo = logo_clean(out.getvalue())
    SchoolLogo.objects.create(
        school=school,
        image=logo.image,
        content_type=logo.content_type,
        width=logo.width,
        height=logo.height,
    )
    School.objects.filter(pk=school.pk).update(office_phone="+442079460123")
    run_import(school, [pupil("A100000000001", "Ruby", "Hughes", contact(1, "Sam", "Hughes"))])
    school.refresh_from_db()
    return school


@pytest.mark.parametrize("size", list(SIZES))
def test_a_parent_links_saying_what_they_are_to_the_child_and_sees_the_school(
    new_page: Callable[..., Page], branded: School, size: str
) -> None:
    user = get_user_model().objects.create_user(
        username=EMAIL, email=EMAIL, password=PASSWORD, first_name="Jo", last_name="Hughes"
    )
    Parent.objects.create(user=user, email_verified_at=timezone.now())
    code = letter(branded)
    page = new_page(**SIZES[size])

    page.goto("/login/")
    page.get_by_label("Email address").fill(EMAIL)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Your account", level=1)).to_be_visible()

    page.goto("/account/link/")
    check_page(page)
    choices = page.get_by_role("group", name="What are you to the child?")
    for choice in ("Mother", "Father", "Carer", "Grandparent", "Other"):
        expect(choices.get_by_role("radio", name=choice, exact=True)).to_be_visible()

    # The code but no answer: told where, nothing linked.
    page.get_by_label("Security code").fill(code)
    page.get_by_role("button", name="Link to my child").click()
    expect(page.get_by_role("alert")).to_contain_text("Choose what you are to the child.")
    check_page(page)
    assert not Link.objects.filter(source=Source.WEB).exists()

    page.get_by_label("Security code").fill(code)
    choices.get_by_role("radio", name="Other", exact=True).check()
    page.get_by_label("If other, what are you to the child?").fill("Aunt")
    page.get_by_role("button", name="Link to my child").click()
    expect(page.get_by_role("status")).to_contain_text("You are now linked to Ruby")
    check_page(page)
    page.get_by_role("link", name="Continue to your account").click()

    # The account shows the school as itself: its name and logo, and how to ring the office.
    school = page.get_by_role("region", name="Example Academy")
    expect(school).to_contain_text("Ruby Hughes")
    expect(school.get_by_role("link", name="020 7946 0123")).to_have_attribute(
        "href", "tel:+442079460123"
    )
    logo = school.locator("img.school-logo")
    expect(logo).to_be_visible()
    assert logo.evaluate("img => img.complete && img.naturalWidth") == 240
    box = logo.bounding_box()
    assert box is not None and box["height"] <= 48.5  # 3rem: a logo, not a banner
    check_page(page)

    link = Link.objects.get(student__mis_id="A100000000001", source=Source.WEB)
    assert link.relationship == "Aunt"
    assert re.fullmatch(r"\w+", link.relationship)
