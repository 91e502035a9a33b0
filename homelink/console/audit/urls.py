"""The console's audit pages (issue 13): the audit trail and the records of processing."""

from __future__ import annotations

from django.urls import URLPattern, path

from homelink.console.audit import views

urlpatterns: list[URLPattern] = [
    path("<str:urn>/audit/", views.audit_trail, name="audit"),
    path("<str:urn>/audit/export.csv", views.audit_csv, name="audit_csv"),
    path("<str:urn>/records/", views.records, name="records"),
    path("<str:urn>/records/records-of-processing.pdf", views.records_pdf, name="records_pdf"),
]
