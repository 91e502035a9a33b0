"""Sending a message from the console in a real browser: Chromium through Playwright.

A sender writes an "email, else SMS" message to year 8's parents, previews it (who it
reaches, what it costs), sends it, and lands on the message's page. On a tablet, with axe-core
on the compose, preview and message pages, and no script anywhere.

Run alone with ``.venv/bin/pytest homelink/console/tests/test_browser_messages.py``. Without
Chromium this skips and says why; under ``CI`` it fails instead. Fixtures and checks:
homelink/browser_testing.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
from django.contrib.auth.models import AbstractBaseUser

from homelink.browser_testing import check_page, expect
from homelink.console.tests.test_browser import PASSWORD, TABLET
from homelink.messaging.models import Delivery, Message
from homelink.schools.models import School

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser


@pytest.fixture
def tablet(new_page: Callable[..., Page]) -> Page:
    return new_page(**TABLET)


def figure(page: Page, term: str) -> str:
    """The value of one of the preview's figures ("Emails" → "1")."""
    return page.locator(f"dl.figures div:has(dt:text-is('{term}')) dd").inner_text()


def test_a_sender_previews_and_sends_email_else_sms_to_a_year_group(
    tablet: Page, roll: School, sender_a: AbstractBaseUser
) -> None:
    page = tablet
    page.goto("/login/")
    page.get_by_label("Email address").fill("sender@a.example")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(rf"/console/{roll.urn}/$"))

    # The dashboard's delivery panel, then the messages list.
    expect(page.get_by_role("heading", name="Delivery", level=2)).to_be_visible()
    page.get_by_role("navigation", name="Console").get_by_role("link", name="Messages").click()
    expect(page.get_by_role("heading", name="Messages", level=1)).to_be_visible()
    check_page(page)
    page.get_by_role("link", name="Write a message").click()

    # Compose: email, else SMS is the default; the year groups appear once chosen.
    expect(page.get_by_role("heading", name="Write a message", level=1)).to_be_visible()
    expect(page.get_by_role("radio", name=re.compile(r"^Email, else SMS"))).to_be_checked()
    expect(page.get_by_label("Year 8")).to_be_hidden()
    page.get_by_label("Chosen year groups").check()
    page.get_by_label("Year 8").check()
    page.get_by_label("Email subject").fill("Sports day")
    page.get_by_label("Email text").fill("Dear {name}, sports day for {children} is on Friday.")
    page.get_by_label("SMS text").fill("Sports day is on Friday. {school}")
    check_page(page)
    assert page.evaluate("document.scripts.length") == 0

    # Preview: Ben's mother has an email, his father only a mobile.
    page.get_by_role("button", name="Preview the message").click()
    expect(
        page.get_by_role("heading", name="Check the message before sending", level=1)
    ).to_be_visible()
    assert figure(page, "Emails") == "1"
    assert figure(page, "SMS") == "1"
    assert figure(page, "Credits it costs") == "1"
    assert figure(page, "Encoding") == "GSM-7"
    expect(page.get_by_role("heading", name="Email to Mary Smith")).to_be_visible()
    expect(page.get_by_text("Dear Mary Smith, sports day for Ben is on Friday.")).to_be_visible()
    expect(page.get_by_text("Sports day is on Friday. Example Academy")).to_be_visible()
    assert not Message.objects.exists(), "a preview sends nothing"
    check_page(page)

    # The send form as the preview shows it, to submit again after sending.
    send_form = page.locator("form", has=page.get_by_role("button", name="Send now"))
    action = send_form.get_attribute("action")
    fields = send_form.locator("input[name]").evaluate_all(
        "inputs => inputs.filter(i => i.type !== 'checkbox' || i.checked)"
        ".map(i => [i.name, i.value])"
    )

    # Send: the message's page, with its recipients waiting for the worker.
    page.get_by_role("button", name="Send now").click()
    expect(
        page.get_by_role("heading", name="Message to Parents of year 8", level=1)
    ).to_be_visible()
    expect(page.get_by_role("main").get_by_role("status").first).to_contain_text(
        "Sending: 2 messages (1 email and 1 SMS) queued."
    )
    totals = page.get_by_role("table", name=re.compile("Delivery totals"))
    expect(totals.get_by_role("row", name=re.compile(r"^Waiting to send"))).to_contain_text("2")
    recipients = page.get_by_role("table", name=re.compile("Recipients"))
    expect(recipients.get_by_role("row", name=re.compile("Mary Smith"))).to_contain_text(
        "mary@example.org"
    )
    expect(recipients.get_by_role("row", name=re.compile("Dan Smith"))).to_contain_text(
        "07700 900002"  # stored as +447700900002, shown as a GB school writes it
    )
    check_page(page)

    message = Message.objects.get()
    assert (message.mode, message.email_count, message.sms_count) == ("email_else_sms", 1, 1)
    assert sorted(Delivery.objects.values_list("channel", "to")) == [
        ("email", "mary@example.org"),
        ("sms", "+447700900002"),
    ]

    from playwright.sync_api import Error as PlaywrightError

    # The preview is not kept by the browser (no-store: it names parents), so going back asks
    # before posting anything again; and the same preview sent a second time sends nothing more.
    with pytest.raises(PlaywrightError, match="ERR_CACHE_MISS"):
        page.go_back()
    assert action is not None
    again = page.request.post(action, form=dict(fields))
    assert "This message was already sent" in again.text()
    assert Message.objects.count() == 1
