"""The staff console in a real browser: Chromium through Playwright, against the live server.

An administrator logs in, imports a SIMS transfer file (preview, then apply), opens a
student, adds an adult by hand, makes that link prime, records an adult's opt-out, and the
register's export shows all of it. On a tablet, with axe-core run on every page visited.

Run alone with ``.venv/bin/pytest homelink/console/tests/test_browser.py -n 2``. Without Chromium
these skip and say why; under ``CI`` they fail instead. Fixtures and checks:
homelink/browser_testing.py.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from django.contrib.auth.models import AbstractBaseUser
from django.core.management import call_command

from homelink.browser_testing import assert_no_horizontal_scroll, check_page, expect
from homelink.schools.models import School

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

pytestmark = pytest.mark.browser

#: The password ``make_user`` (tests/conftest.py) gives every staff account.
PASSWORD = "correct horse battery staple"
#: An iPad Air in portrait: the console must read without sideways scrolling.
TABLET: dict[str, Any] = {
    "viewport": {"width": 820, "height": 1180},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
}
#: DestSchool LA 838 / Estab 4512: a transfer-in for `school` (mis/tests/data/README.md).
CTF = "ctf_transfer_contacts_out_of_order.xml"
CTF_PATH = Path(__file__).resolve().parents[2] / "mis" / "tests" / "data" / CTF
ALFIE_UPN = "K838329919001"


@pytest.fixture(autouse=True)
def _imports_run_inline(settings: Any, tmp_path: Path) -> None:
    """The upload's task runs in the request that queues it (the live server is a thread of
    this process, so the override applies to it); uploads go to a fresh folder."""
    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def tablet(new_page: Callable[..., Page]) -> Page:
    return new_page(**TABLET)


def check(page: Page) -> None:
    """axe-core (serious and critical), styles, no script errors, and no sideways scrolling."""
    check_page(page)
    assert_no_horizontal_scroll(page)


def notice(page: Page) -> Locator:
    """The console's messages ("… is now linked to …")."""
    return page.get_by_role("main").get_by_role("status").first


def person(page: Page, name: str) -> Locator:
    """One linked adult's card on a student's page (an article named by its heading)."""
    return page.get_by_role("article", name=re.compile(re.escape(name)))


def log_in(page: Page, email: str) -> None:
    page.goto("/login/")
    check(page)
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()


def export(school: School) -> dict[str, Any]:
    out = io.StringIO()
    call_command("export", "--school", school.urn, "--json", stdout=out)
    data: dict[str, Any] = json.loads(out.getvalue())
    return data


def test_an_administrator_imports_a_file_links_an_adult_and_the_export_shows_it(
    tablet: Page, school: School, admin_a: AbstractBaseUser
) -> None:
    page = tablet
    console = page.get_by_role("navigation", name="Console")

    # Log in: staff land on their school's dashboard.
    log_in(page, "office@a.example")
    expect(page).to_have_url(re.compile(rf"/console/{school.urn}/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text(f"How reachable {school.name} is")
    check(page)

    # Import the transfer file: the preview first, nothing written until it is applied.
    console.get_by_role("link", name="Imports").click()
    expect(page.get_by_role("heading", name="Imports", level=1)).to_be_visible()
    expect(page.get_by_role("link", name="Imports")).to_have_attribute("aria-current", "page")
    check(page)
    page.get_by_label("MIS export").set_input_files(CTF_PATH)
    page.get_by_role("button", name="Upload and preview").click()
    expect(page.get_by_role("heading", name=f"Import of {CTF}", level=1)).to_be_visible()
    expect(
        page.get_by_role("heading", name="Preview ready: nothing has been written yet")
    ).to_be_visible()
    counts = page.get_by_role("table", name="Counts by group")
    expect(counts.get_by_role("row", name=re.compile(r"^Students\b"))).to_contain_text("2 created")
    check(page)
    assert export(school)["members"] == [], "a preview writes nothing"

    page.get_by_role("button", name="Apply this import").click()
    expect(page.get_by_text("Applied: the register now follows this file.")).to_be_visible()
    expect(page.get_by_role("heading", name="What the import did")).to_be_visible()
    counts = page.get_by_role("table", name="Counts by group")
    expect(counts.get_by_role("row", name=re.compile(r"^Students\b"))).to_contain_text("2 created")
    check(page)

    # The history lists the applied run.
    page.get_by_role("link", name="All imports").click()
    history = page.get_by_role("table", name="Import runs, latest first")
    expect(history.get_by_role("row", name=re.compile(re.escape(CTF))).first).to_contain_text(
        "Applied"
    )
    check(page)

    # Open the student from Members.
    console.get_by_role("link", name="Members").click()
    expect(page.get_by_role("heading", name="Members", level=1)).to_be_visible()
    check(page)
    page.get_by_role("link", name="Marchbank, Alfie").click()
    expect(page.get_by_role("heading", name="Alfie Marchbank", level=1)).to_be_visible()
    kerry = person(page, "Kerry Marchbank")
    expect(kerry.get_by_text("prime", exact=True)).to_be_visible()  # priority 1 from the MIS
    check(page)

    # Add a new adult by hand, not prime at first.
    page.get_by_role("link", name="Add a new adult").click()
    expect(
        page.get_by_role("heading", name="Add a new adult for Alfie Marchbank", level=1)
    ).to_be_visible()
    check(page)
    page.get_by_label("Title").fill("Ms")
    page.get_by_label("First name").fill("Tina")
    page.get_by_label("Last name").fill("Turner")
    page.get_by_label("Email").fill("tina.turner@example.org")
    page.get_by_label("Mobile").fill("07700 900555")
    page.get_by_label("Relationship to the student").fill("aunt")
    expect(page.get_by_label("Prime parent")).not_to_be_checked()
    page.get_by_role("button", name="Add and link").click()
    expect(page.get_by_role("heading", name="Alfie Marchbank", level=1)).to_be_visible()
    expect(notice(page)).to_contain_text("Tina Turner is now linked to Alfie Marchbank")
    tina = person(page, "Tina Turner")
    expect(tina).to_contain_text("aunt")
    expect(tina).to_contain_text("07700 900555")  # shown as a GB school writes it
    expect(tina.get_by_text("prime", exact=True)).to_have_count(0)
    check(page)

    # Make the new link prime.
    tina.get_by_role("button", name="Make prime").click()
    expect(notice(page)).to_contain_text("Tina Turner is now a prime parent")
    tina = person(page, "Tina Turner")
    expect(tina.get_by_text("prime", exact=True)).to_be_visible()
    expect(tina.get_by_role("button", name="Remove prime")).to_be_visible()
    check(page)

    # Kerry asked not to be contacted: staff tick that she asked (the form requires it).
    kerry = person(page, "Kerry Marchbank")
    asked = kerry.get_by_label("Kerry asked for this")
    expect(asked).to_have_attribute("required", "")
    asked.check()
    kerry.get_by_role("button", name="Record opt-out").click()
    expect(notice(page)).to_contain_text("Recorded: Kerry Marchbank opted out at their request.")
    kerry = person(page, "Kerry Marchbank")
    expect(kerry.get_by_text("opted out", exact=True)).to_be_visible()
    expect(kerry.get_by_role("button", name="Record opt back in")).to_be_visible()
    check(page)

    # What the register's export says.
    members = {m["mis_id"]: m for m in export(school)["members"]}
    assert set(members) == {ALFIE_UPN, "A838329919002"}
    links = {(x["forename"], x["surname"]): x for x in members[ALFIE_UPN]["links"]}
    assert set(links) == {("Kerry", "Marchbank"), ("Tina", "Turner")}
    tina_link = links["Tina", "Turner"]
    assert (
        tina_link["source"],
        tina_link["mobile"],
        tina_link["email"],
        tina_link["relationship"],
        tina_link["prime"],
        tina_link["opted_out"],
    ) == ("manual", "+447700900555", "tina.turner@example.org", "aunt", True, False)
    kerry_link = links["Kerry", "Marchbank"]
    assert (kerry_link["source"], kerry_link["prime"], kerry_link["opted_out"]) == (
        "import",
        True,
        True,
    )
