from django.apps import AppConfig


class SchoolsConfig(AppConfig):
    name = "homelink.schools"
    label = "schools"
