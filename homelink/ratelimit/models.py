from __future__ import annotations

from django.db import models

SCOPE_MAX_LENGTH = 32


class Bucket(models.Model):
    """One counter of attempts by one identity (an address, an account) in one scope.

    The key is a keyed hash of the scope and the identity, so the table never holds an IP address,
    an email or an account in clear; a leaked backup says how many attempts, not by whom. Rows are
    written only by :mod:`homelink.ratelimit.limiter`, one upsert per attempt.
    """

    key = models.CharField(primary_key=True, max_length=64, editable=False)
    scope = models.CharField(max_length=SCOPE_MAX_LENGTH, db_index=True, editable=False)
    # Attempts in the current window, refused ones included: exact, because every attempt is one
    # atomic upsert. Big, because a spray's refused attempts keep counting.
    count = models.BigIntegerField(default=0)
    window_start = models.DateTimeField()
    # When the row stops mattering: the end of the window, or of the lock-out while one holds.
    # The next attempt after it starts a fresh window, and prune() deletes rows past it.
    expires_at = models.DateTimeField(db_index=True)
    locked_until = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField()

    class Meta:
        verbose_name = "rate-limit bucket"

    def __str__(self) -> str:
        return f"{self.scope}: {self.count}"
