"""The one small interface every SMS gateway implements."""

from __future__ import annotations

from typing import Protocol


class GatewayError(Exception):
    """Sending failed. ``retry`` says whether trying again later can help."""

    def __init__(self, reason: str, *, retry: bool) -> None:
        self.reason = reason
        self.retry = retry
        super().__init__(reason)


class SmsGateway(Protocol):
    def send_sms(self, *, to: str, text: str, sender: str = "") -> str:
        """Send one SMS to an E.164 number; returns the gateway's id for it."""
        ...
