"""The second factor's pages, at ``/console/otp/``. Mounted by ``homelink/urls.py`` BEFORE the
console's own include (whose ``<str:urn>/`` would otherwise take ``otp/``), in a namespace of
its own: these pages are about the account, not a school, so they are not ``staff_view``s and
the console's separation test (which walks the ``console`` namespace) does not apply to them."""

from __future__ import annotations

from django.urls import path

from homelink.console.otp import views

app_name = "console_otp"

urlpatterns = [
    path("", views.index, name="index"),
    path("setup/", views.setup, name="setup"),
    path("verify/", views.verify, name="verify"),
    path("remove/", views.remove, name="remove"),
]
