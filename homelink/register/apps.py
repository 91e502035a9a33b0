from django.apps import AppConfig


class RegisterConfig(AppConfig):
    name = "homelink.register"
    label = "register"
