"""The staff console, mounted at ``/console/``. Every pattern below the school's URN goes
through ``staff_view`` and uses only the parameters it knows how to scope (the separation test
walks all of them)."""

from __future__ import annotations

from django.urls import path

from homelink.console import urls_imports, urls_messages, urls_people, urls_staff, views

app_name = "console"

urlpatterns = [
    path("", views.home, name="home"),
    path("<str:urn>/", views.dashboard, name="dashboard"),
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

# Each area of the console keeps its own list; every pattern still goes through staff_view.
urlpatterns += (
    urls_imports.urlpatterns
    + urls_people.urlpatterns
    + urls_staff.urlpatterns
    + urls_messages.urlpatterns
)
