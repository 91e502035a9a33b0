"""A fake SMS provider on 127.0.0.1, for tests, the benchmark and the crash test.

One threaded HTTP/1.1 server (kept-alive connections, Nagle off) speaks two protocols:

- the generic gateway's JSON protocol, at ``/sms``: ``{"to", "text", "from", "callback"}``
  with ``Authorization: Bearer <api key>``, answering ``{"messages": [{"id": …}]}``
  (:meth:`FakeSmsGateway.http_settings` is the matching ``HOMELINK_HTTP_SMS``);
- Twilio's ``/2010-04-01/Accounts/<sid>/Messages.json`` form POST with Basic auth, answering
  201 with a Message resource (:meth:`FakeSmsGateway.twilio_settings`).

It keeps what it accepted, honours ``Idempotency-Key`` (a repeated key answers with the first
id and is counted in :attr:`repeated_keys`, not as a second message), can fail, drop or answer
late the next requests on demand, can hold senders to a rate as real providers do (429 with
``Retry-After``), and can call our webhooks back with signed receipts. Numbers it is given
are never sent anywhere: it is the end of the line.

``python -m homelink.messaging.fakes [--rate R] [--latency S]`` runs one in its own process,
printing where it listens as one JSON line.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import hmac
import http.client
import itertools
import json
import math
import os
import re
import signal
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit

FailMode = Literal["transient", "permanent", "drop", "accept_then_drop", "slow"]

_TWILIO_PATH = re.compile(r"/2010-04-01/Accounts/([^/]+)/Messages\.json")
HTTP_PATH = "/sms"


def twilio_signature(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """X-Twilio-Signature for a POST of ``params`` to ``url``: base64 of HMAC-SHA1, keyed with the
    auth token, over the full URL followed by every parameter's name and value, by name.

    Written apart from the webhook's own check, so a mistake in one is caught by the other.
    """
    data = url
    for name in sorted(params):
        data += name + params[name]
    mac = hmac.new(auth_token.encode("utf-8"), data.encode("utf-8"), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode("ascii")


@dataclass(frozen=True)
class Accepted:
    """One message the fake took."""

    id: str
    protocol: Literal["http", "twilio"]
    to: str
    text: str
    sender: str
    key: str
    #: Where the sender asked receipts to go (Twilio's StatusCallback, our CALLBACK_FIELD).
    callback: str
    #: Wall-clock time (``time.time()``) it was taken, for humans and logs.
    received_at: float
    #: ``time.monotonic()`` at the same moment: intervals between messages are measured on
    #: this, because the wall clock can step while a test or the benchmark runs.
    received_monotonic: float = 0.0


@dataclass(frozen=True)
class _Failure:
    mode: FailMode
    reason: str
    #: Seconds a "slow" answer waits, in place of :attr:`FakeSmsGateway.latency`.
    delay: float = 0.0


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    fake: FakeSmsGateway

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that dies mid-request (the crash test kills workers) resets its
        # connections: that is the test working, not a traceback to print.
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    # An idle kept-alive connection is closed after this, as real providers do.
    timeout = 60
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.fake._opened(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.fake._closed(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        # The request line holds no numbers, but keep test output and benchmark logs clean.
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        self.server.fake._handle(self, body)

    def answer(self, status: int, data: object, headers: Mapping[str, str] | None = None) -> None:
        payload = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        try:
            self.end_headers()
            self.wfile.write(payload)
        except OSError:
            # The client gave up before a late answer (latency, slow_next) or the fake was
            # stopped: that is what those are for, not an error to print a traceback about.
            self.close_connection = True

    def hang_up(self) -> None:
        """Close without a word: the client cannot tell whether the message was taken."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


class FakeSmsGateway:
    """The fake provider; ``with FakeSmsGateway() as fake:`` or ``start()``/``stop()``.

    ``rate`` (messages per second, ``None`` for no limit) holds senders to it the way Twilio
    and the others do: a token bucket of one second's worth (``rate`` tokens, at least one),
    refilled continuously. A send that finds it empty gets 429 and is not taken, with a
    ``Retry-After`` of whole seconds unless ``retry_after`` is false (not every provider sends
    one, and a client must cope without). Every send that passes the checks of credentials and
    body takes a token, repeats of an idempotency key included: providers count API calls, not
    messages. ``rate`` and :attr:`latency` may be changed while the fake runs.
    """

    def __init__(
        self,
        *,
        account_sid: str = "AC" + "f" * 32,
        auth_token: str = "fake-twilio-auth-token",  # noqa: S107 - a fake's, known to tests
        api_key: str = "fake-api-key",
        receipt_secret: str = "fake-receipt-secret",  # noqa: S107
        latency: float = 0.0,
        rate: float | None = None,
        retry_after: bool = True,
    ) -> None:
        if rate is not None and rate <= 0:
            raise ValueError("rate must be positive, or None for no limit")
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.api_key = api_key
        self.receipt_secret = receipt_secret
        #: Seconds each answer waits, to stand in for a provider across the internet. Read
        #: per request, so it can be changed while the fake runs. A message is taken *before*
        #: the wait, so a latency longer than the client's timeout has the client time out on
        #: a message the provider already took: "it took it but answered late", which must
        #: not turn into a second copy on retry.
        self.latency = latency
        #: Messages per second the fake takes, or ``None`` for no limit.
        self.rate = rate
        #: Whether a 429 carries ``Retry-After``.
        self.retry_after = retry_after
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._ids = itertools.count(1)
        self._accepted: list[Accepted] = []
        self._by_key: dict[str, str] = {}
        self._failures: deque[_Failure] = deque()
        self._open: set[socket.socket] = set()
        self.repeated_keys = 0
        self.requests = 0
        self.connections = 0
        #: Sends refused with 429 by the rate limit.
        self.refused = 0
        # The bucket's tokens and when they were counted; None is a full bucket, so that a rate
        # set (or changed) after construction starts full rather than empty.
        self._tokens: float | None = None
        self._counted_at = 0.0

    # Life cycle

    def start(self) -> FakeSmsGateway:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.fake = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        self.drop_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeSmsGateway:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``, the base of both protocols."""
        if self._server is None:
            raise RuntimeError("the fake gateway is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # What it took

    @property
    def accepted(self) -> list[Accepted]:
        with self._lock:
            return list(self._accepted)

    @property
    def count(self) -> int:
        with self._lock:
            return len(self._accepted)

    def find(self, gateway_id: str) -> Accepted:
        with self._lock:
            for item in self._accepted:
                if item.id == gateway_id:
                    return item
        raise KeyError(gateway_id)

    def reset(self) -> None:
        with self._lock:
            self._accepted.clear()
            self._by_key.clear()
            self._failures.clear()
            self.repeated_keys = self.requests = self.refused = 0
            self._tokens = None

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        """Wait until at least ``count`` messages were taken; whether they were."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.count >= count:
                return True
            time.sleep(0.01)
        return self.count >= count

    def max_in_window(self, seconds: float = 1.0) -> int:
        """The most messages taken within any ``seconds`` (a half-open window, so a sender
        held to exactly N a second counts N, not N + 1).

        With a rate, this never exceeds one second's worth (the full bucket) plus ``rate *
        seconds``: what a test of a well-behaved sender, or of the limit itself, asserts.
        Repeats of an idempotency key are not messages and are not counted.
        """
        if seconds <= 0:
            return 0
        with self._lock:
            # Stamped and appended under the lock, so already in order: no sort needed.
            times = [item.received_monotonic for item in self._accepted]
        best = start = 0
        for end, at in enumerate(times):
            while at - times[start] >= seconds:
                start += 1
            best = max(best, end - start + 1)
        return best

    # Misbehaving on purpose

    def fail_next(self, n: int = 1, *, permanent: bool = False, reason: str = "") -> None:
        """The next ``n`` sends fail: 503 (transient), or 400 with ``reason`` (permanent)."""
        mode: FailMode = "permanent" if permanent else "transient"
        self._queue(n, mode, reason or ("invalid number" if permanent else "overloaded"))

    def drop_next(self, n: int = 1, *, after_accept: bool = False) -> None:
        """The next ``n`` sends get no answer: the connection is closed. ``after_accept``
        takes the message first (the provider took it, then died before answering)."""
        self._queue(n, "accept_then_drop" if after_accept else "drop", "")

    def slow_next(self, n: int, seconds: float) -> None:
        """The next ``n`` sends are taken, then answered after ``seconds`` instead of after
        :attr:`latency`: one late answer among prompt ones, e.g. longer than the client's
        timeout, so that the client gives up on a message the provider has.

        They share the queue with :meth:`fail_next` and :meth:`drop_next`, in the order asked
        for; a send the rate limit refuses uses none of them up, as it is not taken.
        """
        self._queue(n, "slow", "", delay=seconds)

    def _queue(self, n: int, mode: FailMode, reason: str, *, delay: float = 0.0) -> None:
        with self._lock:
            self._failures.extend(_Failure(mode, reason, delay) for _ in range(n))

    def drop_connections(self) -> None:
        """Close every open connection, as a provider's idle timeout or a restart would."""
        with self._lock:
            sockets = list(self._open)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._open)

    def _opened(self, sock: socket.socket) -> None:
        with self._lock:
            self.connections += 1
            self._open.add(sock)

    def _closed(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.discard(sock)

    # Settings that point our gateways here

    def http_settings(self, **overrides: Any) -> dict[str, Any]:
        """``HOMELINK_HTTP_SMS`` for this fake's JSON protocol."""
        config: dict[str, Any] = {
            "URL": self.url + HTTP_PATH,
            "FORMAT": "json",
            "AUTH_HEADER": "Authorization",
            "AUTH_VALUE": f"Bearer {self.api_key}",
            "TO_FIELD": "to",
            "TEXT_FIELD": "text",
            "SENDER_FIELD": "from",
            "ID_FIELD": "messages.0.id",
            "ERROR_FIELD": "error.message",
            "IDEMPOTENCY_HEADER": "Idempotency-Key",
            "CALLBACK_FIELD": "callback",
            "RECEIPT_SECRET": self.receipt_secret,
            "RECEIPT_ID_FIELD": "id",
            "RECEIPT_STATUS_FIELD": "status",
            "RECEIPT_REASON_FIELD": "error",
            "STATUS_MAP": {
                "ACCEPTD": "sent",
                "DELIVRD": "delivered",
                "UNDELIV": "failed",
                "EXPIRED": "failed",
                "REJECTD": "failed",
                "ENROUTE": "",
            },
        }
        config.update(overrides)
        return config

    def twilio_settings(self) -> dict[str, str]:
        """The ``HOMELINK_TWILIO_*`` settings for this fake."""
        return {
            "HOMELINK_TWILIO_ACCOUNT_SID": self.account_sid,
            "HOMELINK_TWILIO_AUTH_TOKEN": self.auth_token,
            "HOMELINK_TWILIO_FROM": "+447700900000",
            "HOMELINK_TWILIO_MESSAGING_SERVICE_SID": "",
            "HOMELINK_TWILIO_API_URL": self.url,
        }

    def environ(self, gateway: Literal["http", "twilio"] = "http") -> dict[str, str]:
        """Environment variables that point a separate process (a worker) here."""
        if gateway == "twilio":
            return {
                "HOMELINK_SMS_GATEWAY": "homelink.messaging.gateways.twilio.TwilioGateway",
                **self.twilio_settings(),
            }
        return {
            "HOMELINK_SMS_GATEWAY": "homelink.messaging.gateways.http.HttpGateway",
            "HOMELINK_HTTP_SMS": json.dumps(self.http_settings()),
        }

    # Receipts back to us

    def twilio_receipt(
        self, gateway_id: str, status: str, *, error_code: str = ""
    ) -> dict[str, str]:
        """The form Twilio posts to a StatusCallback for one of the messages it took."""
        item = self.find(gateway_id)
        params = {
            "AccountSid": self.account_sid,
            "ApiVersion": "2010-04-01",
            "From": item.sender,
            "MessageSid": item.id,
            "MessageStatus": status,
            "SmsSid": item.id,
            "SmsStatus": status,
            "To": item.to,
        }
        if error_code:
            params["ErrorCode"] = error_code
        return params

    def send_twilio_receipt(
        self, gateway_id: str, status: str, *, url: str = "", error_code: str = ""
    ) -> int:
        """POST a signed status callback to ``url`` (default: the message's StatusCallback);
        the HTTP status it got."""
        params = self.twilio_receipt(gateway_id, status, error_code=error_code)
        target = url or self.find(gateway_id).callback
        headers = {"X-Twilio-Signature": twilio_signature(self.auth_token, target, params)}
        return _post(
            target, urlencode(params).encode(), "application/x-www-form-urlencoded", headers
        )

    def http_receipt(self, gateway_id: str, status: str, *, error: str = "") -> dict[str, str]:
        receipt = {"id": gateway_id, "status": status}
        if error:
            receipt["error"] = error
        return receipt

    def send_http_receipt(
        self, gateway_id: str, status: str, *, url: str = "", error: str = ""
    ) -> int:
        """POST a JSON receipt with the shared secret to ``url`` (default: the callback the
        message carried); the HTTP status it got."""
        target = url or self.find(gateway_id).callback
        body = json.dumps(self.http_receipt(gateway_id, status, error=error)).encode()
        return _post(target, body, "application/json", {"X-Homelink-Secret": self.receipt_secret})

    # Serving

    def _handle(self, handler: _Handler, body: bytes) -> None:
        path = urlsplit(handler.path).path
        twilio = _TWILIO_PATH.fullmatch(path)
        with self._lock:
            self.requests += 1
        if twilio is None and path != HTTP_PATH:
            handler.answer(404, {"error": {"message": "no such endpoint"}})
            return
        protocol: Literal["http", "twilio"] = "twilio" if twilio else "http"
        if not self._authorised(handler, twilio.group(1) if twilio else None):
            handler.answer(401, _error(protocol, 20003, "Authenticate", 401))
            return
        try:
            fields = _fields(handler.headers.get("Content-Type", ""), body)
        except ValueError:
            handler.answer(400, _error(protocol, 20001, "malformed body"))
            return
        if protocol == "twilio":
            to, text = fields.get("To", ""), fields.get("Body", "")
            sender = fields.get("From", "") or fields.get("MessagingServiceSid", "")
            callback = fields.get("StatusCallback", "")
        else:
            to, text = fields.get("to", ""), fields.get("text", "")
            sender, callback = fields.get("from", ""), fields.get("callback", "")
        # E.164, or its digits alone as some providers want them.
        if not re.fullmatch(r"\+?[1-9]\d{6,14}", to):
            handler.answer(
                400, _error(protocol, 21211, "The 'To' number is not a valid phone number.")
            )
            return
        # Twilio needs a From or a messaging service; generic providers have an account default.
        if not text or (protocol == "twilio" and not sender):
            handler.answer(400, _error(protocol, 21602, "Message body and sender are required."))
            return
        key = handler.headers.get("Idempotency-Key", "")
        # Read once: it may be changed while this request is in flight.
        latency = self.latency
        failure: _Failure | None = None
        with self._lock:
            wait = self._take_token()
            if wait is not None:
                self.refused += 1
            else:
                failure = self._failures.popleft() if self._failures else None
                if failure is None or failure.mode in {"accept_then_drop", "slow"}:
                    first = self._by_key.get(key) if key else None
                    if first is not None:
                        self.repeated_keys += 1
                        gateway_id = first
                    else:
                        gateway_id = self._new_id(protocol)
                        self._accepted.append(
                            Accepted(
                                gateway_id,
                                protocol,
                                to,
                                text,
                                sender,
                                key,
                                callback,
                                time.time(),
                                time.monotonic(),
                            )
                        )
                        if key:
                            self._by_key[key] = gateway_id
        if wait is not None:
            # A refusal crosses the same internet as an acceptance.
            if latency:
                time.sleep(latency)
            headers = {"Retry-After": str(max(1, math.ceil(wait)))} if self.retry_after else {}
            if protocol == "twilio":
                refusal = _error(protocol, 20429, "Too Many Requests", 429)
            else:
                refusal = _error(protocol, 429, "rate limit exceeded", 429)
            handler.answer(429, refusal, headers)
            return
        if failure is not None and failure.mode == "slow":
            latency, failure = failure.delay, None
        if latency:
            time.sleep(latency)
        if failure is not None:
            if failure.mode in {"drop", "accept_then_drop"}:
                handler.hang_up()
            elif failure.mode == "transient":
                handler.answer(503, _error(protocol, 20503, failure.reason, 503))
            else:
                handler.answer(400, _error(protocol, 21211, failure.reason))
            return
        if protocol == "twilio":
            handler.answer(
                201,
                {
                    "sid": gateway_id,
                    "account_sid": self.account_sid,
                    "to": to,
                    "from": sender,
                    "body": text,
                    "status": "queued",
                    "num_segments": "1",
                    "api_version": "2010-04-01",
                },
            )
        else:
            handler.answer(200, {"messages": [{"id": gateway_id, "status": "accepted"}]})

    def _take_token(self) -> float | None:
        """Spend one token of the rate limit: None if there was one, else the seconds until
        there will be. Called with the lock held."""
        rate = self.rate
        if rate is None:
            return None
        now = time.monotonic()
        # One second's worth, but at least one: a rate under 1/s must still let a send through.
        capacity = max(rate, 1.0)
        if self._tokens is None:
            tokens = capacity
        else:
            tokens = min(capacity, self._tokens + (now - self._counted_at) * rate)
        self._counted_at = now
        if tokens >= 1.0:
            self._tokens = tokens - 1.0
            return None
        self._tokens = tokens
        return (1.0 - tokens) / rate

    def _new_id(self, protocol: str) -> str:
        n = next(self._ids)
        if protocol == "twilio":
            return "SM" + hashlib.md5(f"{id(self)}-{n}".encode(), usedforsecurity=False).hexdigest()
        return f"fake-{n:08d}"

    def _authorised(self, handler: _Handler, account_sid: str | None) -> bool:
        given = handler.headers.get("Authorization", "")
        if account_sid is None:
            expected = f"Bearer {self.api_key}"
        else:
            if account_sid != self.account_sid:
                return False
            pair = f"{self.account_sid}:{self.auth_token}".encode()
            expected = "Basic " + base64.b64encode(pair).decode("ascii")
        return hmac.compare_digest(given.encode(), expected.encode())


def _error(protocol: str, code: int, message: str, status: int = 400) -> dict[str, Any]:
    if protocol == "twilio":
        return {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        }
    return {"error": {"code": code, "message": message}}


def _fields(content_type: str, body: bytes) -> dict[str, str]:
    if content_type.split(";")[0].strip() == "application/json":
        data = json.loads(body)
        if not isinstance(data, dict):
            raise ValueError("not an object")
        return {str(k): "" if v is None else str(v) for k, v in data.items()}
    return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))


def _post(url: str, body: bytes, content_type: str, headers: dict[str, str]) -> int:
    parts = urlsplit(url)
    conn_class = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    conn = conn_class(parts.hostname or "", parts.port, timeout=30)
    try:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        conn.request("POST", target, body=body, headers={"Content-Type": content_type, **headers})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def main(argv: list[str] | None = None) -> None:
    """Run a fake provider in this process until SIGTERM, Ctrl-C or the end of stdin.

    Prints one JSON line first, ``{"http": …, "twilio": …, "url": …}``: the environment that
    points a worker at either protocol, and the base URL. Ending with stdin lets a parent that
    dies without a word take the fake with it (its end of the pipe closes); start it with
    stdin from a pipe, not from ``/dev/null``, or it stops at once.
    """
    parser = argparse.ArgumentParser(
        prog="python -m homelink.messaging.fakes", description=main.__doc__
    )
    parser.add_argument("--rate", type=float, default=None, help="messages per second")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per answer")
    args = parser.parse_args(argv)
    if args.rate is not None and args.rate <= 0:
        parser.error("--rate must be positive")

    def terminated(signum: int, frame: FrameType | None) -> None:
        # Unwinds the read below, so that the server is stopped in the finally.
        raise SystemExit(0)

    previous = signal.signal(signal.SIGTERM, terminated)
    fake = FakeSmsGateway(rate=args.rate, latency=args.latency).start()
    try:
        print(
            json.dumps(
                {"http": fake.environ("http"), "twilio": fake.environ("twilio"), "url": fake.url}
            ),
            flush=True,
        )
        with contextlib.suppress(KeyboardInterrupt):
            if sys.stdin is None:
                threading.Event().wait()
            else:
                # os.read returns what is there: stdin.read() would wait for a full buffer.
                while os.read(sys.stdin.fileno(), 65536):
                    pass
    finally:
        fake.stop()
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    main()
