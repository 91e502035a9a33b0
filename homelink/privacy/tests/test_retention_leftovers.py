"""What a retention purge must not leave behind, and what it must never be set to remove
(review of issue 13): leavers' names in the import history, MIS files uploaded and left
waiting, and an audit trail cut shorter than 6 years."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from homelink.audit.models import AuditEvent
from homelink.mis import runs
from homelink.mis.models import ImportRun
from homelink.mis.tests.test_cli import homelink
from homelink.mis.uploads import school_folder
from homelink.privacy.models import RetentionPolicy
from homelink.privacy.retention import (
    retention_policy_set,
    retention_preview,
    retention_purge,
)
from homelink.register.models import Adult, Member
from homelink.schools.models import School

pytestmark = pytest.mark.django_db

CTF = (
    Path(__file__).resolve().parents[2]
    / "mis"
    / "tests"
    / "data"
    / "ctf_transfer_contacts_out_of_order.xml"
)


def _hits(needles: tuple[str, ...]) -> list[tuple[str, str, str]]:
    hits = []
    for model in apps.get_models():
        for row in model._default_manager.all().values():
            for column, value in row.items():
                text = json.dumps(value, default=str, ensure_ascii=False)
                hits += [(model._meta.label, column, n) for n in needles if n in text]
    return hits


# --- the import history -----------------------------------------------------------------------------


def test_a_purged_leaver_and_their_contact_leave_nothing_in_the_import_history(
    roll: School,
) -> None:
    needles = ("Lou Brown", "Zo\u00eb", "447700900004")
    assert _hits(needles)  # the import's preview named them
    Member.objects.filter(school=roll, mis_id="D1").update(
        status=Member.Status.LEFT, left_at=timezone.now() - dt.timedelta(days=400)
    )
    counts = retention_purge(school=roll, actor="cli")
    assert counts["leavers"] == 1 and counts["leaver_contacts"] == 1
    assert not Adult.objects.filter(school=roll, forename="Zo\u00eb").exists()
    assert _hits(needles) == []
    # The others are still in the history, and the purge's record says how many runs changed.
    assert "Amy Smith (A1)" in json.dumps(ImportRun.objects.get(school=roll).summary)
    event = AuditEvent.objects.get(action="retention.purged")
    assert event.detail["import_runs_redacted"] == 1


# --- the audit trail's floor ------------------------------------------------------------------------


def test_the_audit_trail_is_kept_at_least_six_years_and_may_be_kept_longer(
    school: School,
) -> None:
    for years in (1, 5):
        with pytest.raises(ValidationError, match="kept at least 6 years"):
            retention_policy_set(
                school=school,
                leavers_months=12,
                messages_months=24,
                audit_years=years,
                actor="test",
            )
    assert not RetentionPolicy.objects.exists()
    assert not AuditEvent.objects.filter(action="retention.changed").exists()
    retention_policy_set(
        school=school, leavers_months=12, messages_months=24, audit_years=8, actor="test"
    )
    assert RetentionPolicy.objects.get(school=school).audit_years == 8


def test_the_console_refuses_a_shorter_audit_period(school: School, admin_a: Any) -> None:
    office = Client()
    office.force_login(admin_a)
    url = reverse("console:retention", kwargs={"urn": school.urn})
    page = office.get(url).content.decode()
    assert "At least 6 years" in page
    refused = office.post(
        url, {"leavers_months": "12", "messages_months": "24", "audit_years": "1"}
    )
    assert refused.status_code == 400
    assert "The audit trail is kept at least 6 years" in refused.content.decode()
    assert not RetentionPolicy.objects.exists()


def test_a_period_saved_before_the_floor_removes_nothing_younger_than_six_years(
    school: School,
) -> None:
    RetentionPolicy.objects.create(school=school, audit_years=1)
    now = timezone.now()
    for days in (2 * 365, 5 * 365, 7 * 365):
        AuditEvent.objects.create(
            school=school,
            actor_label="test",
            action="test.event",
            at=now - dt.timedelta(days=days),
        )
    assert retention_preview(school, now=now)["audit_events"] == 1
    assert retention_purge(school=school, actor="cli", now=now)["audit_events"] == 1
    assert AuditEvent.objects.filter(action="test.event").count() == 2


# --- MIS files uploaded and left waiting ------------------------------------------------------------


@pytest.fixture
def media(settings: Any, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    return tmp_path / "media"


def _preview(school: School, user: Any, days_ago: int, status: str) -> ImportRun:
    run = runs.import_upload(
        school=school, user=user, upload=SimpleUploadedFile(CTF.name, CTF.read_bytes())
    )
    ImportRun.objects.filter(pk=run.pk).update(
        status=status, started_at=timezone.now() - dt.timedelta(days=days_ago)
    )
    run.refresh_from_db()
    return run


def test_the_purge_deletes_uploads_left_waiting_past_thirty_days(
    school: School, admin_a: Any, media: Path, django_capture_on_commit_callbacks: Any
) -> None:
    old = _preview(school, admin_a, 40, ImportRun.Status.PREVIEW)
    recent = _preview(school, admin_a, 5, ImportRun.Status.PREVIEW)
    # A request still waiting for a worker keeps its file however old.
    queued = _preview(school, admin_a, 40, ImportRun.Status.QUEUED)
    folder = school_folder(school.pk)
    assert len(list(folder.iterdir())) == 3

    out = homelink("privacy", "retention", "--school", school.urn, "--dry-run")
    assert "uploaded MIS files left waiting (never applied or discarded): 1" in out
    assert len(list(folder.iterdir())) == 3
    with django_capture_on_commit_callbacks(execute=True):
        counts = retention_purge(school=school, actor="cli")
    assert counts["uploads"] == 1
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        Path(r.upload).name for r in (recent, queued)
    )
    old.refresh_from_db()
    assert old.upload == ""  # the console no longer offers to apply it
    assert retention_preview(school)["uploads"] == 0
