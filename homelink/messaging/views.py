"""The local outbox page: development and the demo read confirmation emails and SMS codes here."""

from __future__ import annotations

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache

from homelink.messaging.models import OutboxMessage

OUTBOX_PAGE_SIZE = 100


@never_cache
def outbox(request: HttpRequest) -> HttpResponse:
    # Every kept message is readable here, codes and links included: only where nothing real is
    # at stake, and a plain 404 elsewhere so the page's existence is not advertised.
    if not settings.HOMELINK_SHOW_OUTBOX:
        raise Http404("the outbox is not shown on this install")
    rows = OutboxMessage.objects.order_by("-created_at", "-id")[:OUTBOX_PAGE_SIZE]
    return render(request, "messaging/outbox.html", {"rows": rows})
