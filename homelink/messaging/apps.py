from django.apps import AppConfig


class MessagingConfig(AppConfig):
    name = "homelink.messaging"
    label = "messaging"

    def ready(self) -> None:
        from anymail.signals import tracking

        from homelink.messaging.email_events import email_event_received

        tracking.connect(email_event_received, dispatch_uid="homelink.messaging.email_events")
