"""Fixtures for the sync tests: a fake OneRoster server on 127.0.0.1 (homelink/sync/testing.py)
and a school's OneRoster sync pointed at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from homelink.schools.models import School
from homelink.sync.models import SyncSource
from homelink.sync.secrets import seal
from homelink.sync.testing import FakeOneRoster

MakeOneRosterSync = Callable[..., SyncSource]


@pytest.fixture
def fake_oneroster() -> Iterator[FakeOneRoster]:
    """A started fake OneRoster 1.1 server with no data (fill its lists, or ``add_school``)."""
    with FakeOneRoster() as fake:
        yield fake


@pytest.fixture
def oneroster_sync(db: None) -> MakeOneRosterSync:
    """``oneroster_sync(school, fake, **fields)``: the school's OneRoster sync, pointed at the
    fake with its client id and (sealed) secret; ``fields`` override any of it."""

    def make(school: School, fake: FakeOneRoster, **fields: Any) -> SyncSource:
        values: dict[str, Any] = {
            "kind": SyncSource.Kind.ONEROSTER,
            "url": fake.url,
            "token_url": fake.token_url,
            "client_id": fake.client_id,
            "secret": seal(fake.client_secret),
        }
        values.update(fields)
        config, _ = SyncSource.objects.update_or_create(school=school, defaults=values)
        return config

    return make
