"""Console pages for the members list and a member's page (mounted by console/urls.py)."""

from __future__ import annotations

from django.urls import URLPattern, path

from homelink.console.members import views

urlpatterns: list[URLPattern] = [
    path("<str:urn>/members/", views.members, name="members"),
    path("<str:urn>/members/<int:member_id>/", views.member, name="member"),
    path(
        "<str:urn>/members/<int:member_id>/opt-out/",
        views.member_opt_out,
        name="member_opt_out",
    ),
    path(
        "<str:urn>/members/<int:member_id>/links/<int:link_id>/prime/",
        views.link_prime,
        name="link_prime",
    ),
    path(
        "<str:urn>/members/<int:member_id>/links/<int:link_id>/remove/",
        views.link_remove,
        name="link_remove",
    ),
    path(
        "<str:urn>/members/<int:member_id>/adults/<int:adult_id>/opt-out/",
        views.adult_opt_out,
        name="adult_opt_out",
    ),
    path(
        "<str:urn>/members/<int:member_id>/waiting/<int:pending_id>/",
        views.pending_decide,
        name="pending_decide",
    ),
]
