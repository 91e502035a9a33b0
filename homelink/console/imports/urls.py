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
    # The scheduled sync: each form of the imports page posts to its own address.
    path("<str:urn>/imports/sync/folder/", views.sync_folder, name="sync_folder"),
    path("<str:urn>/imports/sync/oneroster/", views.sync_oneroster, name="sync_oneroster"),
    path("<str:urn>/imports/sync/time/", views.sync_time, name="sync_time"),
    path("<str:urn>/imports/sync/remove/", views.sync_remove_view, name="sync_remove"),
    path("<str:urn>/imports/sync/run/", views.sync_run_now, name="sync_run"),
]
