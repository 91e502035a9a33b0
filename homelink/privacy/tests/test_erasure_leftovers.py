"""What an erasure must not leave behind (review of issue 13): the address on a copy a worker
was sending at that moment, the erased person's name on a copy shared with a co-parent, the
development outbox, and MIS files uploaded in the console.

The roll (conftest.py): Mary Smith (email and mobile; Amy and Ben), Dan Smith (mobile only),
Jill Jones, Zoë Brown; the first-contact notice is off unless a test asks for it."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from homelink.messaging.audience import Audience
from homelink.messaging.dispatch import Claimed, Recorder, claim, drain
from homelink.messaging.gateways import GatewayError
from homelink.messaging.models import Delivery, OutboxMessage
from homelink.mis import runs
from homelink.mis.models import ImportRun
from homelink.mis.tests.test_cli import homelink
from homelink.mis.uploads import school_folder
from homelink.privacy.erasure import adult_erase, erasure_preview
from homelink.privacy.tests.test_notices import send
from homelink.register.models import Adult
from homelink.schools.models import School

pytestmark = pytest.mark.django_db

Status = Delivery.Status
MARY = ("mary@example.org", "447700900001", "07700900001", "Mary Smith")
CTF = (
    Path(__file__).resolve().parents[2]
    / "mis"
    / "tests"
    / "data"
    / "ctf_transfer_contacts_out_of_order.xml"
)


def _scan(needles: tuple[str, ...]) -> list[tuple[str, str, str]]:
    """Every column of every row that still holds one of ``needles``."""
    hits = []
    for model in apps.get_models():
        for row in model._default_manager.all().values():
            for column, value in row.items():
                text = json.dumps(value, default=str, ensure_ascii=False).lower()
                hits += [(model._meta.label, column, n) for n in needles if n.lower() in text]
    return hits


def _claim(channel: str, worker: str = "w1") -> list[Claimed]:
    Delivery.objects.filter(status=Status.QUEUED).update(next_attempt_at=timezone.now())
    return claim(channel, worker, limit=100)


def _mary(school: School) -> Adult:
    return Adult.objects.get(school=school, forename="Mary")


# --- a copy a worker is sending at the moment of erasure ------------------------------------------


def test_a_copy_sent_during_the_erasure_loses_the_address_as_the_worker_records_it(
    roll: School,
) -> None:
    send(roll, mode="both")
    mary = _mary(roll)
    emails, texts = _claim("email"), _claim("sms")
    [her_email] = [d for d in emails if d.adult_id == mary.pk]
    [her_text] = [d for d in texts if d.adult_id == mary.pk]
    adult_erase(adult=mary, actor="cli", confirm_unreachable=True)
    # The worker had them in hand: it still holds her address (it is sending to it now).
    assert Delivery.objects.get(pk=her_email.pk).to == "mary@example.org"

    # The email goes; the SMS gateway refuses her number for good, quoting it.
    recorder = Recorder("w1", "smtp")
    for copy in emails:
        recorder.sent_ok(copy, f"id-{copy.pk}")
    recorder.flush()
    Recorder("w1", "sms").error(
        her_text, GatewayError("number +447700900001 is not a mobile", retry=False)
    )
    email_row, text_row = (
        Delivery.objects.get(pk=her_email.pk),
        Delivery.objects.get(pk=her_text.pk),
    )
    assert (email_row.status, email_row.to, email_row.name) == (Status.SENT, "", "")
    assert (text_row.status, text_row.to, text_row.name, text_row.reason) == (
        Status.FAILED,
        "",
        "",
        "",
    )
    # Nobody else's copy lost anything.
    jill = Delivery.objects.get(channel="email", to="jill@example.org")
    assert jill.status == Status.SENT and jill.name == "Jill Jones"
    assert _scan(MARY) == []


def test_a_copy_sent_during_the_erasure_that_comes_back_to_the_queue_is_skipped_and_blanked(
    roll: School,
) -> None:
    send(roll, mode="sms")
    mary = _mary(roll)
    [her_text] = [d for d in _claim("sms") if d.adult_id == mary.pk]
    adult_erase(adult=mary, actor="cli", confirm_unreachable=True)
    # The gateway was down: back to the queue, and nobody is left to send it to.
    Recorder("w1", "sms").error(her_text, GatewayError("gateway down", retry=True))
    assert Delivery.objects.get(pk=her_text.pk).status == Status.QUEUED
    assert her_text.pk not in {d.pk for d in _claim("sms", "w2")}
    row = Delivery.objects.get(pk=her_text.pk)
    assert (row.status, row.to, row.name) == (Status.SKIPPED, "", "")
    assert row.reason.startswith("opted out")  # our own words stay: they name nobody
    assert _scan(MARY) == []


# --- a copy shared with a co-parent -----------------------------------------------------------------


def _shared_text(school: School) -> Delivery:
    mary = _mary(school)
    Adult.objects.filter(school=school, forename="Dan").update(mobile=mary.mobile)
    amy = school.members.get(mis_id="A1")
    message = send(
        school,
        mode="sms",
        sms_text="Hello {name}",
        audience=Audience(students="chosen", student_ids=(amy.pk,)),
    )
    copy = Delivery.objects.get(message=message)
    assert copy.name == "Mary Smith and Dan Smith"
    return copy


def test_a_queued_copy_shared_with_a_co_parent_goes_to_them_alone(roll: School) -> None:
    copy = _shared_text(roll)
    dan = Adult.objects.get(school=roll, forename="Dan")
    adult_erase(adult=_mary(roll), actor="cli", confirm_unreachable=True)
    copy.refresh_from_db()
    assert (copy.status, copy.name, copy.adult_id, copy.adult_ids) == (
        Status.QUEUED,
        "Dan Smith",
        dan.pk,
        [dan.pk],
    )
    Delivery.objects.filter(status=Status.QUEUED).update(next_attempt_at=timezone.now())
    drain(seconds=5)
    copy.refresh_from_db()
    assert copy.status == Status.SENT and copy.name == "Dan Smith"
    [text] = OutboxMessage.objects.filter(channel="sms")
    assert text.body.startswith("Hello Dan Smith") and "Mary" not in text.body
    assert _scan(("Mary Smith", "mary@example.org")) == []


def test_a_shared_copy_in_a_workers_hands_stops_standing_for_the_erased_adult(
    roll: School,
) -> None:
    copy = _shared_text(roll)
    dan = Adult.objects.get(school=roll, forename="Dan")
    claimed = _claim("sms")
    adult_erase(adult=_mary(roll), actor="cli", confirm_unreachable=True)
    recorder = Recorder("w1", "sms")
    for d in claimed:
        recorder.sent_ok(d, f"id-{d.pk}")
    recorder.flush()
    copy.refresh_from_db()
    # Dan's number (shared) stays: the copy is his too.
    assert (copy.status, copy.name, copy.adult_ids) == (Status.SENT, "Dan Smith", [dan.pk])
    assert copy.to == dan.mobile


# --- the development outbox --------------------------------------------------------------------------


def test_the_development_outbox_forgets_what_was_sent_to_them(roll: School) -> None:
    send(roll, mode="both")
    for _ in range(4):
        Delivery.objects.filter(status=Status.QUEUED).update(next_attempt_at=timezone.now())
        drain(seconds=5)
    mary, jill = _mary(roll), Adult.objects.get(school=roll, forename="Jill")
    # The outbox gateway (SMS here) knows no school.
    assert OutboxMessage.objects.filter(to=mary.mobile, school__isnull=True).exists()
    adult_erase(adult=mary, actor="cli", confirm_unreachable=True)
    assert _scan(MARY) == []
    assert OutboxMessage.objects.filter(to=jill.mobile).count() == 1


# --- uploaded MIS files ----------------------------------------------------------------------------


@pytest.fixture
def media(settings: Any, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    return tmp_path / "media"


def _upload(school: School, admin: Any) -> ImportRun:
    return runs.import_upload(
        school=school, user=admin, upload=SimpleUploadedFile(CTF.name, CTF.read_bytes())
    )


def _files(school: School) -> list[str]:
    folder = school_folder(school.pk)
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_a_waiting_upload_is_named_before_the_erasure_and_a_finished_ones_file_goes(
    roll: School, admin_a: Any, media: Path, django_capture_on_commit_callbacks: Any
) -> None:
    waiting = _upload(roll, admin_a)
    ImportRun.objects.filter(pk=waiting.pk).update(status=ImportRun.Status.PREVIEW)
    # A run that finished but still names its file (a worker stopped before deleting it), and
    # a file nobody names, stored two hours ago.
    finished = _upload(roll, admin_a)
    ImportRun.objects.filter(pk=finished.pk).update(
        status=ImportRun.Status.APPLIED, followed_by=waiting
    )
    stray = school_folder(roll.pk) / "0123abcd.xml"
    stray.write_bytes(b"<CTfile/>")
    two_hours_ago = time.time() - 7200
    os.utime(stray, (two_hours_ago, two_hours_ago))
    assert len(_files(roll)) == 3
    mary = _mary(roll)

    preview = erasure_preview(adult=mary)
    assert preview.uploads_waiting == 1
    with django_capture_on_commit_callbacks(execute=True):
        out = homelink("privacy", "erase", "--school", roll.urn, "--adult", str(mary.pk), "--yes")
    assert "1 MIS file(s) uploaded in the console are still waiting" in out
    office = Client()
    office.force_login(admin_a)
    jill = Adult.objects.get(school=roll, forename="Jill")
    url = reverse("console:adult_erase", kwargs={"urn": roll.urn, "adult_id": jill.pk})
    page = office.get(url).content.decode()
    assert "1 MIS file uploaded here is still waiting to be applied or discarded" in page

    # The command above erased Mary: the finished run's file and the stray went; the waiting
    # preview keeps its file (the office may still apply or discard it).
    assert _files(roll) == [Path(waiting.upload).name]
    finished.refresh_from_db()
    assert finished.upload == ""
    waiting.refresh_from_db()
    assert waiting.upload
