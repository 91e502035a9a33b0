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
# The conformance tier (marker `corpus`): the real SIMS and OneRoster files described in
# shared/samples/SOURCES.md. They are GPL test data from other projects, so they are not in this
# repository; CI lays shared/ beside the clone, and HOMELINK_SHARED points elsewhere. The rest of
# the suite covers the same quirks with small fictional files of our own (mis/tests/data/README.md).
SAMPLES = Path(os.environ.get("HOMELINK_SHARED") or REPO.parent / "shared") / "samples"
CORPUS_MISSING = (
    f"real MIS sample corpus not found at {SAMPLES}: put it there or set HOMELINK_SHARED "
    "to run the conformance tier"
)


def _corpus_required() -> bool:
    """Set by .ci/run under CI: there a missing corpus fails the tier instead of skipping it."""
    return os.environ.get("HOMELINK_REQUIRE_CORPUS", "").strip() not in ("", "0")


def _corpus() -> Path:
    """The sample folder, or skip (fail where required). Every skip is raised on this one line,
    so pytest's summary folds the whole tier into a single "SKIPPED [n] …" line."""
    if SAMPLES.is_dir():
        return SAMPLES
    if _corpus_required():
        pytest.fail(f"{CORPUS_MISSING} (HOMELINK_REQUIRE_CORPUS is set)", pytrace=False)
    pytest.skip(CORPUS_MISSING)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that reads the corpus (the `samples` fixture) belongs to the tier."""
    for item in items:
        if "samples" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.corpus)


def pytest_runtest_setup(item: pytest.Item) -> None:
    # Before any fixture: a skipped conformance test never builds a database first.
    if item.get_closest_marker("corpus") is not None:
        _corpus()


@pytest.fixture
def samples() -> Path:
    """shared/samples: using it puts a test in the conformance tier (marker `corpus`)."""
    return _corpus()


@pytest.fixture
def school(db: None) -> School:
    return School.objects.create(urn="100001", name="Example Academy", la_code="838", estab="4512")
