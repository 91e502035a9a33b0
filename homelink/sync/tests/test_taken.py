"""Files a drop folder gave (in its done/ and failed/) are personal data: retention removes them
after its uploads period, and an erasure removes them at once."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from homelink.mis.models import ImportRun
from homelink.privacy.erasure import adult_erase
from homelink.privacy.retention import retention_preview, retention_purge
from homelink.register.models import Adult
from homelink.schools.models import School
from homelink.sync.services import sync_run, sync_set_folder

pytestmark = pytest.mark.django_db(transaction=True)

CTF = (
    Path(__file__).resolve().parents[2]
    / "mis"
    / "tests"
    / "data"
    / "ctf_spaced_and_local_numbers.xml"
)


@pytest.fixture
def synced(school: School, settings: Any, tmp_path: Path) -> Path:
    settings.HOMELINK_SYNC_SETTLE_SECONDS = 0
    settings.MEDIA_ROOT = tmp_path / "media"
    folder = tmp_path / "drop"
    sync_set_folder(school=school, folder=folder, actor_label="test")
    shutil.copy(CTF, folder / "nightly.xml")
    assert sync_run(school=school, trigger=ImportRun.Trigger.SCHEDULED).wrote
    (folder / "failed").mkdir(exist_ok=True)
    (folder / "failed" / "broken.xml").write_text("<not a ctf")
    return folder


def test_retention_removes_taken_files_after_the_uploads_period(
    school: School, synced: Path
) -> None:
    taken = [synced / "done" / "nightly.xml", synced / "failed" / "broken.xml"]
    assert retention_preview(school)["sync_files"] == 0
    retention_purge(school=school, actor="test")
    assert all(p.is_file() for p in taken)

    later = timezone.now() + dt.timedelta(days=31)
    assert retention_preview(school, now=later)["sync_files"] == 2
    counts = retention_purge(school=school, actor="test", now=later)
    assert counts["sync_files"] == 2
    assert not any(p.exists() for p in taken)


def test_erasing_an_adult_removes_every_taken_file(school: School, synced: Path) -> None:
    adult = Adult.objects.filter(school=school).first()
    assert adult is not None
    result = adult_erase(adult=adult, actor="test", confirm_unreachable=True)
    assert result.counts["sync_files_deleted"] == 2
    assert list((synced / "done").iterdir()) == []
    assert list((synced / "failed").iterdir()) == []
