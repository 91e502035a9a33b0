"""Console pages for messages (mounted by console/urls.py)."""

from __future__ import annotations

from django.urls import URLPattern, path

from homelink.console.messages import views

urlpatterns: list[URLPattern] = [
    path("<str:urn>/messages/", views.messages_list, name="messages"),
    path("<str:urn>/messages/new/", views.message_new, name="message_new"),
    path("<str:urn>/messages/send/", views.message_send_view, name="message_send"),
    path(
        "<str:urn>/messages/unreachable/",
        views.draft_unreachable,
        name="message_draft_unreachable",
    ),
    path("<str:urn>/messages/replies/", views.replies, name="replies"),
    path("<str:urn>/messages/templates/", views.templates, name="templates"),
    path("<str:urn>/messages/templates/new/", views.template_new, name="template_new"),
    path(
        "<str:urn>/messages/templates/<int:template_id>/",
        views.template_edit,
        name="template_edit",
    ),
    path(
        "<str:urn>/messages/templates/<int:template_id>/delete/",
        views.template_delete_view,
        name="template_delete",
    ),
    path("<str:urn>/messages/<int:message_id>/", views.message_detail, name="message"),
    path(
        "<str:urn>/messages/<int:message_id>/deliveries.csv",
        views.message_csv,
        name="message_csv",
    ),
    path(
        "<str:urn>/messages/<int:message_id>/cancel/",
        views.message_cancel_view,
        name="message_cancel",
    ),
    path(
        "<str:urn>/messages/<int:message_id>/unreachable/",
        views.message_unreachable,
        name="message_unreachable",
    ),
]
