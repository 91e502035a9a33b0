from django.contrib import admin
from django.urls import include, path

from homelink.health import healthz

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz/", healthz, name="healthz"),
    path("console/", include("homelink.console.urls")),
    path("outbox/", include("homelink.messaging.urls")),
    path("", include("homelink.accounts.urls")),
]
