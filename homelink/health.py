"""``/healthz/``: for load balancers and monitoring; also the benchmarks' hello-world floor."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse


def healthz(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok", content_type="text/plain")
