"""Fixtures shared by every app's tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
