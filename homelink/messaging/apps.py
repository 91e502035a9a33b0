from django.apps import AppConfig


class MessagingConfig(AppConfig):
    name = "homelink.messaging"
    label = "messaging"
