"""Response headers every page of the site carries: a strict Content-Security-Policy, and no
caching of anything but static files.

The site runs no JavaScript of its own and no inline script or style, so the policy allows only
files from this origin: an injected ``<script>`` or ``style=`` does nothing, and no other site may
frame a page. Pages are never stored by a browser or a proxy, because staff use shared office
machines and every console page, CSV and PDF carries children's and parents' details: the back
button after signing out must not show them.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest
from django.http.response import HttpResponseBase

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
NO_STORE = "no-store"


class SecurityHeadersMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response
        self.static_prefix = "/" + settings.STATIC_URL.lstrip("/")

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        response.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        if request.path.startswith(self.static_prefix):
            return response
        # Replaces any weaker caching a view set; views that already say no-store keep their
        # own (longer) header.
        if NO_STORE not in response.get("Cache-Control", ""):
            response["Cache-Control"] = NO_STORE
        return response
