from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "homelink.audit"
    label = "audit"
