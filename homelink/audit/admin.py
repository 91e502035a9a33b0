from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from homelink.audit.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin[AuditEvent]):
    """Read-only for operators too: the trail is append-only (see AuditEvent). Old events leave
    only through the retention purge."""

    list_display = ("at", "school", "actor_label", "action", "object_type", "object_id")
    list_filter = ("action", "school")
    list_select_related = ("school",)
    readonly_fields = [f.name for f in AuditEvent._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
