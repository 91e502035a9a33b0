"""The content types of the moved models follow them (``console`` → ``staff``), so that the
admin's history of changes to them and any permission given on them keep pointing at them.
Data only: on a new database there are no content types yet (Django makes them after
migrating), and nothing happens."""

from typing import Any

from django.db import migrations

MODELS = ("staffmembership", "staffinvitation")


def _move(apps: Any, source: str, target: str) -> None:
    ContentType = apps.get_model("contenttypes", "ContentType")
    for model in MODELS:
        if ContentType.objects.filter(app_label=target, model=model).exists():
            continue  # already made for the new label (left as it is)
        ContentType.objects.filter(app_label=source, model=model).update(app_label=target)


def forwards(apps: Any, schema_editor: Any) -> None:
    _move(apps, "console", "staff")


def backwards(apps: Any, schema_editor: Any) -> None:
    _move(apps, "staff", "console")


class Migration(migrations.Migration):
    dependencies = [
        ("staff", "0001_initial"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
