from django.contrib import admin
from django.urls import include, path

from homelink.health import healthz

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz/", healthz, name="healthz"),
    # Before the console: its <urn>/ would otherwise take "otp/".
    path("console/otp/", include("homelink.console.urls_otp")),
    path("console/", include("homelink.console.urls")),
    path("outbox/", include("homelink.messaging.urls")),
    path("", include("homelink.accounts.urls")),
]
