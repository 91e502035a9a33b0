from django.apps import AppConfig


class SchoolsConfig(AppConfig):
    name = "homelink.schools"
    label = "schools"

    def ready(self) -> None:
        # The install-wide deploy checks live with the first of homelink's apps.
        from homelink import checks

        checks.register()
