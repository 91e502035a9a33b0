"""The import task moved from ``homelink.console.imports.tasks`` to ``homelink.mis.tasks``: the
console holds only pages, and the import asked for in the browser belongs to the MIS import.
django-tasks keeps each task's import path in its queue, so an import queued before the upgrade
would fail to load in an upgraded worker: its row is pointed at the new path. Data only: no
schema change. (A row still on the path before 0005 has been pointed here by 0005.)"""

from typing import Any

from django.db import migrations

OLD = "homelink.console.imports.tasks.run_console_import"
NEW = "homelink.mis.tasks.run_console_import"


def _repoint(apps: Any, old: str, new: str) -> None:
    Result = apps.get_model("django_tasks_database", "DBTaskResult")
    Result.objects.filter(task_path=old).update(task_path=new)


def forwards(apps: Any, schema_editor: Any) -> None:
    _repoint(apps, OLD, NEW)


def backwards(apps: Any, schema_editor: Any) -> None:
    _repoint(apps, NEW, OLD)


class Migration(migrations.Migration):
    dependencies = [
        ("console", "0005_import_task_path"),
        ("django_tasks_database", "0001_initial"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
