"""The Staff page: roles, and invitations waiting to be accepted (mounted by console/urls.py).
The page an invitation's link opens is not a console page: see invitation_urls.py."""

from __future__ import annotations

from django.urls import URLPattern, path

from homelink.console.staff import views

urlpatterns: list[URLPattern] = [
    path("<str:urn>/staff/", views.staff, name="staff"),
    path("<str:urn>/staff/add/", views.staff_add, name="staff_add"),
    path("<str:urn>/staff/<int:staff_id>/role/", views.staff_role, name="staff_role"),
    path("<str:urn>/staff/<int:staff_id>/remove/", views.staff_remove_view, name="staff_remove"),
    path(
        "<str:urn>/staff/invitations/<int:invitation_id>/resend/",
        views.staff_invitation_resend,
        name="staff_invitation_resend",
    ),
    path(
        "<str:urn>/staff/invitations/<int:invitation_id>/revoke/",
        views.staff_invitation_revoke,
        name="staff_invitation_revoke",
    ),
]
