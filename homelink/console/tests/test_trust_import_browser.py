"""The trust-wide import in a real browser (Chromium through Playwright, against the live
server): a trust administrator uploads the trust's export, says which school the one unknown
org is, sees each school's preview side by side, applies, and opens one school's part in its
own console. axe-core runs on each page. The worker's task runs in the server once each request
commits (the immediate backend)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pytest

from homelink.browser_testing import assert_no_horizontal_scroll, check_page, expect
from homelink.console.tests.test_trust_import_console import trust_member
from homelink.mis.models import ImportRun
from homelink.staff.models import Role
from homelink.trusts.models import TrustSchool
from homelink.trusts.tests.test_trust_import import make_trust, students, trust_roster

if TYPE_CHECKING:
    from playwright.sync_api import FilePayload, Page

pytestmark = pytest.mark.browser

PASSWORD = "correct horse battery staple"  # make_user's


@pytest.fixture(autouse=True)
def _immediate_tasks_and_media(settings: Any, tmp_path: Any) -> None:
    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def test_a_trust_administrator_imports_the_trusts_export(page: Page, transactional_db) -> None:
    world = make_trust(map_all=False)
    trust_member("central@northstar.example", world.trust, Role.ADMINISTRATOR)

    page.goto("/login/")
    page.get_by_label("Email address").fill("central@northstar.example")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.goto(f"/console/trust/{world.trust.pk}/import/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Import the trust's OneRoster export")
    check_page(page)

    export: FilePayload = {
        "name": "northstar.zip",
        "mimeType": "application/zip",
        "buffer": trust_roster().zip_bytes(),
    }
    page.get_by_label("The trust's OneRoster export").set_input_files(files=[export])
    page.get_by_role("button", name="Upload and preview").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Import of northstar.zip")
    known = page.get_by_role("table", name="Organisations that go to a school")
    expect(known.get_by_role("row", name=re.compile(r"^Ash Primary \(org-ash\)"))).to_contain_text(
        "The school's own OneRoster imports"
    )
    check_page(page)
    page.get_by_label("Cedar School (org-cedar)").select_option(label="Cedar School (URN 100103)")
    page.get_by_role("button", name="Preview each school's import").click()

    expect(page.get_by_text("3 schools: 3 preview ready.")).to_be_visible()
    rows = page.get_by_role("region", name="Each school's part")
    expect(rows.get_by_role("row", name=re.compile(r"^Cedar School"))).to_contain_text(
        "Students: 4 created"
    )
    check_page(page)
    assert_no_horizontal_scroll(page)
    assert TrustSchool.objects.get(school=world.cedar).org_sourced_id == "org-cedar"

    page.get_by_role("button", name="Apply every preview that is ready").click()
    expect(page.get_by_text("3 schools: 3 applied.")).to_be_visible()
    assert students(world.cedar) == {f"stu-c{n}" for n in range(1, 5)}

    rows.get_by_role("link", name="Birch Academy").click()
    expect(page).to_have_url(re.compile(r"/console/100102/imports/\d+/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Import of northstar.zip")
    assert ImportRun.objects.filter(school=world.birch, status="applied").count() == 1
    check_page(page)
