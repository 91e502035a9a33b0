from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from homelink.audit.services import audit_record
from homelink.console.models import StaffMembership


@admin.register(StaffMembership)
class StaffMembershipAdmin(admin.ModelAdmin[StaffMembership]):
    """For the site operator: a school's first administrator (or a rescue when a school has
    lost its last one). Changes here are audited like the console's own."""

    list_display = ["user", "school", "role", "created_at"]
    list_filter = ["role", "school"]
    search_fields = ["user__email", "user__username", "school__name", "school__urn"]
    autocomplete_fields = ["user"]
    raw_id_fields = ["school"]

    def save_model(
        self, request: HttpRequest, obj: StaffMembership, form: Any, change: bool
    ) -> None:
        super().save_model(request, obj, form, change)
        audit_record(
            school=obj.school,
            actor_label=f"admin:{request.user.pk}",
            actor_id=request.user.pk,
            action="staff.role_changed" if change else "staff.added",
            obj=obj,
            detail={"role": obj.role, "user_id": obj.user_id, "via": "admin"},
        )

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        for obj in queryset:
            self.delete_model(request, obj)

    def delete_model(self, request: HttpRequest, obj: StaffMembership) -> None:
        audit_record(
            school=obj.school,
            actor_label=f"admin:{request.user.pk}",
            actor_id=request.user.pk,
            action="staff.removed",
            obj=obj,
            detail={"role": obj.role, "user_id": obj.user_id, "via": "admin"},
        )
        super().delete_model(request, obj)
