from __future__ import annotations

from django.apps import AppConfig


class TrustsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "homelink.trusts"
    verbose_name = "multi-academy trusts"
