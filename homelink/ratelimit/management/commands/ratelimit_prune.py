"""``homelink ratelimit_prune``: delete rate-limit buckets that no longer limit anything (cron)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from homelink.ratelimit.limiter import prune


class Command(BaseCommand):
    help = "Delete rate-limit buckets whose window and lock-out are over. Safe to run any time."

    def handle(self, *args: Any, **options: Any) -> None:
        deleted = prune()
        self.stdout.write(f"deleted {deleted} expired rate-limit bucket(s)")
