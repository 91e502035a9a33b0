"""The one small interface every SMS gateway implements, and the rule every gateway keeps:
a fictional mobile (mis-formats.md §4) never leaves this machine."""

from __future__ import annotations

import ipaddress
import socket
from typing import Protocol
from urllib.parse import urlsplit

from homelink.mis.phones import is_fictional


class GatewayError(Exception):
    """Sending failed. ``retry`` says whether trying again later can help."""

    def __init__(self, reason: str, *, retry: bool) -> None:
        self.reason = reason
        self.retry = retry
        super().__init__(reason)


class SmsGateway(Protocol):
    #: Recorded on each delivery, so receipts are matched to the gateway that sent it.
    name: str

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
    """Whether ``url``'s host is this machine (loopback), judged by what it resolves to."""
    host = urlsplit(url).hostname or ""
    if not host:
        return False
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


def refuse_fictional(to: str, url: str) -> None:
    """A fictional number may go to a gateway on this machine (a fake, in tests and the demo)
    and to nothing else: refused for good, with the reason recorded on the delivery."""
    if is_fictional(to) and not is_local_url(url):
        raise GatewayError("fictional number: never sent beyond this machine", retry=False)
