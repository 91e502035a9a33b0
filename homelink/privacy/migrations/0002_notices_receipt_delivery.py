# Issue 13, notices: a receipt of a notice sent by email or SMS points at the copy that carried
# it, whose status says whether and when it went. After erasure's 0002, so the chain stays one
# line (no merge needed while both are in flight).

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("messaging", "0006_notices_message_kind"),
        ("privacy", "0002_erasure_tombstone_group"),
    ]

    operations = [
        migrations.AddField(
            model_name="noticereceipt",
            name="delivery",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="messaging.delivery",
            ),
        ),
    ]
