"""Searches for people by name, email or number, kept out of URLs.

A URL is written to the web server's access log, the proxy's, the browser's history and the
Referer of the next request; a parent's name or mobile typed into a search box must reach none
of them. So a search is POSTed, its terms kept in the staff member's session under a random key,
and the results page is an ordinary GET (``?s=KEY``) that paginates, reloads and goes back like
any other while saying nothing about whom it found. A key means nothing in another session.
"""

from __future__ import annotations

import secrets
from typing import Any

from django.http import HttpRequest

SESSION_KEY = "console_searches"
#: Searches one session remembers: enough for tabs and the back button, not a history.
KEEP = 20
PARAMETER = "s"


def search_remember(request: HttpRequest, terms: dict[str, str]) -> str:
    """Keep the terms in the session; the key to put in the results page's address."""
    searches: dict[str, Any] = dict(request.session.get(SESSION_KEY, {}))
    key = secrets.token_urlsafe(9)
    searches[key] = terms
    # Dicts keep insertion order: the oldest searches go first.
    for old in list(searches)[: max(0, len(searches) - KEEP)]:
        del searches[old]
    request.session[SESSION_KEY] = searches
    return key


def search_recall(request: HttpRequest) -> dict[str, str]:
    """The terms behind ``?s=KEY`` in this session ({} for none, or for another session's)."""
    key = request.GET.get(PARAMETER, "")
    found = request.session.get(SESSION_KEY, {}).get(key) if key else None
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}
