"""The client address a rate limit should count: hard to spoof, and one bucket per attacker."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from django.conf import settings
from django.http import HttpRequest

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# What a request without a usable address counts as: one shared bucket, never a fresh one each time.
UNKNOWN = "unknown"


def client_ip(request: HttpRequest) -> str:
    """The identity to rate-limit a request by: an IPv4 address, or an IPv6 /64 prefix.

    ``REMOTE_ADDR`` unless it is one of ``settings.HOMELINK_TRUSTED_PROXIES`` (addresses or
    networks, e.g. ``["127.0.0.1", "10.0.0.0/8"]``); then the right-most address in
    ``X-Forwarded-For`` that is not a trusted proxy, because everything left of it was written by
    the client and can be forged. IPv6 is keyed by its /64: one subscriber gets a whole /64 and can
    take a fresh address from it for every attempt.
    """
    remote = _parse(request.META.get("REMOTE_ADDR", ""))
    if remote is None:
        return UNKNOWN
    trusted = _trusted_networks(getattr(settings, "HOMELINK_TRUSTED_PROXIES", []))
    if trusted and _is_trusted(remote, trusted):
        hops = request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
        for hop in reversed(hops):
            address = _parse(hop)
            if address is None:
                # A trusted proxy passed on something that is not an address: stop at the last
                # address we can vouch for rather than key by text the client chose freely.
                break
            remote = address
            if not _is_trusted(address, trusted):
                break
    return _identity(remote)


def _identity(address: IPAddress) -> str:
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def _parse(text: str) -> IPAddress | None:
    text = text.strip()
    if text.startswith("["):
        # "[2001:db8::1]:443", as some proxies write an address with its port
        text = text[1:].split("]", 1)[0]
    elif text.count(":") == 1:
        # "192.0.2.1:5678"
        text = text.split(":", 1)[0]
    try:
        # A zone id ("fe80::1%eth0") names the server's interface, not the client.
        return ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None


def _trusted_networks(entries: str | Iterable[str]) -> list[IPNetwork]:
    if isinstance(entries, str):
        # HOMELINK_TRUSTED_PROXIES = "10.0.0.1" would otherwise be read one character at a time.
        entries = [entries]
    return [ipaddress.ip_network(entry.strip(), strict=False) for entry in entries]


def _is_trusted(address: IPAddress, trusted: list[IPNetwork]) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address.version == net.version and address in net for net in trusted)
