"""Twilio's Programmable Messaging, through its REST API (no SDK: one form POST per message).

Twilio takes no idempotency key for Messages: a message it accepted just before the
connection failed is sent again if the dispatcher retries it (the documented double-send
window). Receipts come back to ``hooks:twilio_status`` with the delivery's id in the query
string, so one that overtakes the worker's own record still finds its row.
"""

from __future__ import annotations

import base64
import json
from urllib.parse import urlencode

from django.conf import settings

from homelink.messaging.gateways.base import (
    GatewayError,
    delivery_id_from_key,
    hook_base,
    is_local_url,
    refuse_fictional,
    scrub,
)
from homelink.messaging.gateways.connection import KeptAliveConnection, answer_error


class TwilioGateway:
    name = "twilio"
    network_only = True

    def __init__(
        self,
        *,
        account_sid: str | None = None,
        auth_token: str | None = None,
        from_number: str | None = None,
        messaging_service_sid: str | None = None,
        api_url: str | None = None,
    ) -> None:
        # Arguments are for the benchmark and tests; the dispatcher builds it from settings.
        self.account_sid = account_sid or settings.HOMELINK_TWILIO_ACCOUNT_SID
        self.auth_token = auth_token or settings.HOMELINK_TWILIO_AUTH_TOKEN
        self.from_number = from_number or settings.HOMELINK_TWILIO_FROM
        self.messaging_service_sid = (
            messaging_service_sid or settings.HOMELINK_TWILIO_MESSAGING_SERVICE_SID
        )
        self.api_url = (api_url or settings.HOMELINK_TWILIO_API_URL).rstrip("/")
        self._http = KeptAliveConnection(self.api_url, label="twilio")
        # Worked out once per gateway (a batch), not per message: they cost a tenth of a send.
        self._local = is_local_url(self.api_url)
        self._callback = hook_base("twilio_status")
        credentials = f"{self.account_sid}:{self.auth_token}".encode()
        self._auth = "Basic " + base64.b64encode(credentials).decode("ascii")

    @property
    def connections_opened(self) -> int:
        return self._http.opened

    def send_sms(self, *, to: str, text: str, sender: str = "", key: str = "") -> str:
        refuse_fictional(to, self.api_url, local=self._local)
        if not self.account_sid or not self.auth_token:
            raise GatewayError("twilio: no account SID or auth token configured", retry=True)
        form: dict[str, str] = {"To": to, "Body": text}
        if sender:
            # An alphanumeric sender ID; with a messaging service too, Twilio uses the
            # service's settings (opt-out handling, geo-permissions) and this sender.
            form["From"] = sender
        if self.messaging_service_sid:
            form["MessagingServiceSid"] = self.messaging_service_sid
        elif not sender:
            if not self.from_number:
                raise GatewayError(
                    "twilio: no From number or messaging service configured", retry=True
                )
            form["From"] = self.from_number
        delivery_id = delivery_id_from_key(key)
        form["StatusCallback"] = (
            f"{self._callback}?delivery={delivery_id}"
            if delivery_id is not None
            else self._callback
        )
        answer = self._http.post(
            f"/2010-04-01/Accounts/{self.account_sid}/Messages.json",
            urlencode(form).encode(),
            {
                "Authorization": self._auth,
                "Content-Type": "application/x-www-form-urlencoded",
                "Accept": "application/json",
            },
        )
        data = _json(answer.body)
        if 200 <= answer.status < 300:
            sid = data.get("sid") if isinstance(data, dict) else None
            if not isinstance(sid, str) or not sid:
                # It may have been taken: retrying could send it twice, so stop here.
                raise GatewayError("twilio: answer without a message sid", retry=False)
            return sid
        raise answer_error(_reason(answer.status, data), answer)

    def close(self) -> None:
        self._http.close()


def _json(body: bytes) -> object:
    try:
        return json.loads(body)
    except ValueError:
        return None


def _reason(status: int, data: object) -> str:
    """``twilio 21211: The 'To' number … is not a valid phone number.`` from Twilio's error."""
    if isinstance(data, dict) and data.get("code"):
        message = str(data.get("message") or "").strip()
        return scrub(f"twilio {data['code']}: {message}")
    return f"twilio: HTTP {status}"
