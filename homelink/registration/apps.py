from django.apps import AppConfig


class RegistrationConfig(AppConfig):
    name = "homelink.registration"
    label = "registration"
