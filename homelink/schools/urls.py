"""Pages of a school that are not the console's: its logo."""

from __future__ import annotations

from django.urls import URLPattern, path

from homelink.schools import views

urlpatterns: list[URLPattern] = [
    path("<str:urn>/logo/", views.school_logo, name="school_logo"),
]
