"""The staff models moved from the console to this app in Django's state only: an existing
database keeps its tables, rows, content types and the permissions given on them."""

from __future__ import annotations

import importlib
import io

import pytest
from django.apps import apps
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command

from homelink.staff.models import StaffInvitation, StaffMembership

pytestmark = pytest.mark.django_db


# sqlmigrate opens a schema editor, which SQLite refuses inside a test's transaction.
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("app", "migration"),
    [("console", "0004_staff_models_to_staff_app"), ("staff", "0001_initial")],
)
def test_the_move_issues_no_sql(app: str, migration: str) -> None:
    out = io.StringIO()
    call_command("sqlmigrate", app, migration, stdout=out)
    statements = [
        line
        for line in out.getvalue().splitlines()
        if line.strip() and not line.startswith("--") and line not in ("BEGIN;", "COMMIT;")
    ]
    assert statements == []


def test_the_models_keep_the_consoles_tables() -> None:
    assert StaffMembership._meta.db_table == "console_staffmembership"
    assert StaffInvitation._meta.db_table == "console_staffinvitation"


def test_the_content_types_follow_the_models() -> None:
    migration = importlib.import_module("homelink.staff.migrations.0002_content_types")
    ContentType.objects.filter(app_label="staff").delete()
    old = ContentType.objects.create(app_label="console", model="staffmembership")
    try:
        migration.forwards(apps, None)
        old.refresh_from_db()
        assert old.app_label == "staff"
        # Already there for the new label (Django made it): the old one is left alone.
        stale = ContentType.objects.create(app_label="console", model="staffmembership")
        migration.forwards(apps, None)
        stale.refresh_from_db()
        assert stale.app_label == "console"
    finally:
        ContentType.objects.clear_cache()
