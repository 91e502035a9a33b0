"""A scheduled sync's file stopped by the leavers guard, decided in a real browser.

A drop-folder sync takes tonight's export, which would mark most of the school as left: the run
writes nothing and waits on the imports page. An administrator discards one such file, then
opens the next night's, ticks the confirmation and applies it: the students are marked left.
Then the time of the sync is changed through its form. Chromium through Playwright against the
live server, on a tablet, with axe-core on every page (homelink/browser_testing.py).

The sync runs as the worker would run it (``sync_run``, scheduled) in the test's thread; the
apply the administrator asks for is the upload's task, run where it is queued (the immediate
backend: the live server is a thread of this process), as in test_browser.py.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from django.contrib.auth.models import User

from homelink.browser_testing import assert_no_horizontal_scroll, check_page, expect
from homelink.console.tests.test_browser import TABLET, log_in
from homelink.mis.models import ImportRun
from homelink.mis.tests.factories import pupil, run_import
from homelink.register.models import Member
from homelink.schools.models import School
from homelink.sync.models import SyncSource
from homelink.sync.services import sync_run, sync_set_folder

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

#: Twelve on roll; each night's export names one of them, so eleven would be marked left.
ROLL = 12


@pytest.fixture(autouse=True)
def _sync_in_process(settings: Any, tmp_path: Path) -> None:
    """Tasks run where they are queued; stored files under the test's folder; a dropped file is
    taken once it has been still for a tenth of a second."""
    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.HOMELINK_SYNC_ROOT = tmp_path / "sync"
    settings.HOMELINK_SYNC_SETTLE_SECONDS = 0.1


@pytest.fixture
def tablet(new_page: Callable[..., Page]) -> Page:
    return new_page(**TABLET)


def check(page: Page) -> None:
    check_page(page)
    assert_no_horizontal_scroll(page)


def drop(folder: Path, name: str, forename: str) -> None:
    """Tonight's export, arrived in full a minute ago (its ctime, which cannot be set back, is
    let age past the settle time)."""
    path = folder / name
    path.write_text(f"UPN,Forename,Surname,Year\nK000000000000,{forename},N0,7\n")
    written = time.time() - 60
    os.utime(path, (written, written))
    time.sleep(0.15)


def night(school: School) -> ImportRun:
    outcome = sync_run(school=school, trigger=ImportRun.Trigger.SCHEDULED)
    assert outcome.status == ImportRun.Status.STOPPED, outcome.error
    assert not outcome.wrote
    return outcome.run


def test_a_scheduled_file_stopped_by_the_leavers_guard_is_discarded_then_applied(
    tablet: Page, school: School, admin_a: User, tmp_path: Path
) -> None:
    page = tablet
    run_import(school, [pupil(f"K{n:012d}", "Pupil", f"N{n}") for n in range(ROLL)])
    folder = tmp_path / "drop"
    sync_set_folder(school=school, folder=folder, at=dt.time(2, 0), actor_label="test")
    drop(folder, "roll-monday.csv", "Pupil")
    monday = night(school)

    log_in(page, "office@a.example")
    page.get_by_role("navigation", name="Console").get_by_role("link", name="Imports").click()
    expect(page.get_by_role("heading", name="Imports", level=1)).to_be_visible()
    waiting = page.get_by_role("region", name="Waiting for a decision")
    expect(waiting).to_contain_text("roll-monday.csv (Drop folder, scheduled")
    expect(waiting).to_contain_text("stopped: it would mark 11 students as left")
    sync = page.get_by_role("region", name="Scheduled sync")
    expect(sync).to_contain_text("Every night at 02:00")
    expect(sync).to_contain_text("Waiting for a decision on the imports page")
    history = page.get_by_role("table", name="Import runs, latest first")
    row = history.get_by_role("row", name=re.compile(r"roll-monday\.csv"))
    for cell in ("Drop folder", "Scheduled", "Stopped: needs confirmation"):
        expect(row).to_contain_text(cell)
    check(page)

    # Monday's file: discarded, nothing written.
    waiting.get_by_role("link", name="roll-monday.csv").click()
    expect(
        page.get_by_role("heading", name="Stopped: 11 students would be marked as left")
    ).to_be_visible()
    details = page.locator("dl.details")
    expect(details).to_contain_text("Drop folder")
    expect(details).to_contain_text("Scheduled")
    check(page)
    page.get_by_role("button", name="Discard").click()
    expect(page.get_by_text("This preview was discarded")).to_be_visible()
    monday.refresh_from_db()
    assert monday.status == ImportRun.Status.DISCARDED and monday.upload == ""
    assert Member.objects.filter(school=school, status="left").count() == 0

    # Tuesday's file: the same decision, this time applied.
    drop(folder, "roll-tuesday.csv", "Pupil")
    tuesday = night(school)
    page.get_by_role("link", name="All imports").click()
    waiting = page.get_by_role("region", name="Waiting for a decision")
    expect(waiting.get_by_role("link")).to_have_count(1)
    waiting.get_by_role("link", name="roll-tuesday.csv").click()
    apply = page.get_by_role("button", name="Apply anyway, marking them left")
    expect(apply).to_be_visible()
    page.get_by_label("These 11 students have really left").check()
    apply.click()
    expect(page.get_by_text("Applied: the register now follows this file.")).to_be_visible()
    counts = page.get_by_role("table", name="Counts by group")
    expect(counts.get_by_role("row", name=re.compile(r"^Students\b"))).to_contain_text("11 left")
    check(page)
    assert Member.objects.filter(school=school, status="left").count() == ROLL - 1
    applied = ImportRun.objects.get(school=school, status=ImportRun.Status.APPLIED, source="folder")
    assert applied.options["confirm_leavers"] is True and applied.started_by == admin_a
    # The decision is the stopped run's: its apply request became the applied run.
    tuesday.refresh_from_db()
    assert tuesday.followed_by is not None and tuesday.followed_by.followed_by == applied

    # Nothing waits any more; the sync's time is changed through its own form.
    page.get_by_role("link", name="All imports").click()
    expect(page.get_by_role("region", name="Waiting for a decision")).to_have_count(0)
    page.get_by_text("Change the scheduled sync").click()
    time_form = page.get_by_role("form", name="Time")
    time_form.get_by_label("Every night at").fill("03:15")
    check(page)
    time_form.get_by_role("button", name="Save the time").click()
    expect(page.get_by_text("Saved: the sync runs every night at 03:15.")).to_be_visible()
    expect(page.get_by_role("region", name="Scheduled sync")).to_contain_text(
        "Every night at 03:15"
    )
    assert SyncSource.objects.get(school=school).at == dt.time(3, 15)
