"""A trust's messages (mounted by console/urls.py under ``trust/``): every page goes through
``trust_view``. The send to cancel is named in the form posted, never by a URL parameter:
``trust_view`` resolves only the trust's own records."""

from __future__ import annotations

from django.urls import URLPattern, path

from homelink.console.trust_messages import views

urlpatterns: list[URLPattern] = [
    path("trust/<int:trust_id>/messages/", views.trust_messages, name="trust_messages"),
    path("trust/<int:trust_id>/messages/new/", views.trust_message_new, name="trust_message_new"),
    path(
        "trust/<int:trust_id>/messages/send/",
        views.trust_message_send_view,
        name="trust_message_send",
    ),
    path(
        "trust/<int:trust_id>/messages/cancel/",
        views.trust_message_cancel_view,
        name="trust_message_cancel",
    ),
]
