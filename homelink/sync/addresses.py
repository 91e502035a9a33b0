"""Which OneRoster servers homelink will talk to: a server-side request to an address an
administrator typed is a way into the server's own network (SSRF), so in production only
https:// to public addresses. ``HOMELINK_SYNC_ALLOW_PRIVATE`` (on for the demo and the tests)
also allows http:// and private, loopback and link-local addresses, where the fake server runs.

The host is checked when the URL is entered and again before every connection, since a name
can resolve somewhere else later. At connection time the name is resolved **once**
(:func:`connect_addresses`) and the connection goes to an address of that very answer: a name
whose DNS answers a public address to the check and a private one to a second lookup (DNS
rebinding, a TTL of 0) cannot lead the server into its own network.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError

from homelink.sync.sources import SourceError


def _first_private(addresses: list[str]) -> str | None:
    for text in addresses:
        address = ipaddress.ip_address(text.split("%")[0])
        if not address.is_global:
            return str(address)
    return None


def _private(host: str) -> str | None:
    """The first address of ``host`` that is not public, or None; raises OSError when the name
    does not resolve."""
    infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    return _first_private([str(info[4][0]) for info in infos])


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


def _refusal(host: str, private: str) -> SourceError:
    return SourceError(
        f"the OneRoster server {host} now resolves to a private address ({private}): "
        "homelink will not connect to it",
        retry=False,
    )


def check_host(host: str) -> None:
    """Refuse a host that resolves to a private address (unless allowed). Only a check: a
    connection must go to :func:`connect_addresses`' answer, not to the name again."""
    if settings.HOMELINK_SYNC_ALLOW_PRIVATE:
        return
    try:
        private = _private(host)
    except OSError:
        raise SourceError(f"the OneRoster server {host} could not be found") from None
    if private is not None:
        raise _refusal(host, private)


def connect_addresses(host: str, port: int) -> list[str]:
    """The IP addresses to connect to ``host`` on, from one lookup, every one checked public
    (unless allowed): connect to these, never to the name, so that no second lookup is made.
    Raises ``OSError`` (``socket.gaierror``) when the name does not resolve, and
    :class:`SourceError` for a private address."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise socket.gaierror(socket.EAI_NONAME, "no address")
    if not settings.HOMELINK_SYNC_ALLOW_PRIVATE:
        # Every address of the answer, not only the first: a connection may fall back to any.
        private = _first_private(addresses)
        if private is not None:
            raise _refusal(host, private)
    return addresses
