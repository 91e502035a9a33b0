"""A trust's imports (mounted by console/urls.py under ``trust/``): every page goes through
``trust_view``. One import is named by its token in the query string (``?f=``) or the form
posted, never by a URL parameter: ``trust_view`` resolves only the trust's own records."""

from __future__ import annotations

from django.urls import URLPattern, path

from homelink.console.trust_imports import views

urlpatterns: list[URLPattern] = [
    path("trust/<int:trust_id>/import/", views.trust_import, name="trust_import"),
    path("trust/<int:trust_id>/import/file/", views.trust_import_file, name="trust_import_file"),
    path(
        "trust/<int:trust_id>/import/file/start/",
        views.trust_import_start,
        name="trust_import_start",
    ),
    path(
        "trust/<int:trust_id>/import/file/apply/",
        views.trust_import_apply,
        name="trust_import_apply",
    ),
    path(
        "trust/<int:trust_id>/import/file/discard/",
        views.trust_import_discard,
        name="trust_import_discard",
    ),
]
