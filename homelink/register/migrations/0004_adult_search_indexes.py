# The console's search finds a parent by their mobile or email: equality lookups within a school.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("register", "0003_pendinglink_relationship"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="adult",
            index=models.Index(fields=["school", "mobile"], name="adult_school_mobile"),
        ),
        migrations.AddIndex(
            model_name="adult",
            index=models.Index(fields=["school", "email"], name="adult_school_email"),
        ),
    ]
