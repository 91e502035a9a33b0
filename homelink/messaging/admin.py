"""Operators' view of the outbox: what was sent, what is stuck, which numbers said STOP.

Messages and deliveries are read-only here: a send is made and cancelled through the services
(console or ``homelink send``), which keep the credits and the audit trail right."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from homelink.messaging.models import (
    Delivery,
    GatewayHealth,
    InboundSms,
    Message,
    SmsBlock,
    Template,
)


class ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Deleting a message would take its deliveries and its credits' story with it.
        return False


@admin.register(Message)
class MessageAdmin(ReadOnly):
    list_display = (
        "id",
        "school",
        "audience_label",
        "mode",
        "status",
        "urgent",
        "sms_count",
        "email_count",
        "credits_charged",
        "send_at",
    )
    list_filter = ("school", "status", "mode", "urgent")
    list_select_related = ("school",)
    date_hierarchy = "created_at"


@admin.register(Delivery)
class DeliveryAdmin(ReadOnly):
    list_display = ("id", "message_id", "channel", "status", "attempts", "gateway", "reason")
    list_filter = ("status", "channel", "gateway")
    search_fields = ("=gateway_id", "=to")
    raw_id_fields = ("message", "adult", "member")


@admin.register(Template)
class TemplateAdmin(admin.ModelAdmin):
    list_display = ("name", "school", "updated_at")
    list_filter = ("school",)


@admin.register(SmsBlock)
class SmsBlockAdmin(ReadOnly):
    list_display = ("number", "school", "keyword", "created_at")
    list_filter = ("school",)
    search_fields = ("=number",)


@admin.register(InboundSms)
class InboundSmsAdmin(ReadOnly):
    list_display = ("from_number", "school", "action", "received_at")
    list_filter = ("school", "action")
    # What a parent texted is for their school (the console's Replies page), not the operators;
    # a reply can also carry a code texted to them. The action taken (STOP…) is what operators
    # need to see.
    exclude = ("text",)


@admin.register(GatewayHealth)
class GatewayHealthAdmin(ReadOnly):
    list_display = ("gateway", "last_ok_at", "last_error_at", "failures_in_row", "last_error")
