"""The second factor's pages, at ``/console/otp/``. Mounted by ``homelink/urls.py`` BEFORE the
console's own include (whose ``<str:urn>/`` would otherwise take ``otp/``), in a namespace of
its own: these pages are about the account, not a school, so they are not ``staff_view``s and
the console's separation test (which walks the ``console`` namespace) does not apply to them."""

from __future__ import annotations

from django.urls import path

from homelink.console import views_otp

app_name = "console_otp"

urlpatterns = [
    path("", views_otp.index, name="index"),
    path("setup/", views_otp.setup, name="setup"),
    path("verify/", views_otp.verify, name="verify"),
    path("remove/", views_otp.remove, name="remove"),
]
