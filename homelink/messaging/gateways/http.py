"""A generic HTTP SMS gateway: one POST per message, described by the ``HOMELINK_HTTP_SMS`` setting.

Most SMS providers (Textlocal, ClickSend, BulkSMS, …) take a JSON or form POST with a number, a
text and a sender, answer with an id, and later call back with a delivery receipt naming that
id and a status. The setting says where each of those goes (docs/deployment.md, "SMS
gateways"); field names are dotted paths (``messages.0.to``) so nested JSON works both ways.
"""

from __future__ import annotations

import json
from itertools import pairwise
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from homelink.messaging.gateways.base import (
    DeliverySigner,
    GatewayError,
    delivery_id_from_key,
    hook_base,
    is_local_url,
    refuse_fictional,
    scrub,
)
from homelink.messaging.gateways.connection import KeptAliveConnection, answer_error

#: Every key ``HOMELINK_HTTP_SMS`` may have, with its default.
DEFAULTS: dict[str, Any] = {
    "URL": "",
    "FORMAT": "json",  # or "form"
    "AUTH_HEADER": "Authorization",
    "AUTH_VALUE": "",
    "TO_FIELD": "to",
    #: "e164" (+447700900123) or "digits" (447700900123), as the provider wants numbers.
    "TO_FORMAT": "e164",
    "TEXT_FIELD": "text",
    "SENDER_FIELD": "from",
    #: Used when a message has no sender of its own (a number, for two-way SMS).
    "SENDER": "",
    "ID_FIELD": "id",
    #: Where a failed answer explains itself (e.g. "error.message"); else the status is used.
    "ERROR_FIELD": "",
    "IDEMPOTENCY_HEADER": "Idempotency-Key",
    #: A field for our receipt URL, for providers that take one per message.
    "CALLBACK_FIELD": "",
    #: Constant fields sent with every message (an API key in the body, a "source" tag…).
    "EXTRA": {},
    "TIMEOUT": 15,
    "RECEIPT_SECRET": "",
    "RECEIPT_ID_FIELD": "id",
    "RECEIPT_STATUS_FIELD": "status",
    "RECEIPT_REASON_FIELD": "",
    #: Provider status → ours ("sent", "delivered", "failed"; "" ignores it).
    "STATUS_MAP": {
        "sent": "sent",
        "delivered": "delivered",
        "undelivered": "failed",
        "failed": "failed",
    },
}
RECEIPT_STATUSES = frozenset({"sent", "delivered", "failed", ""})


def http_sms_config(given: dict[str, Any] | None = None) -> dict[str, Any]:
    """``given`` (by default ``HOMELINK_HTTP_SMS``) over the defaults; a misspelt key is an
    error, not ignored."""
    if given is None:
        given = settings.HOMELINK_HTTP_SMS or {}
    if not isinstance(given, dict):
        raise ImproperlyConfigured("HOMELINK_HTTP_SMS must be a JSON object")
    unknown = sorted(set(given) - set(DEFAULTS))
    if unknown:
        raise ImproperlyConfigured(f"HOMELINK_HTTP_SMS: unknown keys {unknown}")
    config = {**DEFAULTS, **given}
    if config["FORMAT"] not in {"json", "form"}:
        raise ImproperlyConfigured('HOMELINK_HTTP_SMS: FORMAT must be "json" or "form"')
    if config["TO_FORMAT"] not in {"e164", "digits"}:
        raise ImproperlyConfigured('HOMELINK_HTTP_SMS: TO_FORMAT must be "e164" or "digits"')
    bad = sorted(str(v) for v in config["STATUS_MAP"].values() if v not in RECEIPT_STATUSES)
    if bad:
        raise ImproperlyConfigured(f"HOMELINK_HTTP_SMS: STATUS_MAP values {bad} are not ours")
    return config


def dotted_get(data: object, path: str) -> object:
    """The value at ``a.b.0.c`` in decoded JSON (or a flat dict), or None."""
    if not path:
        return None
    if isinstance(data, dict) and path in data:
        return data[path]
    for part in path.split("."):
        if isinstance(data, dict):
            data = data.get(part)
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return None
    return data


def dotted_set(data: dict[str, Any], path: str, value: object) -> None:
    """Put ``value`` at ``a.b.0.c``, making the dicts and lists on the way."""
    parts = path.split(".")
    node: Any = data
    for part, following in pairwise(parts):
        empty: Any = [] if following.isdigit() else {}
        if isinstance(node, list):
            index = int(part)
            while len(node) <= index:
                node.append(None)
            if node[index] is None:
                node[index] = empty
            node = node[index]
        else:
            node = node.setdefault(part, empty)
    last = parts[-1]
    if isinstance(node, list):
        index = int(last)
        while len(node) <= index:
            node.append(None)
        node[index] = value
    else:
        node[last] = value


class HttpGateway:
    name = "http"
    network_only = True

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        # ``config`` is for the benchmark and tests; the dispatcher builds it from settings.
        self.config = http_sms_config(config)
        self.url: str = self.config["URL"]
        # Without a URL every send fails as retryable, so messages wait for the setting and the
        # dashboard shows why, instead of the worker failing before it records anything.
        self._http = (
            KeptAliveConnection(self.url, label="http", timeout=float(self.config["TIMEOUT"]))
            if self.url
            else None
        )
        # Worked out once per gateway (a batch), not per message: they cost a tenth of a send.
        self._local = is_local_url(self.url)
        self._callback = hook_base("sms_status")
        # A signature per delivery rides in its receipt address: many providers take an address
        # per message and cannot add a header to what they send back.
        secret = str(self.config["RECEIPT_SECRET"])
        self._signer = DeliverySigner(secret) if secret else None

    @property
    def connections_opened(self) -> int:
        return self._http.opened if self._http is not None else 0

    def _body(self, fields: dict[str, Any]) -> tuple[bytes, str]:
        if self.config["FORMAT"] == "form":
            flat = {k: "" if v is None else str(v) for k, v in fields.items()}
            return urlencode(flat).encode(), "application/x-www-form-urlencoded"
        document: dict[str, Any] = {}
        for path, value in fields.items():
            dotted_set(document, path, value)
        return json.dumps(document).encode(), "application/json"

    def send_sms(self, *, to: str, text: str, sender: str = "", key: str = "") -> str:
        refuse_fictional(to, self.url, local=self._local)
        if self._http is None:
            raise GatewayError("http: HOMELINK_HTTP_SMS has no URL", retry=True)
        c = self.config
        fields: dict[str, Any] = dict(c["EXTRA"])
        fields[c["TO_FIELD"]] = to.lstrip("+") if c["TO_FORMAT"] == "digits" else to
        fields[c["TEXT_FIELD"]] = text
        sender = sender or c["SENDER"]
        if sender and c["SENDER_FIELD"]:
            fields[c["SENDER_FIELD"]] = sender
        delivery_id = delivery_id_from_key(key)
        if c["CALLBACK_FIELD"] and delivery_id is not None:
            # The secret rides in the URL: a provider that takes a URL per message seldom
            # lets us add a header to its receipts, and it is the provider's secret anyway.
            address = f"{self._callback}?delivery={delivery_id}"
            if self._signer is not None:
                address += f"&sig={self._signer.sign(delivery_id)}"
            fields[c["CALLBACK_FIELD"]] = address
        body, content_type = self._body(fields)
        headers = {"Content-Type": content_type, "Accept": "application/json"}
        if c["AUTH_VALUE"]:
            headers[c["AUTH_HEADER"]] = c["AUTH_VALUE"]
        if key and c["IDEMPOTENCY_HEADER"]:
            headers[c["IDEMPOTENCY_HEADER"]] = key
        # The URL's path is the endpoint: the connection was opened for its origin.
        answer = self._http.post("", body, headers)
        try:
            data: object = json.loads(answer.body)
        except ValueError:
            data = None
        if 200 <= answer.status < 300:
            gateway_id = dotted_get(data, c["ID_FIELD"])
            if isinstance(gateway_id, int | str) and str(gateway_id):
                return str(gateway_id)
            # Some providers answer 200 with a failure inside; it may also have been taken, so
            # retrying could send it twice.
            raise GatewayError(self._reason("http: answer without a message id", data), retry=False)
        raise answer_error(self._reason(f"http {answer.status}", data), answer)

    def _reason(self, prefix: str, data: object) -> str:
        explained = dotted_get(data, self.config["ERROR_FIELD"])
        if isinstance(explained, str | int) and str(explained).strip():
            return scrub(f"{prefix}: {explained}")
        return prefix

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
