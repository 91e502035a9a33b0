"""Every page carries a strict Content-Security-Policy and is never cached: staff use shared
office machines, and a console page, a CSV or a letters PDF left in a browser's cache is a
register left on the desk."""

from __future__ import annotations

import pytest
from django.http import HttpResponse
from django.test import Client

from homelink.console.tests.test_junk_sweep import everything, site_pages, urls_of  # noqa: F401
from homelink.headers import CONTENT_SECURITY_POLICY, SecurityHeadersMiddleware


def directives(header: str) -> dict[str, str]:
    parts = (d.strip().split(None, 1) for d in header.split(";") if d.strip())
    return {p[0]: (p[1] if len(p) > 1 else "") for p in parts}


def test_the_policy_allows_nothing_but_this_sites_own_files() -> None:
    policy = directives(CONTENT_SECURITY_POLICY)
    assert policy["default-src"] == "'self'"
    assert policy["script-src"] == "'self'" and policy["style-src"] == "'self'"
    assert policy["object-src"] == "'none'" and policy["frame-ancestors"] == "'none'"
    assert policy["base-uri"] == "'none'" and policy["form-action"] == "'self'"
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY
    assert "unsafe-eval" not in CONTENT_SECURITY_POLICY
    assert "*" not in CONTENT_SECURITY_POLICY and "data:" not in CONTENT_SECURITY_POLICY


@pytest.mark.parametrize("who", ["administrator", "anonymous"])
def test_every_url_of_the_site_has_the_policy_and_no_store(everything, who, settings) -> None:  # noqa: F811
    """Walked from the resolver: every console page and download (CSV, PDF), the parents'
    pages, the admin, the webhooks; whatever each answers (a page, a redirect, a 404)."""
    settings.HOMELINK_SHOW_OUTBOX = True
    client = Client()
    checked = 0
    for page in site_pages():
        if page.name == "logout":
            continue  # would end the session the rest of the walk needs
        url = next(urls_of(page, everything))
        if who == "administrator":
            client.force_login(everything["admin"])
        response = client.get(url)
        assert response.get("Content-Security-Policy") == CONTENT_SECURITY_POLICY, url
        cache = response.get("Cache-Control", "")
        assert "no-store" in cache, f"{url} ({response.status_code}): Cache-Control {cache!r}"
        checked += 1
    assert checked > 50


def test_downloads_are_not_stored(everything, client) -> None:  # noqa: F811
    """The files a browser keeps longest: the message CSV and the letters PDF."""
    from django.urls import reverse

    client.force_login(everything["admin"])
    urn = everything["urn"]
    csv = client.get(
        reverse("console:message_csv", kwargs={"urn": urn, "message_id": everything["message_id"]})
    )
    assert csv.status_code == 200 and csv["Content-Type"].startswith("text/csv")
    letters = client.post(
        reverse(
            "console:member_letter_issue",
            kwargs={"urn": urn, "member_id": everything["member_id"]},
        )
    )
    assert letters.status_code == 200 and letters["Content-Type"] == "application/pdf"
    for response in (csv, letters):
        assert "no-store" in response["Cache-Control"]
        assert response["Content-Security-Policy"] == CONTENT_SECURITY_POLICY


def test_static_files_keep_their_caching_and_everything_else_is_not_stored(rf) -> None:
    """The middleware itself, on a static file's answer (the web server serves those in
    production; here a view stands in for it) and on any other path."""
    cached = SecurityHeadersMiddleware(
        lambda request: HttpResponse(headers={"Cache-Control": "max-age=3600"})
    )
    assert cached(rf.get("/static/homelink/site.css"))["Cache-Control"] == "max-age=3600"
    assert cached(rf.get("/console/"))["Cache-Control"] == "no-store"
