"""``/``: a front page that says what homelink is and where to go, not a bare "Not Found"."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from homelink.accounts.tests.conftest import logged_in, make_parent
from homelink.browser_testing import PHONE, check_page, expect
from homelink.schools.models import School
from homelink.staff.models import Role, StaffMembership
from homelink.staff.testing import confirm_email_directly

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.django_db


def links(html: str) -> set[str]:
    return set(re.findall(r'href="([^"]+)"', html))


def test_the_front_page_sends_parents_and_the_office_where_they_need_to_go() -> None:
    response = Client().get("/")

    assert response.status_code == 200
    html = response.content.decode()
    assert "<h1>Keeping in touch with your school</h1>" in html
    assert {"/register/", "/login/", "/login/?next=/console/", "/privacy/"} <= links(html)
    assert "Parents and carers" in html
    assert "School office staff" in html
    # Server-rendered, for a strict Content-Security-Policy: no script, no inline style.
    assert "<script" not in html
    assert "style=" not in html and "<style" not in html
    assert "default-src 'self'" in response["Content-Security-Policy"]


def test_head_is_answered_and_a_post_is_not() -> None:
    assert Client().head("/").status_code == 200
    assert Client().post("/").status_code == 405


def test_a_signed_in_parent_is_offered_their_account_not_the_console() -> None:
    html = logged_in(make_parent()).get("/").content.decode()

    assert "You are logged in" in html
    assert "/account/" in links(html)
    assert not {"/console/", "/register/"} & links(html)


def test_school_staff_are_offered_the_console(school: School) -> None:
    user = get_user_model().objects.create_user(
        username="office@a.example", email="office@a.example", password="x"
    )
    confirm_email_directly(user)
    StaffMembership.objects.create(user=user, school=school, role=Role.VIEWER)

    html = logged_in(user).get("/").content.decode()

    assert {"/console/", "/account/"} <= links(html)
    # Nothing of the school's own on a page that is the same for everyone.
    assert school.name not in html


@pytest.mark.browser
@pytest.mark.parametrize("size", ["phone", "desktop"])
def test_the_front_page_in_a_browser(new_page: Callable[..., Page], size: str) -> None:
    page = (
        new_page(**PHONE) if size == "phone" else new_page(viewport={"width": 1280, "height": 800})
    )
    page.goto("/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Keeping in touch with your school")
    check_page(page)  # axe-core clean, styles loaded, nothing blocked, no sideways scrolling
    assert page.evaluate("document.scripts.length") == 0

    page.get_by_role("link", name="Create an account").click()
    expect(page).to_have_url(re.compile(r"/register/$"))
    page.go_back()
    page.get_by_role("link", name="Log in to the staff console").click()
    expect(page).to_have_url(re.compile(r"/login/\?next=/console/$"))
