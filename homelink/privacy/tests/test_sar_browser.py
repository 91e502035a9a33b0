"""Subject access in a real browser: an administrator opens a student's page, downloads the
export of one of the student's parents, finds the request on the Subject access page with its
due date, and marks it complete. axe-core runs on every page visited."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from django.utils import timezone

from homelink.browser_testing import assert_no_horizontal_scroll, check_page, expect
from homelink.privacy.models import SubjectAccessRequest
from homelink.privacy.sar import due_date
from homelink.privacy.tests.sar_world import (
    CORA,
    OFFICE_EMAIL,
    PAT_EMAIL,
    STAN,
    build_family,
    export_json,
    leaks,
)
from homelink.schools.models import School

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

PASSWORD = "correct horse battery staple"


def check(page: Page) -> None:
    check_page(page)
    assert_no_horizontal_scroll(page)


def test_an_administrator_downloads_a_parents_export_and_marks_it_complete(
    page: Page, school: School, tmp_path: Path
) -> None:
    family = build_family(school)
    page.goto("/login/")
    page.get_by_label("Email address").fill(OFFICE_EMAIL)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(rf"/console/{school.urn}/$"))

    page.goto(f"/console/{school.urn}/members/{family.ada.pk}/")
    check(page)
    card = page.get_by_role("article", name=re.compile("Pat Quinlan"))
    with page.expect_download() as download:
        card.get_by_role("button", name=re.compile("Subject access")).click()
    saved = tmp_path / "export.zip"
    download.value.save_as(saved)
    content = saved.read_bytes()
    assert export_json(content)["subject"]["email"] == PAT_EMAIL
    assert leaks(content, CORA) == [] and leaks(content, STAN) == []
    assert SubjectAccessRequest.objects.filter(adult=family.pat).count() == 1

    page.get_by_role("navigation", name="Console").get_by_role(
        "link", name="Subject access"
    ).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Subject access requests")
    check(page)
    due = due_date(timezone.localdate())
    row = page.get_by_role("row", name=re.compile("Pat Quinlan"))
    expect(row).to_contain_text(f"{due.day} {due:%b %Y}")
    row.get_by_role("button", name="Mark complete").click()
    expect(page.get_by_text("No open requests.")).to_be_visible()
    check(page)
    assert SubjectAccessRequest.objects.get().completed_at is not None
