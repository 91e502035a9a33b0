"""StaffMembership and StaffInvitation, moved here from the console (console/migrations/0004).

Created in Django's migration state only: their tables were made by the console's migrations
0001 and 0002 and keep those names (``Meta.db_table``), so migrating an existing database
changes nothing in its schema or rows, and a new database gets the tables from the console's
migrations. ``sqlmigrate staff 0001`` prints no SQL.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        # The console forgets the models first, so that no state has them twice.
        ("console", "0004_staff_models_to_staff_app"),
        ("schools", "0004_office_phone_and_logo"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="StaffInvitation",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("email", models.CharField(max_length=254)),
                        (
                            "role",
                            models.CharField(
                                choices=[
                                    ("administrator", "Administrator"),
                                    ("sender", "Sender"),
                                    ("viewer", "Viewer"),
                                ],
                                max_length=16,
                            ),
                        ),
                        ("token_hash", models.CharField(max_length=64, unique=True)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        ("sent_at", models.DateTimeField()),
                        ("expires_at", models.DateTimeField()),
                        ("accepted_at", models.DateTimeField(blank=True, null=True)),
                        ("revoked_at", models.DateTimeField(blank=True, null=True)),
                        (
                            "accepted_by",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                        (
                            "invited_by",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                        (
                            "school",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="staff_invitations",
                                to="schools.school",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "console_staffinvitation",
                        "ordering": ["school__name", "email"],
                        "constraints": [
                            models.UniqueConstraint(
                                condition=models.Q(
                                    ("accepted_at__isnull", True), ("revoked_at__isnull", True)
                                ),
                                fields=("school", "email"),
                                name="staff_invitation_open_once",
                            )
                        ],
                    },
                ),
                migrations.CreateModel(
                    name="StaffMembership",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        (
                            "role",
                            models.CharField(
                                choices=[
                                    ("administrator", "Administrator"),
                                    ("sender", "Sender"),
                                    ("viewer", "Viewer"),
                                ],
                                max_length=16,
                            ),
                        ),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        (
                            "school",
                            models.ForeignKey(
                                db_index=False,
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="staff_memberships",
                                to="schools.school",
                            ),
                        ),
                        (
                            "user",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="staff_memberships",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={
                        "db_table": "console_staffmembership",
                        "ordering": ["school__name", "user__email"],
                        "constraints": [
                            models.UniqueConstraint(
                                fields=("school", "user"), name="staff_membership_once"
                            )
                        ],
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
