"""A trust's pages, mounted by console/urls.py before the schools' (``<urn>/`` would otherwise
take ``trust/``). Every page under ``trust/<trust_id>/`` goes through ``trust_view``; the page an
invitation's link opens is for someone who may have no account yet."""

from __future__ import annotations

from django.urls import URLPattern, path

from homelink.console.trusts import views

urlpatterns: list[URLPattern] = [
    path("trust/invitation/<str:token>/", views.invitation, name="trust_invitation"),
    path("trust/<int:trust_id>/", views.overview, name="trust_overview"),
    path("trust/<int:trust_id>/staff/", views.staff, name="trust_staff"),
    path("trust/<int:trust_id>/staff/add/", views.staff_add, name="trust_staff_add"),
    path(
        "trust/<int:trust_id>/staff/<int:trust_staff_id>/role/",
        views.staff_role,
        name="trust_staff_role",
    ),
    path(
        "trust/<int:trust_id>/staff/<int:trust_staff_id>/remove/",
        views.staff_remove,
        name="trust_staff_remove",
    ),
    path(
        "trust/<int:trust_id>/staff/invitations/<int:trust_invitation_id>/resend/",
        views.invitation_resend,
        name="trust_invitation_resend",
    ),
    path(
        "trust/<int:trust_id>/staff/invitations/<int:trust_invitation_id>/revoke/",
        views.invitation_revoke,
        name="trust_invitation_revoke",
    ),
]
