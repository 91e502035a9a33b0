"""Finding a parent and seeing who a message leaves out, in a real browser (issue 10, items 3
and 5), on a phone and on a desktop, with axe-core on every page visited.

- The office answers the phone: the caller gives her mobile as people say it ("07700 900123"),
  the members list finds her two children, each row says why ("linked: Pat Okafor (mother)"),
  and the number appears in no address the browser visited.
- A sender previews an SMS to year 7: the preview counts the people reached and left out, lists
  the left out by reason (opted out, no mobile, turned SMS off, texted STOP), says that two people
  who share a number get one copy, and each name opens that person's record.

Run alone with ``.venv/bin/pytest homelink/console/tests/test_browser_find.py``. Without Chromium
these skip and say why; under ``CI`` they fail instead. Fixtures and checks:
homelink/browser_testing.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from django.contrib.auth.models import AbstractBaseUser

from homelink.browser_testing import PHONE, assert_no_horizontal_scroll, check_page, expect
from homelink.console.tests.test_browser import log_in
from homelink.console.tests.test_members import okafor_family
from homelink.console.tests.test_messages_left_out import left_out_roll
from homelink.messaging.models import Message
from homelink.schools.models import School

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

DESKTOP: dict[str, Any] = {"viewport": {"width": 1280, "height": 800}}
SIZES = pytest.mark.parametrize("size", [PHONE, DESKTOP], ids=["phone", "desktop"])


def check(page: Page) -> None:
    check_page(page)
    assert_no_horizontal_scroll(page)


@SIZES
def test_the_office_finds_a_parents_children_by_her_mobile(
    new_page: Callable[..., Page], school: School, admin_a: AbstractBaseUser, size: dict[str, Any]
) -> None:
    okafor_family(school)
    page = new_page(**size)
    visited: list[str] = []
    page.on("request", lambda request: visited.append(request.url))
    log_in(page, "office@a.example")
    page.get_by_role("navigation", name="Console").get_by_role("link", name="Members").click()
    expect(page.get_by_role("heading", name="Members", level=1)).to_be_visible()
    check(page)

    page.get_by_label("Name, email, mobile or MIS id").fill("07700 900123")
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_role("main").get_by_role("status")).to_have_text("2 members.")
    table = page.get_by_role("table", name="Members")
    for child in ("Smith, Amy", "Smith, Ben"):
        row = table.get_by_role("row", name=re.compile(re.escape(child)))
        expect(row).to_contain_text("linked: Pat Okafor (mother)")
    check(page)

    # The row leads to the student, where Pat is one of the linked people.
    table.get_by_role("link", name="Smith, Amy").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Amy Smith")
    expect(page.get_by_role("main")).to_contain_text("Pat Okafor")
    check(page)
    assert not [url for url in visited if "900123" in url or "07700" in url], visited


def figure(page: Page, term: str) -> str:
    return page.locator(f"dl.figures div:has(dt:text-is('{term}')) dd").inner_text()


@SIZES
def test_the_preview_lists_who_a_message_leaves_out_and_why(
    new_page: Callable[..., Page], school: School, admin_a: AbstractBaseUser, size: dict[str, Any]
) -> None:
    left_out_roll(school)
    page = new_page(**size)
    log_in(page, "office@a.example")
    page.get_by_role("navigation", name="Console").get_by_role("link", name="Messages").click()
    page.get_by_role("link", name="Write a message").click()
    page.get_by_role("radio", name=re.compile(r"^SMS only")).check()
    page.get_by_label("Chosen year groups").check()
    page.get_by_label("Year 7").check()
    page.get_by_label("SMS text").fill("School is closed today. {school}")
    page.get_by_role("button", name="Preview the message").click()
    expect(
        page.get_by_role("heading", name="Check the message before sending", level=1)
    ).to_be_visible()

    # The figures agree: 6 people = 2 reached + 4 left out; the two who share a number, 1 SMS.
    assert [figure(page, t) for t in ("People", "Reached", "Left out", "SMS")] == [
        "6",
        "2",
        "4",
        "1",
    ]
    shared = page.get_by_role("list", name="Shared numbers and addresses")
    expect(shared).to_contain_text("SMS to 07700 900031, one copy for Rita Kay and Sam Kay")
    section = page.get_by_role("region", name="Who it leaves out")
    groups = section.locator("details summary")
    expect(groups).to_have_text(
        ["Opted out: 1", "No mobile: 1", "Turned SMS off: 1", "Texted STOP: 1"]
    )
    expect(section).to_contain_text("Texting START turns SMS back on.")
    check(page)

    # Each name opens the record: Mary's is her daughter Amy's linked people.
    section.get_by_role("link", name="Mary Smith").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Amy Smith")
    check(page)
    assert not Message.objects.exists(), "a preview sends nothing"
