"""The staff console, mounted at ``/console/``. Every pattern below the school's URN goes
through ``staff_view``, and every pattern below ``trust/<trust_id>/`` through ``trust_view``,
each using only the parameters it knows how to scope (the separation test walks all of them).
The second factor's pages (otp/urls.py) and the page a school invitation's link opens
(staff/invitation_urls.py) are mounted by homelink/urls.py: they are about an account, not a
school. A trust invitation's link opens ``trust/invitation/<token>/`` here (trusts/urls.py)."""

from __future__ import annotations

from django.urls import path

from homelink.console import views
from homelink.console.audit import urls as audit_urls
from homelink.console.erasure import urls as erasure_urls
from homelink.console.imports import urls as imports_urls
from homelink.console.members import urls as members_urls
from homelink.console.messages import urls as messages_urls
from homelink.console.notices import urls as notices_urls
from homelink.console.people import urls as people_urls
from homelink.console.sar import urls as sar_urls
from homelink.console.staff import urls as staff_urls
from homelink.console.trust_imports import urls as trust_imports_urls
from homelink.console.trust_messages import urls as trust_messages_urls
from homelink.console.trusts import urls as trust_urls
from homelink.console.trusts import views as trust_views

app_name = "console"

# The console's home lists the user's trusts too (console/trusts/views.py), then its schools.
urlpatterns = [path("", trust_views.home, name="home")]

# The trusts' pages before the schools': "<urn>/" would otherwise take "trust/".
urlpatterns += (
    trust_urls.urlpatterns + trust_imports_urls.urlpatterns + trust_messages_urls.urlpatterns
)

urlpatterns += [path("<str:urn>/", views.dashboard, name="dashboard")]

# Each area of the console keeps its own list; every pattern still goes through staff_view.
urlpatterns += (
    members_urls.urlpatterns
    + imports_urls.urlpatterns
    + people_urls.urlpatterns
    + staff_urls.urlpatterns
    + messages_urls.urlpatterns
    + notices_urls.urlpatterns
    + audit_urls.urlpatterns
    + sar_urls.urlpatterns
    + erasure_urls.urlpatterns
)
