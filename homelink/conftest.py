"""Fixtures shared by every app's tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Browser tests (marker `browser`): Chromium, a page per test at the live server, and the hook
# that makes a skipped browser test a failure under CI. See homelink/browser_testing.py.
from homelink.browser_testing import (  # noqa: F401
    browser,
    local_outbox,
    new_page,
    page,
    phone_page,
    playwright_driver,
    pytest_runtest_makereport,
)
from homelink.mail_testing import smtp  # noqa: F401 - a real SMTP server for any app's tests
from homelink.schools.models import School

REPO = Path(__file__).resolve().parent.parent
# CI lays shared/ beside the clone; HOMELINK_SHARED points elsewhere when it is not.
SAMPLES = Path(os.environ.get("HOMELINK_SHARED", REPO.parent / "shared")) / "samples"


@pytest.fixture
def samples() -> Path:
    if not SAMPLES.is_dir():
        pytest.fail(f"the shared samples are missing: expected them at {SAMPLES}")
    return SAMPLES


@pytest.fixture
def school(db: None) -> School:
    return School.objects.create(urn="100001", name="Example Academy", la_code="838", estab="4512")
