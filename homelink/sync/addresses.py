"""Which OneRoster servers homelink will talk to: a server-side request to an address an
administrator typed is a way into the server's own network (SSRF), so in production only
https:// to public addresses. ``HOMELINK_SYNC_ALLOW_PRIVATE`` (on for the demo and the tests)
also allows http:// and private, loopback and link-local addresses, where the fake server runs.

The host is checked when the URL is entered and again before every connection, since a name
can resolve somewhere else later.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError

from homelink.sync.sources import SourceError


def _private(host: str) -> str | None:
    """The first address of ``host`` that is not public, or None; raises OSError when the name
    does not resolve."""
    for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP):
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if not address.is_global:
            return str(address)
    return None


def check_url(url: str, *, field: str = "url") -> str:
    """The URL as stored (trimmed, no trailing slash), or ``ValidationError`` saying what is
    wrong with it."""
    url = url.strip().rstrip("/")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise ValidationError({field: "This is not a web address."}) from None
    allow = settings.HOMELINK_SYNC_ALLOW_PRIVATE
    schemes = ("https", "http") if allow else ("https",)
    if parts.scheme not in schemes or not parts.hostname:
        raise ValidationError({field: "Give the full address, starting with https://."})
    if parts.username or parts.password:
        raise ValidationError(
            {
                field: "Leave the user name and password out of the address: the client id and "
                "secret are asked for separately."
            }
        )
    if parts.query or parts.fragment:
        raise ValidationError({field: "Give the address without ? or # parts."})
    if not allow:
        try:
            private = _private(parts.hostname)
        except OSError:
            raise ValidationError({field: f"{parts.hostname} could not be found."}) from None
        if private is not None:
            raise ValidationError(
                {
                    field: f"{parts.hostname} is a private address ({private}): homelink only "
                    "connects to OneRoster servers on the internet."
                }
            )
    return url


def check_host(host: str) -> None:
    """Before connecting: refuse a host that resolves to a private address (unless allowed)."""
    if settings.HOMELINK_SYNC_ALLOW_PRIVATE:
        return
    try:
        private = _private(host)
    except OSError:
        raise SourceError(f"the OneRoster server {host} could not be found") from None
    if private is not None:
        raise SourceError(
            f"the OneRoster server {host} now resolves to a private address ({private}): "
            "homelink will not connect to it",
            retry=False,
        )
