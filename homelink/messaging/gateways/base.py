"""The one small interface every SMS gateway implements, and the rule every gateway keeps:
a fictional mobile (mis-formats.md §4) never leaves this machine."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import socket
from functools import cache
from typing import Protocol
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.urls import get_script_prefix, reverse

from homelink.mis.phones import is_fictional


class GatewayError(Exception):
    """Sending failed. ``retry`` says whether trying again later can help.

    The rest says what the dispatcher does about it beyond this one copy:

    - ``hold``: the provider asked us to slow down (HTTP 429) and for how many seconds
      (its ``Retry-After``, else one). The whole gateway waits that long and the copy goes
      back to the queue without spending an attempt: it was refused, not tried.
    - ``gateway_wide``: the provider is failing, not this copy (unreachable, 5xx, its
      credentials refused). The copy spends an attempt and the whole gateway backs off, so
      the copies behind it wait instead of spending theirs.
    - ``unanswered``: the request went out whole and no answer came (a timeout, a connection
      dropped while waiting): the provider may have taken it. Retried once, never twice.
    """

    def __init__(
        self,
        reason: str,
        *,
        retry: bool,
        hold: float | None = None,
        gateway_wide: bool = False,
        unanswered: bool = False,
    ) -> None:
        self.reason = reason
        self.retry = retry
        self.hold = hold
        self.gateway_wide = gateway_wide or hold is not None or unanswered
        self.unanswered = unanswered
        super().__init__(reason)


class SmsGateway(Protocol):
    #: Recorded on each delivery, so receipts are matched to the gateway that sent it.
    name: str
    #: Sends touch only the network (never the database), so workers may send from threads.
    network_only: bool

    def send_sms(self, *, to: str, text: str, sender: str = "", key: str = "") -> str:
        """Send one SMS to an E.164 number; returns the gateway's id for it.

        ``key`` is the delivery's idempotency key: a gateway that can pass one on does, so a
        retry after a lost answer cannot send the message twice.
        """
        ...

    def close(self) -> None:
        """Release what the gateway held open (a kept-alive connection) after a batch."""
        ...


def is_local_url(url: str) -> bool:
    """Whether ``url``'s host is this machine (loopback).

    An address literal is judged as it stands and any name but ``localhost`` is taken to be
    elsewhere, so the answer never needs DNS: deciding to refuse a fictional number must not
    itself reach the network, and a DNS answer must not be able to make a remote host look
    local. ``localhost`` (RFC 6761) is resolved, which only reads the hosts file, and counts
    only if every address it gives is loopback.
    """
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    if host != "localhost" and not host.endswith(".localhost"):
        return False
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


def refuse_fictional(to: str, url: str, *, local: bool | None = None) -> None:
    """A fictional number may go to a gateway on this machine (a fake, in tests and the demo)
    and to nothing else: refused for good, with the reason recorded on the delivery.

    ``local`` is ``is_local_url(url)`` when the caller worked it out once for many sends."""
    if is_fictional(to) and not (is_local_url(url) if local is None else local):
        raise GatewayError("fictional number: never sent beyond this machine", retry=False)


_KEY = re.compile(r"homelink-[0-9a-f]+-(\d+)")


def delivery_id_from_key(key: str) -> int | None:
    """The delivery's id inside its idempotency key (``Delivery.idempotency_key``), if it is one."""
    match = _KEY.fullmatch(key)
    return int(match.group(1)) if match else None


# Once per process: reversing costs as much as a tenth of a send, and the URLconf is fixed.
@cache
def _hook_path(name: str) -> str:
    # Without the script prefix, as the webhook compares against ``request.path_info``: a
    # prefix the proxy adds is part of HOMELINK_PUBLIC_URL.
    return "/" + reverse(f"hooks:{name}")[len(get_script_prefix()) :]


def delivery_signature(secret: str, delivery_id: int) -> str:
    """The signature a per-message receipt address carries: it proves the address was ours for
    that one delivery, so a leaked address (in a provider's or proxy's logs) cannot be used to
    forge a receipt for any other delivery, as a shared secret in the URL could."""
    return DeliverySigner(secret).sign(delivery_id)


class DeliverySigner:
    """:func:`delivery_signature` for many deliveries: the key is prepared once (a gateway
    signs every message of a batch)."""

    def __init__(self, secret: str) -> None:
        self._mac = hmac.new(secret.encode(), digestmod=hashlib.sha256)

    def sign(self, delivery_id: int) -> str:
        mac = self._mac.copy()
        mac.update(f"receipt:{delivery_id}".encode())
        return mac.hexdigest()[:32]


def hook_base(name: str) -> str:
    """:func:`hook_url` without a query, for a gateway to add one per message cheaply."""
    return settings.HOMELINK_PUBLIC_URL.rstrip("/") + _hook_path(name)


def hook_url(name: str, **query: str | int) -> str:
    """The public address of one of our webhooks (``hooks:<name>``), as a provider must call it.

    Built the same way the webhook rebuilds it to check a signature: ``HOMELINK_PUBLIC_URL``
    followed by the path and query, so the two cannot drift apart.
    """
    url = settings.HOMELINK_PUBLIC_URL.rstrip("/") + _hook_path(name)
    if query:
        url += "?" + urlencode({k: str(v) for k, v in query.items()})
    return url


_PHONE = re.compile(r"\+?\d[\d ()\-]{6,}\d")
_EMAIL = re.compile(r"[^\s@'\"<>()\[\],;:]+@[^\s@'\"<>()\[\],;:]+")


def scrub(text: str, limit: int = 255) -> str:
    """``text`` (a provider's error) without phone numbers or email addresses, cut to ``limit``:
    reasons end up in logs and on the dashboard, where no personal data belongs."""
    return _EMAIL.sub("…", _PHONE.sub("…", text)).strip()[:limit]
