"""Trusts in the operators' admin: to look at, and to change or end a trust staff member's role
(the rescue when a trust has lost its administrators' access). Trusts and their schools are
made and changed with ``homelink trust``, and a trust role is given only by an invitation its
mailbox's owner accepts (``homelink trust invite``): none of that is done here, so every change
goes through the services and into the schools' audit trails."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest

from homelink.trusts.models import Trust, TrustInvitation, TrustMembership, TrustSchool
from homelink.trusts.services import trust_member_remove, trust_member_set_role


class _ReadOnly:
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class TrustSchoolInline(_ReadOnly, admin.TabularInline[TrustSchool, Trust]):
    model = TrustSchool
    fields = readonly_fields = ("school", "org_sourced_id", "added_at")
    extra = 0


@admin.register(Trust)
class TrustAdmin(_ReadOnly, admin.ModelAdmin[Trust]):
    list_display = ["name", "sms_credits", "created_at"]
    search_fields = ["name", "places__school__name", "places__school__urn"]
    fields = readonly_fields = ("name", "sms_credits", "created_at")
    inlines = [TrustSchoolInline]


@admin.register(TrustMembership)
class TrustMembershipAdmin(admin.ModelAdmin[TrustMembership]):
    """Change a trust role, or end one, through the services (audited in every school of the
    trust; a trust keeps an administrator). Nobody is given a role here."""

    list_display = ["user", "trust", "role", "created_at"]
    list_filter = ["role", "trust"]
    search_fields = ["user__email", "user__username", "trust__name"]
    readonly_fields = ["user", "trust", "created_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def save_model(
        self, request: HttpRequest, obj: TrustMembership, form: Any, change: bool
    ) -> None:
        try:
            trust_member_set_role(membership=obj, role=obj.role, actor=request.user)
        except ValidationError as error:
            self._refused(request, error)

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        for obj in queryset:
            self.delete_model(request, obj)

    def delete_model(self, request: HttpRequest, obj: TrustMembership) -> None:
        try:
            trust_member_remove(membership=obj, actor=request.user)
        except ValidationError as error:
            self._refused(request, error)

    def _refused(self, request: HttpRequest, error: ValidationError) -> None:
        # Nothing was changed (the trust's only administrator stays one).
        self.message_user(request, "; ".join(error.messages), level=messages.ERROR)


@admin.register(TrustInvitation)
class TrustInvitationAdmin(_ReadOnly, admin.ModelAdmin[TrustInvitation]):
    """To look at; never the token's hash."""

    list_display = ["email", "trust", "role", "sent_at", "expires_at", "accepted_at", "revoked_at"]
    list_filter = ["role", "trust"]
    search_fields = ["email", "trust__name"]
    fields = readonly_fields = (
        "trust",
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
