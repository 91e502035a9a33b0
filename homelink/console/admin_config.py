"""The admin app with the operators' site as its default (see :mod:`homelink.console.admin_site`).

In ``INSTALLED_APPS`` in place of ``django.contrib.admin``, so ``admin.site`` (which every app's
``@admin.register`` and ``homelink/urls.py`` use) is the second-factor site. Kept apart from
``admin_site``: this module is imported while apps load, before models may be imported."""

from __future__ import annotations

from django.contrib.admin.apps import AdminConfig


class OperatorAdminConfig(AdminConfig):
    default_site = "homelink.console.admin_site.OperatorAdminSite"
