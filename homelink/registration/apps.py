from typing import Any

from django.apps import AppConfig


class RegistrationConfig(AppConfig):
    name = "homelink.registration"
    label = "registration"

    def ready(self) -> None:
        from homelink.ratelimit.signals import budget_exceeded

        budget_exceeded.connect(_alert_operators, dispatch_uid="registration-budget-alert")


def _alert_operators(
    sender: Any, *, scope: str, count: int, per_minute: int, **kwargs: Any
) -> None:
    """Tell the site's operators (settings.ADMINS) that guessing is under way: numbers only."""
    from django.core.mail import mail_admins

    mail_admins(
        subject=f"Over the attempt budget: {scope}",
        message=(
            f"{count} attempts in one minute on {scope}, over the budget of {per_minute}. "
            "Attempts are being slowed; no one is locked out. Check the web server's access log."
        ),
        fail_silently=True,
    )
