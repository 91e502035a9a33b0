"""Console pages for people, letters and settings (mounted by console/urls.py)."""

from __future__ import annotations

from django.urls import URLPattern, path

from homelink.console.people import views

urlpatterns: list[URLPattern] = [
    # The linked-people screen's own actions (console/people_member_actions.html).
    path(
        "<str:urn>/members/<int:member_id>/people/add/",
        views.people_add,
        name="people_add",
    ),
    path(
        "<str:urn>/members/<int:member_id>/people/search/",
        views.people_search,
        name="people_search",
    ),
    path(
        "<str:urn>/members/<int:member_id>/people/new/",
        views.people_new,
        name="people_new",
    ),
    path(
        "<str:urn>/members/<int:member_id>/adults/<int:adult_id>/review/",
        views.adult_review,
        name="adult_review",
    ),
    path(
        "<str:urn>/members/<int:member_id>/letters/",
        views.member_letters,
        name="member_letters",
    ),
    path(
        "<str:urn>/members/<int:member_id>/letters/new/",
        views.member_letter_issue,
        name="member_letter_issue",
    ),
    path(
        "<str:urn>/members/<int:member_id>/letters/<int:code_id>/revoke/",
        views.member_letter_revoke,
        name="member_letter_revoke",
    ),
    # Whole-school pages.
    path("<str:urn>/duplicates/", views.duplicates, name="duplicates"),
    path(
        "<str:urn>/duplicates/<int:duplicate_id>/not-the-same/",
        views.duplicate_resolve,
        name="duplicate_resolve",
    ),
    path("<str:urn>/letters/", views.letters, name="letters"),
    path("<str:urn>/settings/", views.school_settings, name="settings"),
]
