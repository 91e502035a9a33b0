"""Public data protection pages (mounted by homelink/urls.py)."""

from __future__ import annotations

from django.urls import URLPattern, path

from homelink.privacy import views

urlpatterns: list[URLPattern] = [
    path("privacy/<str:urn>/", views.notice, name="privacy_notice"),
    # Short: it goes in an SMS.
    path("p/<str:token>/", views.stop, name="privacy_stop"),
]
