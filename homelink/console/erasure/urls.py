"""The console's erasure pages (issue 13): erasing an adult, the list of erasures (tombstones)
with lifting, and the school's retention periods."""

from __future__ import annotations

from django.urls import URLPattern, path

from homelink.console.erasure import views

urlpatterns: list[URLPattern] = [
    path("<str:urn>/adults/<int:adult_id>/erase/", views.adult_erase, name="adult_erase"),
    path("<str:urn>/erasures/", views.erasures, name="erasures"),
    path("<str:urn>/erasures/lift/", views.erasure_lift, name="erasure_lift"),
    path("<str:urn>/retention/", views.retention, name="retention"),
]
