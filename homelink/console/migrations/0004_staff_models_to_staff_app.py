"""StaffMembership and StaffInvitation now belong to homelink.staff (staff/migrations/0001).

Forgotten here in Django's migration state only: the tables (``console_staffmembership``,
``console_staffinvitation``) and their rows stay exactly as they are, and the staff app's
models name them in ``Meta.db_table``. ``sqlmigrate console 0004`` prints no SQL.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("console", "0003_staff_emails_confirmed"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name="StaffInvitation"),
                migrations.DeleteModel(name="StaffMembership"),
            ],
            database_operations=[],
        ),
    ]
