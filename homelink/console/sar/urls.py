"""The console's subject access pages (issue 13), mounted by console/urls.py."""

from __future__ import annotations

from django.urls import URLPattern, path

from homelink.console.sar import views

urlpatterns: list[URLPattern] = [
    path("<str:urn>/subject-access/", views.sar, name="sar"),
    path("<str:urn>/subject-access/download/", views.sar_download, name="sar_download"),
    path("<str:urn>/subject-access/complete/", views.sar_complete, name="sar_complete"),
    path("<str:urn>/members/<int:member_id>/subject-access/", views.member_sar, name="member_sar"),
    path("<str:urn>/adults/<int:adult_id>/subject-access/", views.adult_sar, name="adult_sar"),
]
