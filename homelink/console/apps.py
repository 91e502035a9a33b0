from __future__ import annotations

from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    name = "homelink.console"
    label = "console"
    verbose_name = "staff console"

    def ready(self) -> None:
        # The session clock starts at the login itself, not at the first console page seen.
        from homelink.console import signals  # noqa: F401
