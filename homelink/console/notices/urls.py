"""The console's notices pages (issue 13): the school's privacy notice and who has been told."""

from __future__ import annotations

from django.urls import URLPattern, path

from homelink.console.notices import views

urlpatterns: list[URLPattern] = [
    path("<str:urn>/notices/", views.notice_page, name="notices"),
    path("<str:urn>/notices/send/", views.notice_send, name="notice_send"),
]
