# A CTF <Order> above 32,767 overflowed the smallint column on PostgreSQL: an integer now.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("register", "0004_adult_search_indexes"),
    ]

    operations = [
        migrations.AlterField(
            model_name="link",
            name="priority",
            field=models.PositiveIntegerField(blank=True, null=True),
        ),
    ]
