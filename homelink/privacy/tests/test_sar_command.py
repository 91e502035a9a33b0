"""``homelink privacy sar``: end to end through call_command, as the school office runs it."""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from homelink.audit.models import AuditEvent
from homelink.privacy.models import SubjectAccessRequest
from homelink.privacy.tests.sar_world import (
    CORA,
    PAT_EMAIL,
    STAN,
    Family,
    build_family,
    export_json,
    leaks,
    zip_files,
)
from homelink.schools.models import School


@pytest.fixture
def family(school: School) -> Family:
    return build_family(school)


def _sar(*args: str) -> str:
    out = io.StringIO()
    call_command("privacy", "sar", *args, stdout=out)
    return out.getvalue()


def _adult_id_from_export(school: School, email: str) -> int:
    """The adult_id ``homelink export`` prints for the adult with this email."""
    out = io.StringIO()
    call_command("export", "--school", school.urn, "--json", stdout=out)
    ids = {
        contact["adult_id"]
        for member in json.loads(out.getvalue())["members"]
        for contact in member["links"]
        if contact["email"] == email
    }
    assert len(ids) == 1, ids
    return ids.pop()


def test_an_adult_by_the_id_export_prints(family: Family, tmp_path: Path) -> None:
    adult_id = _adult_id_from_export(family.school, PAT_EMAIL)
    assert adult_id == family.pat.pk
    out = tmp_path / "pat.zip"
    said = _sar("--school", family.school.urn, "--adult", str(adult_id), "--out", str(out))
    assert str(out) in said and "due" in said
    content = out.read_bytes()
    assert sorted(zip_files(content)) == ["subject.json", "subject.pdf"]
    assert export_json(content)["subject"]["email"] == PAT_EMAIL
    assert leaks(content, CORA) == [] and leaks(content, STAN) == []
    # Nothing left beside it: the temporary file was renamed into place.
    assert [p.name for p in tmp_path.iterdir()] == ["pat.zip"]
    request = SubjectAccessRequest.objects.get()
    assert (request.adult_id, request.member_id) == (family.pat.pk, None)
    assert request.completed_at is None
    downloaded = AuditEvent.objects.get(action="privacy.sar_downloaded")
    assert (downloaded.object_type, downloaded.object_id) == ("adult", str(family.pat.pk))
    assert downloaded.actor_label == "cli"
    assert downloaded.detail["request_id"] == request.pk


def test_a_member_by_mis_id_with_the_date_received(family: Family, tmp_path: Path) -> None:
    out = tmp_path / "ada.zip"
    _sar(
        "--school",
        family.school.urn,
        "--member",
        family.ada.mis_id,
        "--out",
        str(out),
        "--received",
        "2024-01-31",
    )
    assert export_json(out.read_bytes())["subject"]["mis_id"] == family.ada.mis_id
    request = SubjectAccessRequest.objects.get()
    assert request.member_id == family.ada.pk
    assert (request.received_on, request.due_on) == (dt.date(2024, 1, 31), dt.date(2024, 2, 29))


def test_an_existing_file_is_kept_unless_told(family: Family, tmp_path: Path) -> None:
    out = tmp_path / "pat.zip"
    out.write_bytes(b"the school's own file")
    args = ("--school", family.school.urn, "--adult", str(family.pat.pk), "--out", str(out))
    with pytest.raises(CommandError, match="exists already"):
        _sar(*args)
    assert out.read_bytes() == b"the school's own file"
    assert not SubjectAccessRequest.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="privacy.sar").exists()
    _sar(*args, "--overwrite")
    assert zip_files(out.read_bytes())


@pytest.mark.parametrize(
    "who",
    [("--adult", "999999"), ("--member", "NO-SUCH-UPN")],
)
def test_nobody_by_that_id_is_refused_and_nothing_logged(
    family: Family, tmp_path: Path, who: tuple[str, str]
) -> None:
    out = tmp_path / "x.zip"
    with pytest.raises(CommandError, match="No "):
        _sar("--school", family.school.urn, *who, "--out", str(out))
    assert not out.exists()
    assert not SubjectAccessRequest.objects.exists()


def test_another_schools_adult_is_not_found(family: Family, tmp_path: Path) -> None:
    other = School.objects.create(urn="100002", name="Other", la_code="838", estab="2001")
    with pytest.raises(CommandError, match="No adult"):
        _sar("--school", other.urn, "--adult", str(family.pat.pk), "--out", str(tmp_path / "x"))
    assert not SubjectAccessRequest.objects.exists()


def test_bad_input_is_refused_clearly(family: Family, tmp_path: Path) -> None:
    base = ("--school", family.school.urn, "--adult", str(family.pat.pk))
    with pytest.raises(CommandError, match="YYYY-MM-DD"):
        _sar(*base, "--out", str(tmp_path / "x.zip"), "--received", "31/01/2024")
    with pytest.raises(CommandError, match="future"):
        _sar(*base, "--out", str(tmp_path / "x.zip"), "--received", "2999-01-01")
    with pytest.raises(CommandError, match="not a folder"):
        _sar(*base, "--out", str(tmp_path / "missing" / "x.zip"))
    with pytest.raises(CommandError, match="no school"):
        _sar("--school", "999999", "--adult", "1", "--out", str(tmp_path / "x.zip"))
    assert not SubjectAccessRequest.objects.exists()
    assert list(tmp_path.iterdir()) == []


def test_a_file_that_cannot_be_written_leaves_no_record(family: Family, tmp_path: Path) -> None:
    # A folder where the zip should go: the rename into place fails, even for root.
    taken = tmp_path / "taken.zip"
    taken.mkdir()
    with pytest.raises(CommandError, match="could not write"):
        _sar(
            "--school",
            family.school.urn,
            "--adult",
            str(family.pat.pk),
            "--out",
            str(taken),
            "--overwrite",
        )
    assert taken.is_dir() and list(taken.iterdir()) == []
    assert [p.name for p in tmp_path.iterdir()] == ["taken.zip"], "the temporary file is gone"
    assert not SubjectAccessRequest.objects.exists()
    assert not AuditEvent.objects.filter(action="privacy.sar_downloaded").exists()
