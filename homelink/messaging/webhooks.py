"""What SMS providers call us with: delivery receipts and inbound texts.

Every hook proves who is calling before anything changes: Twilio signs each request
(X-Twilio-Signature over our public URL and the POST parameters), the generic gateway sends a
shared secret. The URL signed is rebuilt from ``HOMELINK_PUBLIC_URL``, not from the request's
Host header, which whoever calls us controls. Nothing here logs a number or a text.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseForbidden
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST

from homelink.messaging.gateways.base import delivery_signature, scrub
from homelink.messaging.gateways.http import dotted_get, http_sms_config
from homelink.messaging.inbound import inbound_sms_receive
from homelink.messaging.receipts import TWILIO_STATUS, receipt_record, twilio_reason

log = logging.getLogger(__name__)

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


def public_url(request: HttpRequest) -> str:
    """The URL the provider was given for this request: our public address, path and query."""
    url = settings.HOMELINK_PUBLIC_URL.rstrip("/") + request.path_info
    query = request.META.get("QUERY_STRING", "")
    return f"{url}?{query}" if query else url


def twilio_signature(auth_token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """Twilio's scheme: HMAC-SHA1 over the URL, then each parameter's name and value, sorted
    (a value repeated under one name counts once, as in Twilio's own libraries)."""
    signed = url + "".join(name + value for name, value in sorted(set(params)))
    digest = hmac.new(auth_token.encode(), signed.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def _with_and_without_port(url: str) -> list[str]:
    """Twilio has signed both ways over the years when the port is the scheme's default."""
    parts = urlsplit(url)
    default = {"https": 443, "http": 80}.get(parts.scheme)
    host = parts.hostname or ""
    if default is None or parts.port not in {None, default}:
        return [url]
    bare = urlunsplit(parts._replace(netloc=host))
    with_port = urlunsplit(parts._replace(netloc=f"{host}:{default}"))
    return [bare, with_port]


def twilio_request_valid(request: HttpRequest) -> bool:
    token = settings.HOMELINK_TWILIO_AUTH_TOKEN
    given = request.headers.get("X-Twilio-Signature", "")
    if not token or not given:
        return False
    params = [(k, v) for k, values in request.POST.lists() for v in values]
    return any(
        hmac.compare_digest(twilio_signature(token, url, params).encode(), given.encode())
        for url in _with_and_without_port(public_url(request))
    )


def webhook(view: Callable[[HttpRequest], HttpResponse]) -> Callable[[HttpRequest], HttpResponse]:
    """What every provider-facing view is: POST only, no CSRF token (the provider proves itself
    by a signature or a secret instead), and its numbers and texts kept out of error reports."""
    return csrf_exempt(require_POST(sensitive_post_parameters()(view)))


def _delivery_id(request: HttpRequest) -> int | None:
    """The delivery the callback URL names (``?delivery=``); ValueError if it is not a number."""
    raw = request.GET.get("delivery", "")
    return int(raw) if raw else None


@webhook
def twilio_status(request: HttpRequest) -> HttpResponse:
    if not twilio_request_valid(request):
        log.warning("twilio status callback refused: bad or missing signature")
        return HttpResponseForbidden()
    sid = request.POST.get("MessageSid", "") or request.POST.get("SmsSid", "")
    raw_status = request.POST.get("MessageStatus", "") or request.POST.get("SmsStatus", "")
    try:
        delivery_id = _delivery_id(request)
    except ValueError:
        return HttpResponseBadRequest()
    if not sid or not raw_status or raw_status not in TWILIO_STATUS:
        return HttpResponseBadRequest()
    status = TWILIO_STATUS[raw_status]
    if status is not None:
        reason = twilio_reason(request.POST.get("ErrorCode", "")) if status == "failed" else ""
        receipt_record(
            gateway="twilio",
            gateway_id=sid,
            status=status,
            reason=reason,
            delivery_id=delivery_id,
        )
    # Answered alike whether or not it changed anything, so Twilio stops retrying it.
    return HttpResponse(status=204)


@webhook
def twilio_inbound(request: HttpRequest) -> HttpResponse:
    if not twilio_request_valid(request):
        log.warning("twilio inbound SMS refused: bad or missing signature")
        return HttpResponseForbidden()
    from_number = request.POST.get("From", "")
    if not from_number or "Body" not in request.POST:
        return HttpResponseBadRequest()
    inbound_sms_receive(
        from_number=from_number,
        to_number=request.POST.get("To", ""),
        text=request.POST["Body"],
        gateway_id=request.POST.get("MessageSid", "") or request.POST.get("SmsSid", ""),
    )
    # An empty TwiML answer: no automatic reply (Twilio's own opt-out replies still apply).
    return HttpResponse(EMPTY_TWIML, content_type="text/xml")


def _receipt_items(request: HttpRequest) -> list[object]:
    """The receipts in the body: a JSON object or list of objects, or one form."""
    if request.content_type == "application/json":
        data = json.loads(request.body)
        items = data if isinstance(data, list) else [data]
        if not items or not all(isinstance(item, dict) for item in items):
            raise ValueError("not a receipt")
        return items
    return [request.POST.dict()]


def _receipt_allowed(request: HttpRequest, secret: str, delivery_id: int | None) -> bool:
    """The provider's shared secret (a header, or ``?secret=`` for providers configured with one
    fixed address), or the signature our per-message address carries for its one delivery."""
    given = request.headers.get("X-Homelink-Secret", "") or request.GET.get("secret", "")
    if given and hmac.compare_digest(given.encode(), secret.encode()):
        return True
    signature = request.GET.get("sig", "")
    return (
        delivery_id is not None
        and bool(signature)
        and hmac.compare_digest(
            signature.encode(), delivery_signature(secret, delivery_id).encode()
        )
    )


@webhook
def sms_status(request: HttpRequest) -> HttpResponse:
    """Receipts for the generic HTTP gateway, named as ``HOMELINK_HTTP_SMS`` says."""
    config = http_sms_config()
    secret = str(config["RECEIPT_SECRET"])
    try:
        delivery_id = _delivery_id(request)
    except ValueError:
        return HttpResponseBadRequest()
    if not secret or not _receipt_allowed(request, secret, delivery_id):
        log.warning("SMS receipt refused: bad or missing secret")
        return HttpResponseForbidden()
    try:
        items = _receipt_items(request)
    except ValueError:
        return HttpResponseBadRequest()
    status_map: dict[str, str] = config["STATUS_MAP"]
    lowered = {str(k).lower(): v for k, v in status_map.items()}
    receipts = []
    for item in items:
        gateway_id = dotted_get(item, config["RECEIPT_ID_FIELD"])
        raw_status = dotted_get(item, config["RECEIPT_STATUS_FIELD"])
        if not isinstance(raw_status, str | int) or not str(raw_status):
            return HttpResponseBadRequest()
        if not isinstance(gateway_id, str | int) or not str(gateway_id):
            if delivery_id is None:
                return HttpResponseBadRequest()
            gateway_id = ""
        reason = dotted_get(item, config["RECEIPT_REASON_FIELD"])
        raw = str(raw_status)
        status = status_map.get(raw, lowered.get(raw.lower(), ""))
        receipts.append((str(gateway_id), status, str(reason or "")))
    # Checked in full before any is recorded, so a malformed batch changes nothing.
    for gateway_id, status, reason in receipts:
        if status:
            receipt_record(
                gateway="http",
                gateway_id=gateway_id,
                status=status,
                reason=scrub(f"http: {reason}") if reason else "http: not delivered",
                delivery_id=delivery_id,
            )
    return HttpResponse(status=204)
