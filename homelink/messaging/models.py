from __future__ import annotations

from django.db import models

from homelink.schools.models import School


class OutboxMessage(models.Model):
    """A message the local development outbox kept instead of sending it (the demo, tests and
    development never reach a phone network or a mailbox)."""

    class Channel(models.TextChoices):
        SMS = "sms"
        EMAIL = "email"

    school = models.ForeignKey(School, null=True, blank=True, on_delete=models.CASCADE)
    channel = models.CharField(max_length=5, choices=Channel.choices)
    to = models.CharField(max_length=254)
    sender = models.CharField(max_length=254, blank=True)
    subject = models.CharField(max_length=255, blank=True)
    body = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.channel} {self.pk}"
