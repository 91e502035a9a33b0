"""Long email addresses wrap inside their own cell or box, on a phone and on a desktop, instead of
running into the next column or off the screen: the members list, a member's linked people and
a message's recipients in the console, and a parent's own account page.

Run alone with ``.venv/bin/pytest homelink/console/tests/test_browser_wrapping.py``. Fixtures and
checks: homelink/browser_testing.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from homelink.accounts.tests.conftest import PASSWORD as PARENT_PASSWORD
from homelink.accounts.tests.conftest import make_parent
from homelink.browser_testing import check_page, expect
from homelink.console.tests.conftest import World
from homelink.console.tests.test_browser import log_in
from homelink.messaging.models import Delivery
from homelink.register.models import Source
from homelink.register.services import adult_create, link_add

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

# No hyphen: a browser breaks a line after one anyway, and real addresses often have none.
LONG_EMAIL = "annemarie.featherstonehaughworthington@familyofthestudent.example.org"
#: The narrowest phone the console is checked at (an iPhone SE / mini).
NARROW_PHONE: dict[str, Any] = {
    "viewport": {"width": 375, "height": 812},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
}
DESKTOP: dict[str, Any] = {"viewport": {"width": 1280, "height": 800}}


def overflowing(page: Page) -> list[str]:
    """Cells, definitions and list items whose content is wider than they are: text that runs
    out of its box (into the next column, or off the screen)."""
    found: list[str] = page.evaluate(
        """() => [...document.querySelectorAll('main td, main th, main dd, main li')]
            .filter(e => e.scrollWidth > e.clientWidth + 1)
            .map(e => e.tagName.toLowerCase() + ': ' + e.innerText.trim().slice(0, 80)
                 + ' (' + e.scrollWidth + ' in ' + e.clientWidth + 'px)')"""
    )
    return found


def assert_inside(page: Page, text: str) -> None:
    """The element holding ``text`` ends inside the cell (td or dd) it belongs to."""
    boxes = page.evaluate(
        """(text) => {
            const cells = [...document.querySelectorAll('main td, main dd')]
                .filter(e => e.innerText.includes(text));
            return cells.map(cell => {
                const range = document.createRange();
                range.selectNodeContents(cell);
                const inner = range.getBoundingClientRect(), outer = cell.getBoundingClientRect();
                return {inner: inner.right, outer: outer.right, left: outer.left};
            });
        }""",
        text,
    )
    assert boxes, f"{text} is not on {page.url}"
    for box in boxes:
        assert box["inner"] <= box["outer"] + 1, f"{text} runs past its cell on {page.url}: {box}"


def lines_of(page: Page, text: str) -> int:
    """How many lines the table cell holding ``text`` takes for it."""
    count: int = page.evaluate(
        """(text) => {
            const cell = [...document.querySelectorAll('main td')]
                .find(e => e.innerText.includes(text));
            const range = document.createRange();
            range.selectNodeContents(cell);
            return new Set([...range.getClientRects()].map(r => Math.round(r.top))).size;
        }""",
        text,
    )
    return count


@pytest.fixture
def long_email(world_a: World) -> World:
    """Ada's linked adults include one with a long address, and a message went to it."""
    adult = adult_create(
        school=world_a.school,
        forename="Anne-Marie",
        surname="Featherstonehaugh",
        email=LONG_EMAIL,
        actor="test",
    )
    link_add(student=world_a.student, adult=adult, source=Source.MANUAL, actor="test")
    Delivery.objects.create(
        message=world_a.message,
        school=world_a.school,
        channel="email",
        to=LONG_EMAIL,
        adult=adult,
        adult_ids=[adult.pk],
        name="Anne-Marie Featherstonehaugh",
        children="Ada",
        status=Delivery.Status.DELIVERED,
        next_attempt_at=timezone.now(),
        sent_at=timezone.now(),
        status_at=timezone.now(),
    )
    return world_a


@pytest.mark.parametrize("size", ["phone", "desktop"])
def test_a_long_email_wraps_inside_its_cell(
    new_page: Callable[..., Page], long_email: World, admin_a: AbstractBaseUser, size: str
) -> None:
    page = new_page(**(NARROW_PHONE if size == "phone" else DESKTOP))
    urn = long_email.school.urn
    log_in(page, "office@a.example")
    expect(page.get_by_role("heading", level=1)).to_contain_text("How reachable")

    page.goto(f"/console/{urn}/members/")
    check_page(page)
    assert not overflowing(page)

    page.goto(f"/console/{urn}/members/{long_email.student.pk}/")
    expect(page.get_by_text(LONG_EMAIL)).to_be_visible()
    check_page(page)  # on the phone: no sideways scrolling
    assert_inside(page, LONG_EMAIL)
    assert not overflowing(page)

    page.goto(f"/console/{urn}/messages/{long_email.message.pk}/")
    recipients = page.get_by_role("table", name="Recipients and what happened to each message")
    expect(recipients.get_by_text(LONG_EMAIL)).to_be_visible()
    check_page(page)
    assert_inside(page, LONG_EMAIL)
    assert not overflowing(page)
    if size == "phone":
        # The address wraps in its column rather than widening the table by its whole length.
        assert lines_of(page, LONG_EMAIL) > 1


def test_a_parent_with_a_long_email_reads_their_account_on_a_phone(
    new_page: Callable[..., Page], db: None
) -> None:
    make_parent(email=LONG_EMAIL)
    page = new_page(**NARROW_PHONE)
    page.goto("/login/")
    page.get_by_label("Email address").fill(LONG_EMAIL)
    page.get_by_label("Password", exact=True).fill(PARENT_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your account")
    check_page(page)  # no sideways scrolling
    assert not overflowing(page)
    page.goto("/account/details/")
    check_page(page)
