from __future__ import annotations

from django.apps import AppConfig


class PrivacyConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "homelink.privacy"
    verbose_name = "data protection"
