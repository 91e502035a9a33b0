"""Webhooks providers call (mounted at ``hooks/``): no pages, nothing about one school."""

from __future__ import annotations

from django.urls import path

from homelink.messaging import webhooks

app_name = "hooks"
urlpatterns = [
    path("twilio/status/", webhooks.twilio_status, name="twilio_status"),
    path("twilio/inbound/", webhooks.twilio_inbound, name="twilio_inbound"),
    path("sms/status/", webhooks.sms_status, name="sms_status"),
]
