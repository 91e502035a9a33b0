from django.apps import AppConfig


class MisConfig(AppConfig):
    name = "homelink.mis"
    label = "mis"
