from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from homelink.schools.models import School


class ImportRun(models.Model):
    """One import of one file: what was asked, what the plan said, and what happened."""

    class Status(models.TextChoices):
        RUNNING = "running"  # holds the school's import lock
        PREVIEW = "preview"  # a dry run: the plan, nothing written
        APPLIED = "applied"
        STOPPED = "stopped"  # the leavers guard or the school check stopped it
        FAILED = "failed"  # the file could not be read; nothing written
        # The console's imports (homelink.console.tasks): a request waiting for the worker
        # (it holds no lock; ``followed_by`` is the run the worker made of it), and a preview
        # or stopped run whose stored file was deleted without applying it.
        QUEUED = "queued"
        DISCARDED = "discarded"
        # A sync whose source had nothing new (the same file again, or an empty OneRoster
        # delta): nothing read, nothing written.
        UNCHANGED = "unchanged"

    class Source(models.TextChoices):
        """Where the file came from."""

        FILE = "file", "File (command line)"
        UPLOAD = "upload", "Upload"
        FOLDER = "folder", "Drop folder"
        ONEROSTER_API = "oneroster-api", "OneRoster API"

    class Trigger(models.TextChoices):
        MANUAL = "manual", "By hand"
        SCHEDULED = "scheduled", "Scheduled"

    school = models.ForeignKey(School, on_delete=models.CASCADE, related_name="import_runs")
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    started_via = models.CharField(max_length=16, default="cli")
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.FILE)
    trigger = models.CharField(max_length=12, choices=Trigger.choices, default=Trigger.MANUAL)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    file_name = models.CharField(max_length=255)
    digest = models.CharField("SHA-256", max_length=64)
    format = models.CharField(max_length=12)
    options = models.JSONField(default=dict)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.RUNNING)
    summary = models.JSONField(default=dict)
    error = models.TextField(blank=True)
    data_issues = models.JSONField(default=list)
    # Console uploads: the stored file (and CSV mapping), relative to MEDIA_ROOT, kept while the
    # run may still be applied or retried; emptied when the file is deleted.
    upload = models.CharField(max_length=255, blank=True)
    mapping_upload = models.CharField(max_length=255, blank=True)
    # How far the worker has read the file: the fraction (None when the format cannot tell)
    # and the members planned so far; updated at most twice a second while running.
    progress = models.FloatField(null=True, blank=True)
    progress_count = models.PositiveIntegerField(default=0)
    # What carried this run on: for a queued request, the run the worker made of it; for a
    # preview or stopped run, the request to apply it.
    followed_by = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-started_at"]
        constraints = [
            # The school's import lock: two imports of one school never run at once.
            models.UniqueConstraint(
                fields=["school"], condition=Q(status="running"), name="one_running_import"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.file_name} ({self.status})"

    @property
    def duration(self) -> float | None:
        """Seconds from start to finish, once finished."""
        if self.finished_at is None:
            return None
        return max(0.0, (self.finished_at - self.started_at).total_seconds())
