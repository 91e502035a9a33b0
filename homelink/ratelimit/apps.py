from django.apps import AppConfig


class RatelimitConfig(AppConfig):
    name = "homelink.ratelimit"
    label = "ratelimit"
