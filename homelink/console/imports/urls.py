"""Console pages for imports (mounted by console/urls.py)."""

from __future__ import annotations

from django.urls import URLPattern, path

from homelink.console.imports import views

urlpatterns: list[URLPattern] = [
    path("<str:urn>/imports/", views.imports, name="imports"),
    path("<str:urn>/imports/<int:run_id>/", views.import_run, name="import_run"),
    path(
        "<str:urn>/imports/<int:run_id>/apply/",
        views.import_apply,
        name="import_apply",
    ),
    path(
        "<str:urn>/imports/<int:run_id>/import-anyway/",
        views.import_force,
        name="import_force",
    ),
    path(
        "<str:urn>/imports/<int:run_id>/retry/",
        views.import_retry,
        name="import_retry",
    ),
    path(
        "<str:urn>/imports/<int:run_id>/discard/",
        views.import_discard,
        name="import_discard",
    ),
]
