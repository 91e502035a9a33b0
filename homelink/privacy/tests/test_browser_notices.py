"""The first-contact notice end to end in a real browser (Chromium through Playwright).

The register is filled by an import (console/tests/compose.py's roll, through the MIS test
factories). A sender writes an "email, else SMS" message to year 8's parents (Mary Smith by
email, Dan Smith by SMS, both imported and never told) and sends it; the worker runs; the local
outbox shows each parent's privacy notice before the message. Dan opens the link in his notice's
SMS and stops messages: his copy of the message is never sent. axe-core on every page.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from django.utils import timezone

from homelink.browser_testing import check_page, expect
from homelink.messaging.dispatch import NOTICE_FIRST, drain
from homelink.messaging.models import Delivery, Message, OutboxMessage
from homelink.privacy.tests.conftest import PASSWORD
from homelink.register.models import Adult
from homelink.schools.models import School

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("notices_on")]

Status = Delivery.Status


TABLET: dict[str, Any] = {
    "viewport": {"width": 820, "height": 1180},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
}


@pytest.fixture
def tablet(new_page: Callable[..., Page]) -> Page:
    return new_page(**TABLET)


def outbox_bodies(page: Page) -> list[tuple[str, str]]:
    """(heading, body) of each message on /outbox/, newest first."""
    page.goto("/outbox/")
    check_page(page)
    articles = page.locator("article.outbox-message")
    return [
        (articles.nth(i).locator("h2").inner_text(), articles.nth(i).inner_text())
        for i in range(articles.count())
    ]


def test_imported_parents_get_the_notice_first_and_a_stop_from_its_link_stops_the_message(
    tablet: Page, roll: School, sender_a: Any, local_outbox: None
) -> None:
    page = tablet
    page.goto("/login/")
    page.get_by_label("Email address").fill("sender@a.example")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(rf"/console/{roll.urn}/$"))
    # The dashboard counts the four imported parents never told.
    expect(
        page.locator(
            "dl.figures div:has(dt:text-is('From the MIS, not yet sent the privacy notice')) dd"
        )
    ).to_have_text("4")

    page.get_by_role("navigation", name="Console").get_by_role("link", name="Messages").click()
    page.get_by_role("link", name="Write a message").click()
    page.get_by_label("Chosen year groups").check()
    page.get_by_label("Year 8").check()
    page.get_by_label("Email subject").fill("Sports day")
    page.get_by_label("Email text").fill("Dear {name}, sports day for {children} is on Friday.")
    page.get_by_label("SMS text").fill("Sports day is on Friday. {school}")
    page.get_by_role("button", name="Preview the message").click()
    expect(
        page.get_by_role("heading", name="Check the message before sending", level=1)
    ).to_be_visible()
    expect(page.get_by_role("heading", name="The privacy notice goes first")).to_be_visible()
    expect(page.get_by_text("(1 by email, 1 by SMS, 1 SMS credit)")).to_be_visible()
    check_page(page)
    page.get_by_role("button", name="Send now").click()
    expect(
        page.get_by_role("heading", name="Message to Parents of year 8", level=1)
    ).to_be_visible()
    check_page(page)

    message = Message.objects.get(kind=Message.Kind.SCHOOL)
    notice = Message.objects.get(kind=Message.Kind.NOTICE)
    assert sorted(notice.deliveries.values_list("channel", "to")) == [
        ("email", "mary@example.org"),
        ("sms", "+447700900002"),
    ]

    # The worker: the notices go; each parent's copy of the message waits for theirs.
    drain(seconds=10)
    assert set(notice.deliveries.values_list("status", flat=True)) == {Status.SENT}
    assert set(message.deliveries.values_list("status", "reason")) == {
        (Status.QUEUED, NOTICE_FIRST)
    }
    shown = outbox_bodies(page)
    assert sorted(heading for heading, _ in shown) == [
        "Email to mary@example.org",
        "SMS to +447700900002",
    ]
    assert all("Sports day" not in body for _, body in shown)
    mary_notice = next(body for heading, body in shown if "mary" in heading)
    assert "How Example Academy uses your contact details" in mary_notice
    assert "Privacy notice: " in mary_notice and "/p/a" in mary_notice
    dan_sms = next(body for heading, body in shown if "+447700900002" in heading)
    assert "Privacy notice and opt-out:" in dan_sms

    # Dan follows his SMS's link: the school's notice, and a button to stop messages.
    link = re.search(r"https?://\S+/(p/[\w-]+/)", dan_sms)
    assert link is not None
    page.goto("/" + link.group(1))
    expect(page.get_by_role("heading", name="Stop messages from Example Academy?")).to_be_visible()
    expect(page.get_by_text("Example Academy is the data controller")).to_be_visible()
    check_page(page)
    page.get_by_role("button", name="Stop all messages from Example Academy").click()
    expect(page.get_by_role("heading", name="Messages stopped")).to_be_visible()
    check_page(page)
    assert Adult.objects.get(school=roll, forename="Dan").opted_out

    # The worker again, once the copies' wait is over: Mary's message goes, Dan's never does.
    message.deliveries.update(next_attempt_at=timezone.now() - dt.timedelta(seconds=1))
    drain(seconds=10)
    statuses = dict(message.deliveries.values_list("to", "status"))
    assert statuses == {"mary@example.org": Status.SENT, "+447700900002": Status.SKIPPED}
    shown = outbox_bodies(page)
    mary = [body for heading, body in shown if "mary" in heading]
    # Newest first: the message above the notice that went before it.
    assert len(mary) == 2
    assert "Sports day" in mary[0] and "How Example Academy uses your contact details" in mary[1]
    assert len([h for h, _ in shown if "+447700900002" in h]) == 1
    assert list(
        OutboxMessage.objects.filter(to="mary@example.org")
        .order_by("pk")
        .values_list("subject", flat=True)
    ) == ["How Example Academy uses your contact details", "Sports day"]

    # The message's page says why Dan's copy was not sent.
    page.goto(f"/console/{roll.urn}/messages/{message.pk}/")
    recipients = page.get_by_role("table", name=re.compile("Recipients"))
    expect(recipients.get_by_role("row", name=re.compile("Dan Smith"))).to_contain_text("opted out")
    check_page(page)
