"""A school's scheduled sync: where its MIS data comes from, when, and how the last runs went.

The runs themselves are :class:`~homelink.mis.models.ImportRun` rows (``source`` and
``trigger`` say they came from here): one import history, whatever started the import.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import models

from homelink.mis.models import ImportRun
from homelink.schools.models import School

DEFAULT_AT = dt.time(2, 0)
#: ``ImportRun.started_via`` of the runs a sync makes itself (an administrator's decision on a
#: file it stopped is started via the console).
VIA = "sync"


class SyncSource(models.Model):
    class Kind(models.TextChoices):
        FOLDER = ImportRun.Source.FOLDER.value, "Drop folder"
        ONEROSTER = ImportRun.Source.ONEROSTER_API.value, "OneRoster API"

    school = models.OneToOneField(School, on_delete=models.CASCADE, related_name="sync")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # Drop folder: an absolute path on the server.
    folder = models.CharField(max_length=500, blank=True)
    # OneRoster API: the service's base URL (…/ims/oneroster/v1p1 or …/rostering/v1p2), the
    # OAuth 2.0 token URL, the client id, and the client secret sealed with HOMELINK_SYNC_KEY
    # (homelink/sync/secrets.py). The secret is never shown again once entered.
    url = models.CharField(max_length=500, blank=True)
    token_url = models.CharField(max_length=500, blank=True)
    client_id = models.CharField(max_length=255, blank=True)
    secret = models.TextField(blank=True)
    # Every day at this local time (settings.TIME_ZONE).
    at = models.TimeField(default=DEFAULT_AT)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )

    # The schedule's state. ``next_due_at`` is also the claim: a worker takes a due sync by
    # moving it forward in a conditional UPDATE, so only one of several workers runs it.
    next_due_at = models.DateTimeField(null=True, blank=True, db_index=True)
    #: Failed attempts since the last success, by hand or scheduled (what the console shows).
    attempts = models.PositiveSmallIntegerField(default=0)
    #: Retries of the current scheduled night used so far: a scheduled failure that may pass is
    #: tried again an hour later, at most RETRIES times a night (runs by hand are not counted).
    retries = models.PositiveSmallIntegerField(default=0)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    #: The last run that brought the register up to date (applied, or found nothing new).
    last_success_at = models.DateTimeField(null=True, blank=True)
    #: The last full (not delta) OneRoster sync that succeeded: a delta follows it for a week.
    last_full_at = models.DateTimeField(null=True, blank=True)
    #: OneRoster: where the next delta starts (an ISO 8601 time in the server's terms).
    cursor = models.CharField(max_length=64, blank=True)
    #: SHA-256 of the last file applied: the same file again is "no changes".
    last_digest = models.CharField(max_length=64, blank=True)
    #: Why the last attempt did not succeed, in plain English ("" once one succeeds).
    last_error = models.TextField(blank=True)
    #: When the administrators were told the sync is stale (once, until it succeeds again).
    alerted_at = models.DateTimeField(null=True, blank=True)

    # The lease: one run of the school's sync at a time, whatever started it. A run takes it
    # with a conditional UPDATE (free, or held longer than HOMELINK_IMPORT_LOCK_SECONDS by a
    # run that must have died) and gives it back when it ends; the token says whose it is.
    running_since = models.DateTimeField(null=True, blank=True)
    lease_token = models.CharField(max_length=32, blank=True)
    #: Moves on each time the source changes (another folder, server or client id): a run that
    #: began on the old source never writes its state (cursor, digest, success) onto the new.
    generation = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.get_kind_display()} for {self.school_id}"

    @property
    def where(self) -> str:
        """The source as the history and the dashboard name it (never the secret)."""
        return self.folder if self.kind == self.Kind.FOLDER else self.url


class TakenFolder(models.Model):
    """A drop folder a school's sync has used. Its ``done/`` and ``failed/`` keep whole MIS
    exports, under retention and erasure (homelink/sync/taken.py) for as long as they hold any,
    after the sync was moved to another folder or source, or removed: a folder is forgotten
    only once nothing of the school's is left in it."""

    school = models.ForeignKey(School, on_delete=models.CASCADE, related_name="taken_folders")
    folder = models.CharField(max_length=500)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["school", "folder"], name="one_taken_folder_row")
        ]

    def __str__(self) -> str:
        return f"{self.folder} (school {self.school_id})"
