from __future__ import annotations

from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    """The school office's pages: views, forms, templates and URL maps over the domain apps
    (staff identity and the second factor are in homelink.staff)."""

    name = "homelink.console"
    label = "console"
    verbose_name = "staff console"
