"""A trust administrator in a real browser (Chromium through Playwright, against the live server):
signs in, opens the console, lands on the trust's overview with both schools side by side,
and clicks into one school's own console. axe-core runs on each page."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pytest

from homelink.browser_testing import assert_no_horizontal_scroll, check_page, expect
from homelink.mis.tests.factories import contact, pupil, run_import
from homelink.schools.models import School
from homelink.staff.models import Role
from homelink.staff.testing import confirm_email_directly
from homelink.trusts.models import TrustMembership
from homelink.trusts.services import trust_add
from homelink.trusts.tests.factories import make_user as _make_user

if TYPE_CHECKING:
    from playwright.sync_api import Page


def make_user(email: str) -> Any:
    """A staff account (typed Any: the project's user model, not AbstractBaseUser)."""
    return _make_user(email)


pytestmark = pytest.mark.browser

PASSWORD = "correct horse battery staple"  # make_user's


def test_a_trust_administrator_opens_the_overview_and_a_school(page: Page, db) -> None:
    oak = School.objects.create(urn="500001", name="Oak Primary", sms_credits=120)
    elm = School.objects.create(urn="500002", name="Elm Academy", sms_credits=30)
    run_import(
        oak, [pupil("K50000000001", "Amy", "Able", contact(1, "Ann", "Able", email="a@x.example"))]
    )
    trust = trust_add(name="Woodland Trust", schools=[oak, elm], actor="test")
    head = make_user("head@woodland.example")
    confirm_email_directly(head)
    TrustMembership.objects.create(user=head, trust=trust, role=Role.ADMINISTRATOR)

    page.goto("/login/")
    page.get_by_label("Email address").fill("head@woodland.example")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.goto("/console/")
    expect(page).to_have_url(re.compile(rf"/console/trust/{trust.pk}/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Woodland Trust: its schools side by side"
    )
    table = page.get_by_role("table")
    expect(table.get_by_role("row", name=re.compile(r"^Oak Primary"))).to_contain_text("120")
    expect(table.get_by_role("row", name=re.compile(r"^Elm Academy"))).to_contain_text("30")
    expect(
        page.get_by_role("navigation", name="Trust").get_by_role("link", name="Overview")
    ).to_have_attribute("aria-current", "page")
    check_page(page)
    assert_no_horizontal_scroll(page)

    table.get_by_role("link", name="Oak Primary").click()
    expect(page).to_have_url(re.compile(r"/console/500001/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("How reachable Oak Primary is")
    expect(page.get_by_text("Trust administrator")).to_be_visible()
    check_page(page)
    # And back to the trust from the school's console.
    page.get_by_role("navigation", name="Console").get_by_role(
        "link", name="Woodland Trust (trust)"
    ).click()
    expect(page).to_have_url(re.compile(rf"/console/trust/{trust.pk}/$"))
