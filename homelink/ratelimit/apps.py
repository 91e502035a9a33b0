from typing import Any

from django.apps import AppConfig
from django.core import checks


class RatelimitConfig(AppConfig):
    name = "homelink.ratelimit"
    label = "ratelimit"

    def ready(self) -> None:
        checks.register(check_trusted_proxies, checks.Tags.security, deploy=True)


def check_trusted_proxies(**kwargs: Any) -> list[checks.CheckMessage]:
    """Behind a reverse proxy every request comes from the proxy: without trusting it, every
    visitor shares one address's limits, and one attacker locks everyone out."""
    from django.conf import settings

    if getattr(settings, "HOMELINK_TRUSTED_PROXIES", None):
        return []
    return [
        checks.Warning(
            "HOMELINK_TRUSTED_PROXIES is empty: behind a reverse proxy, every visitor shares the "
            "proxy's rate limits.",
            hint="Set HOMELINK_TRUSTED_PROXIES to the proxy's address (127.0.0.1 for a local nginx).",
            id="homelink.W001",
        )
    ]
