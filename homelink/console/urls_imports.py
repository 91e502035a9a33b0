"""Console pages for imports (mounted by console/urls.py)."""

from __future__ import annotations

from django.urls import URLPattern, path

from homelink.console import views_imports

urlpatterns: list[URLPattern] = [
    path("<str:urn>/imports/", views_imports.imports, name="imports"),
    path("<str:urn>/imports/<int:run_id>/", views_imports.import_run, name="import_run"),
    path(
        "<str:urn>/imports/<int:run_id>/apply/",
        views_imports.import_apply,
        name="import_apply",
    ),
    path(
        "<str:urn>/imports/<int:run_id>/import-anyway/",
        views_imports.import_force,
        name="import_force",
    ),
    path(
        "<str:urn>/imports/<int:run_id>/retry/",
        views_imports.import_retry,
        name="import_retry",
    ),
    path(
        "<str:urn>/imports/<int:run_id>/discard/",
        views_imports.import_discard,
        name="import_discard",
    ),
]
