from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from homelink.audit.services import audit_record
from homelink.staff.models import StaffInvitation, StaffMembership


@admin.register(StaffMembership)
class StaffMembershipAdmin(admin.ModelAdmin[StaffMembership]):
    """For the site operator: change a role, or remove one. Changes here are audited like the
    console's own. Nobody is given a role here: a role reaches an account only through an
    invitation its mailbox's owner accepts (``homelink staff add`` for a school's first
    administrator, or a rescue when a school has lost its last one)."""

    list_display = ["user", "school", "role", "created_at"]
    list_filter = ["role", "school"]
    search_fields = ["user__email", "user__username", "school__name", "school__urn"]
    readonly_fields = ["user", "school", "created_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

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


@admin.register(StaffInvitation)
class StaffInvitationAdmin(admin.ModelAdmin[StaffInvitation]):
    """Invitations, for the operator to look at; ``homelink staff resend`` or ``revoke`` (or
    the school's Staff page) act on them. Never the token's hash, and nothing editable."""

    list_display = ["email", "school", "role", "sent_at", "expires_at", "accepted_at", "revoked_at"]
    list_filter = ["role", "school"]
    search_fields = ["email", "school__name", "school__urn"]
    fields = readonly_fields = (
        "school",
        "email",
        "role",
        "invited_by",
        "created_at",
        "sent_at",
        "expires_at",
        "accepted_at",
        "accepted_by",
        "revoked_at",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
