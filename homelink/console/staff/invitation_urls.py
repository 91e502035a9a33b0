"""The page an invitation's link opens, at ``/staff/invitation/<token>/``: for someone who may
have no account yet, so not under ``/console/`` and not in its namespace (mounted by
homelink/urls.py; the link is built from the name ``staff_invitation``)."""

from __future__ import annotations

from django.urls import URLPattern, path

from homelink.console.staff import views

urlpatterns: list[URLPattern] = [
    path("<str:token>/", views.invitation, name="staff_invitation"),
]
