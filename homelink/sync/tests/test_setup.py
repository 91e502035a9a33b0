"""Setting up a school's sync: what is refused and why, the secret at rest, and the addresses
homelink will connect to in production."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ValidationError

from homelink.audit.models import AuditEvent
from homelink.schools.models import School
from homelink.sync.addresses import check_host, check_url
from homelink.sync.models import SyncSource
from homelink.sync.secrets import SecretUnreadable, SyncKeyMissing, seal, unseal
from homelink.sync.services import (
    sync_remove,
    sync_set_folder,
    sync_set_oneroster,
)
from homelink.sync.sources import SourceError

URL = "http://127.0.0.1:9/ims/oneroster/v1p1"


@pytest.fixture
def other(db: None) -> School:
    return School.objects.create(urn="100002", name="Other School", la_code="838", estab="4513")


def _errors(excinfo: pytest.ExceptionInfo[ValidationError]) -> dict[str, list[str]]:
    return excinfo.value.message_dict


def test_the_secret_is_stored_sealed_and_never_in_the_audit(school: School) -> None:
    config = sync_set_oneroster(
        school=school, url=URL, client_id="homelink", secret="hunter2-secret", actor_label="test"
    )
    assert "hunter2" not in config.secret
    assert unseal(config.secret) == "hunter2-secret"
    details = [str(e.detail) for e in AuditEvent.objects.filter(school=school)]
    assert details and not any("hunter2" in d for d in details)


def test_the_stored_secret_is_kept_only_while_server_and_client_stay_the_same(
    school: School,
) -> None:
    sync_set_oneroster(school=school, url=URL, client_id="homelink", secret="s1", actor_label="t")
    kept = sync_set_oneroster(
        school=school, url=URL, client_id="homelink", secret="", at=dt.time(4), actor_label="t"
    )
    assert unseal(kept.secret) == "s1" and kept.at == dt.time(4)
    # Someone pointing the sync at another server must type the secret: the stored one is not
    # sent to a server of their choosing.
    with pytest.raises(ValidationError) as excinfo:
        sync_set_oneroster(
            school=school,
            url="http://127.0.0.1:8/ims/oneroster/v1p1",
            client_id="homelink",
            secret="",
            actor_label="t",
        )
    assert "secret" in _errors(excinfo)
    with pytest.raises(ValidationError):
        sync_set_oneroster(school=school, url=URL, client_id="other", secret=None, actor_label="t")
    assert SyncSource.objects.get(school=school).client_id == "homelink"


def test_a_first_oneroster_sync_needs_its_secret_and_client_id(school: School) -> None:
    with pytest.raises(ValidationError) as excinfo:
        sync_set_oneroster(school=school, url=URL, client_id="x", secret="", actor_label="t")
    assert "secret" in _errors(excinfo)
    with pytest.raises(ValidationError) as excinfo:
        sync_set_oneroster(school=school, url=URL, client_id=" ", secret="s", actor_label="t")
    assert "client_id" in _errors(excinfo)
    assert not SyncSource.objects.exists()


def test_without_a_key_production_refuses_to_store_a_secret(school: School, settings: Any) -> None:
    settings.HOMELINK_DEV = False
    settings.HOMELINK_SYNC_KEYS = []
    with pytest.raises(SyncKeyMissing):
        seal("s")
    with pytest.raises(ValidationError) as excinfo:
        sync_set_oneroster(school=school, url=URL, client_id="x", secret="s", actor_label="t")
    assert "HOMELINK_SYNC_KEY is not set" in _errors(excinfo)["secret"][0]
    assert not SyncSource.objects.exists()


def test_keys_rotate_and_a_lost_key_says_to_enter_the_secret_again(settings: Any) -> None:
    from cryptography.fernet import Fernet

    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.HOMELINK_SYNC_KEYS = [old]
    sealed = seal("s3")
    settings.HOMELINK_SYNC_KEYS = [new, old]
    assert unseal(sealed) == "s3"
    settings.HOMELINK_SYNC_KEYS = [new]
    with pytest.raises(SecretUnreadable, match="enter the secret again"):
        unseal(sealed)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://mis.example.org/ims/oneroster/v1p1", "https://"),
        ("ftp://mis.example.org/", "https://"),
        ("https://user:pw@mis.example.org/ims/oneroster/v1p1", "user name and password"),
        ("https://mis.example.org/ims/oneroster/v1p1?x=1", "without ? or #"),
        ("https://127.0.0.1/ims/oneroster/v1p1", "private address"),
        ("https://169.254.169.254/latest/meta-data", "private address"),
        ("https://[::1]/ims/oneroster/v1p1", "private address"),
        ("https://10.1.2.3/ims", "private address"),
        ("https://localhost/ims", "private address"),
    ],
)
def test_production_connects_only_to_public_https_servers(
    settings: Any, url: str, says: str
) -> None:
    settings.HOMELINK_SYNC_ALLOW_PRIVATE = False
    with pytest.raises(ValidationError) as excinfo:
        check_url(url)
    assert says in _errors(excinfo)["url"][0]


def test_a_name_that_later_resolves_privately_is_refused_at_connect_time(settings: Any) -> None:
    settings.HOMELINK_SYNC_ALLOW_PRIVATE = False
    with pytest.raises(SourceError, match="private address"):
        check_host("localhost")
    settings.HOMELINK_SYNC_ALLOW_PRIVATE = True
    check_host("localhost")  # the demo and the tests' fake server


def test_a_drop_folder_must_be_the_schools_own(
    school: School, other: School, settings: Any, tmp_path: Path
) -> None:
    settings.HOMELINK_SYNC_ROOT = tmp_path / "sync"
    ours = sync_set_folder(school=school, actor_label="t")
    for folder in (Path(ours.folder), Path(ours.folder) / "inside", tmp_path / "sync"):
        with pytest.raises(ValidationError) as excinfo:
            sync_set_folder(school=other, folder=folder, actor_label="t")
        assert "another school's drop folder" in _errors(excinfo)["folder"][0]
    with pytest.raises(ValidationError):
        sync_set_folder(school=other, folder="relative/path", actor_label="t")
    assert sync_set_folder(school=other, actor_label="t").folder.endswith("/100002")


def test_changing_the_source_starts_afresh_and_removing_keeps_the_history(
    school: School, settings: Any, tmp_path: Path
) -> None:
    settings.HOMELINK_SYNC_ROOT = tmp_path / "sync"
    config = sync_set_oneroster(
        school=school, url=URL, client_id="homelink", secret="s", actor_label="t"
    )
    SyncSource.objects.filter(pk=config.pk).update(cursor="2026-12-01T00:00:00Z", attempts=2)
    config = sync_set_folder(school=school, actor_label="t")
    assert (config.kind, config.cursor, config.attempts, config.secret) == ("folder", "", 0, "")
    assert sync_remove(school=school, actor_label="t")
    assert not sync_remove(school=school, actor_label="t")
    actions = list(
        AuditEvent.objects.filter(school=school).order_by("pk").values_list("action", flat=True)
    )
    assert actions == ["sync.set", "sync.set", "sync.removed"]


def test_check_deploy_names_what_the_sync_leaves_unsafe(settings: Any) -> None:
    from cryptography.fernet import Fernet

    from homelink.checks import check_sync

    settings.HOMELINK_SYNC_ALLOW_PRIVATE = True
    settings.HOMELINK_SYNC_KEYS = []
    assert {c.id for c in check_sync()} == {"homelink.E006", "homelink.W108"}
    settings.HOMELINK_SYNC_ALLOW_PRIVATE = False
    settings.HOMELINK_SYNC_KEYS = ["not-a-key"]
    assert {c.id for c in check_sync()} == {"homelink.E007"}
    settings.HOMELINK_SYNC_KEYS = [Fernet.generate_key().decode()]
    assert check_sync() == []
