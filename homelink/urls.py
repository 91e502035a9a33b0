from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from homelink.health import healthz
from homelink.home import home
from homelink.messaging.email_events import tracking_webhook

urlpatterns = [
    # The front page: what this is and where to go, for parents and for the school office.
    path("", home, name="home"),
    # Operators sign in where everyone does, so the login limits apply to the admin too.
    path(
        "admin/login/",
        RedirectView.as_view(pattern_name="login", query_string=True, permanent=False),
        name="admin_login",
    ),
    path("admin/", admin.site.urls),
    path("healthz/", healthz, name="healthz"),
    # Before the console: its <urn>/ would otherwise take "otp/".
    path("console/otp/", include("homelink.console.otp.urls")),
    path("console/", include("homelink.console.urls")),
    # A staff invitation's link: for someone who may have no account yet, so not under /console/.
    path("staff/invitation/", include("homelink.console.staff.invitation_urls")),
    path("outbox/", include("homelink.messaging.urls")),
    # A school's logo, for its staff and its parents (schools/views.py).
    path("schools/", include("homelink.schools.urls")),
    # Providers' webhooks: SMS receipts and inbound texts, and email events through anymail.
    path("hooks/anymail/<str:esp>/tracking/", tracking_webhook, name="email_events"),
    path("hooks/", include("homelink.messaging.urls_hooks")),
    # A school's privacy notice, and the "stop messages" links in its emails and notices.
    path("", include("homelink.privacy.urls")),
    path("", include("homelink.accounts.urls")),
]
