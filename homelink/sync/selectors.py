"""Reads about a school's sync, for the dashboard and the imports page (and the one write
a read may make: the sync's state catching up with an administrator's decision)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.utils import timezone

from homelink.mis.models import ImportRun
from homelink.schools.models import School
from homelink.sync.alerts import SUCCEEDED, stale_before
from homelink.sync.models import SyncSource
from homelink.sync.services import sync_note_decisions


@dataclass(frozen=True)
class SyncStatus:
    #: The school's sync, or None when it has none (imports are by hand only).
    config: SyncSource | None
    #: The last run, manual or scheduled, that brought the register up to date.
    last_import: ImportRun | None
    #: The sync has not succeeded for longer than HOMELINK_SYNC_STALE_HOURS.
    stale: bool

    @property
    def configured(self) -> bool:
        return self.config is not None


def sync_status(school: School, *, now: dt.datetime | None = None) -> SyncStatus:
    now = now or timezone.now()
    config = SyncSource.objects.filter(school=school).first()
    if config is not None and config.attempts and sync_note_decisions(school=school):
        # A decision taken since the sync's failure is shown at once, not at the next sweep.
        config.refresh_from_db()
    last_import = (
        ImportRun.objects.filter(school=school, status__in=SUCCEEDED)
        .exclude(finished_at__isnull=True)
        .order_by("-finished_at", "-pk")
        .first()
    )
    stale = False
    if config is not None:
        # As the alert counts it (alerts.stale_syncs): the sync's own successes, and a file of
        # its source that an administrator applied after the sync had to stop it.
        since = config.last_success_at or config.created_at
        if since < stale_before(now):
            latest = last_import
            if latest is None or latest.source != config.kind:
                latest = (
                    ImportRun.objects.filter(
                        school=school, source=config.kind, status__in=SUCCEEDED
                    )
                    .exclude(finished_at__isnull=True)
                    .order_by("-finished_at")
                    .first()
                )
            stale = (
                latest is None
                or latest.finished_at is None
                or latest.finished_at < stale_before(now)
            )
    return SyncStatus(config=config, last_import=last_import, stale=stale)
