from __future__ import annotations

from django.apps import AppConfig


class StaffConfig(AppConfig):
    name = "homelink.staff"
    label = "staff"
    verbose_name = "school staff"

    def ready(self) -> None:
        # The session clock starts at the login itself, not at the first console page seen.
        from homelink.staff import signals  # noqa: F401
