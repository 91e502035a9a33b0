"""A fake OneRoster 1.1 / 1.2 REST server on 127.0.0.1, for tests and the benchmark.

:class:`FakeOneRoster` is the remote end of :mod:`homelink.sync.sources.oneroster_api`: a real
threaded HTTP/1.1 server (kept-alive connections) that speaks the OneRoster rostering REST
binding as far as homelink reads it, so the source is exercised over real sockets and nothing of
ours is mocked::

    with FakeOneRoster(version="1.2") as fake:
        fake.add_school(students=40)          # or FakeOneRoster.from_csv_folder(path)
        config.url, config.token_url = fake.url, fake.token_url
        config.client_id, secret = fake.client_id, fake.client_secret

What it serves (``fake.url`` is the base: ``…/ims/oneroster/v1p1`` or
``…/ims/oneroster/rostering/v1p2``):

* ``POST fake.token_url`` (``/oauth/token``; also ``<url>/token``): OAuth 2.0 client credentials,
  the client authenticated by HTTP Basic or by ``client_id``/``client_secret`` form fields
  (:attr:`FakeOneRoster.auth_methods` says which it accepts). Tokens live
  :attr:`~FakeOneRoster.token_lifetime` seconds; :meth:`~FakeOneRoster.expire_tokens` ends
  them all at once. A scope is recorded; :attr:`~FakeOneRoster.scopes`, when set, is the only
  scopes it grants (anything else is ``invalid_scope``).
* ``GET orgs``, ``users``, ``classes``, ``enrollments`` with ``limit`` (default 100, as the
  specification says; capped at :attr:`~FakeOneRoster.max_limit` when set) and ``offset``,
  the total in ``X-Total-Count`` (unless :attr:`~FakeOneRoster.total_count` is off), and an
  honest ``filter``: ``dateLastModified`` compared (``>``, ``>=``, ``<``, ``<=``) as a time, or
  ``status`` (``=``, ``!=``); other filters are a 400, as a strict server answers (every
  filter is, with :attr:`~FakeOneRoster.supports_filter` off).
* ``GET users/{sourcedId}`` (``{"user": …}``, 404 when there is no such user).

The data are the public lists :attr:`~FakeOneRoster.orgs`, :attr:`~FakeOneRoster.users`,
:attr:`~FakeOneRoster.classes` and :attr:`~FakeOneRoster.enrollments`, in REST JSON shape for
the fake's version (1.1: a user has ``role`` and ``orgs``; 1.2: ``roles`` with
``roleType``/``role``/``org``, and ``primaryOrg``), each with ``dateLastModified``. Change them
between syncs (a changed record should be :meth:`~FakeOneRoster.touch`-ed, as a real server
stamps it). They are served in list order.

Faults are scripted per endpoint with :meth:`~FakeOneRoster.fault`: the next ``times`` requests
(after skipping ``after``) get a status (5xx, 403…), a 429 with ``Retry-After``, a redirect, a
body cut short mid-stream, a body that is not JSON, a page missing its last records or one from
its middle, an empty page though the total says more, a dropped connection, a late answer,
every token expired first, or a header that should be a number and is not (``"²"``).
:attr:`~FakeOneRoster.requests` logs what was asked (method, endpoint, query, status, how the
client authenticated: never a secret or a token).

Data builders: :meth:`~FakeOneRoster.from_csv_folder` loads a OneRoster CSV folder (the in-tree
fixtures under ``homelink/mis/tests/data/oneroster_*``) into REST shape, so tests can show that
the REST source and the CSV reader give the same records; :meth:`~FakeOneRoster.add_school`
builds a real-shaped synthetic school (homerooms, siblings sharing parents, links on both sides,
unique fictional numbers from Ofcom's drama range and the rest of the 07700 9 block, emails at
example.org).

A trust's tenant is :meth:`~FakeOneRoster.add_school` called once per school, each with its
own ``org``, ``name``, ``identifier`` and sourcedId ``prefix``. With ``tls=`` (a server-side
context from :func:`tls_for`, whose authority a client trusts through ``SSL_CERT_FILE``) the
fake speaks https.

For the benchmark: ``add_school(students=20_000, contacts_per_student=2, siblings=0.0)`` gives
20,000 students and 40,000 contacts (plus a teacher per homeroom); with pages of 1,000 a full
sync is about 60 pages of users, served in well under a second each. Unfiltered pages are plain
slices; a filtered request scans the whole list (dates are parsed once and memoised), so a delta
over 60,000 users costs a few milliseconds a page. ``latency`` adds a fixed delay to every answer
to stand in for a server across the internet.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import datetime as dt
import functools
import json
import random
import re
import secrets
import socket
import ssl
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote, unquote_plus, urlsplit

__all__ = ["FakeOneRoster", "FaultKind", "Logged", "rest_time", "tls_for"]

FaultKind = Literal[
    "status",
    "429",
    "redirect",
    "truncate",
    "garbage",
    "short",
    "lose",
    "empty",
    "drop",
    "slow",
    "expire_tokens",
    "header",
]
COLLECTIONS = ("orgs", "users", "classes", "enrollments")
DEFAULT_DATE = "2024-01-01T00:00:00.000Z"
CONTACT_ROLES = ("parent", "guardian", "relative")


def rest_time(when: dt.datetime) -> str:
    """A time as OneRoster REST writes ``dateLastModified``: ISO 8601, UTC, milliseconds."""
    return when.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def tls_for(host: str, folder: Path) -> tuple[ssl.SSLContext, Path]:
    """A certificate for ``host`` from a throw-away certificate authority: the server-side TLS
    context for :class:`FakeOneRoster` (``tls=``), and the authority's PEM file, which a client
    trusts through ``SSL_CERT_FILE`` (as ``ssl.create_default_context()`` reads it)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)

    def certificate(
        subject: str, key: Any, issuer: Any, signer: Any, *, authority: bool
    ) -> x509.Certificate:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(issuer or name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=authority, path_length=None), critical=True)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()),
                critical=False,
            )
        )
        if authority:
            builder = builder.add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
        else:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False
            ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        return builder.sign(signer, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = certificate("homelink test authority", ca_key, None, ca_key, authority=True)
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = certificate(host, key, ca.subject, ca_key, authority=False)
    pem = serialization.Encoding.PEM
    (folder / "ca.pem").write_bytes(ca.public_bytes(pem))
    (folder / "server.pem").write_bytes(leaf.public_bytes(pem))
    (folder / "server.key").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / "server.pem", folder / "server.key")
    return context, folder / "ca.pem"


@functools.lru_cache(maxsize=65536)
def _when(text: str) -> dt.datetime:
    """A record's or a filter's time; unreadable is the distant past (never "changed")."""
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        return dt.datetime.min.replace(tzinfo=dt.UTC)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class Logged:
    """One request the fake answered."""

    method: str
    #: "token", "orgs", "users", "classes", "enrollments", "user" (users/{id}), or "" (unknown).
    endpoint: str
    path: str
    params: dict[str, str]
    status: int
    #: How the client authenticated: "basic", "form", "bearer", "bearer-invalid" or "none".
    auth: str


@dataclass
class _Fault:
    endpoint: str
    kind: FaultKind
    times: int
    after: int
    status: int
    retry_after: str
    location: str
    delay: float
    drop: int
    header: tuple[str, str]


_FILTER = re.compile(r"^\s*(\w+)\s*(>=|<=|!=|>|<|=)\s*'([^']*)'\s*$")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64
    fake: FakeOneRoster

    def get_request(self) -> tuple[Any, Any]:
        sock, address = super().get_request()
        if self.fake.tls is not None:
            # The handshake is made in the request's own thread (_Handler.setup), so that a
            # client refusing the certificate holds up no other.
            sock = self.fake.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gives up mid-answer (a timeout test), or refuses the certificate (a
        # TLS test), is the test working.
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError | ssl.SSLError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    timeout = 30
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test and benchmark output clean

    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(self.timeout)
            self.request.do_handshake()
        super().setup()

    def do_GET(self) -> None:
        self.server.fake._handle(self, "GET", b"")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.server.fake._handle(self, "POST", self.rfile.read(length))

    def answer(
        self,
        status: int,
        payload: bytes,
        *,
        headers: Mapping[str, str] | None = None,
        content_type: str = "application/json",
        cut: bool = False,
    ) -> None:
        self.send_response(status)
        headers = {"Content-Length": str(len(payload)), **(headers or {})}
        self.send_header("Content-Type", content_type)
        for name, value in headers.items():
            self.send_header(name, value)
        try:
            self.end_headers()
            # "cut": the promised length never arrives; the connection closes half-way.
            self.wfile.write(payload[: len(payload) // 2] if cut else payload)
            self.wfile.flush()
        except OSError:
            self.close_connection = True
        if cut:
            self.hang_up()

    def hang_up(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


class FakeOneRoster:
    """The fake server; ``with FakeOneRoster() as fake:`` or :meth:`start`/:meth:`stop`.

    ``version`` "1.1" or "1.2" sets the base path and the shape :meth:`add_school` and
    :meth:`from_csv_folder` build (the lists themselves are served as they are).
    """

    def __init__(
        self,
        *,
        version: str = "1.1",
        client_id: str = "homelink-test-client",
        client_secret: str = "fake-oneroster-client-secret",  # noqa: S107 - a fake's, known to tests
        token_lifetime: float = 3600,
        latency: float = 0.0,
        max_limit: int | None = None,
        total_count: bool = True,
        auth_methods: tuple[str, ...] = ("basic", "form"),
        tls: ssl.SSLContext | None = None,
    ) -> None:
        if version not in ("1.1", "1.2"):
            raise ValueError("version is 1.1 or 1.2")
        self.version = version
        self.base_path = (
            "/ims/oneroster/rostering/v1p2" if version == "1.2" else "/ims/oneroster/v1p1"
        )
        self.token_path = "/oauth/token"  # noqa: S105 - a path, not a secret
        self.client_id = client_id
        self.client_secret = client_secret
        #: Seconds a token lives (``expires_in``); read when a token is issued.
        self.token_lifetime = token_lifetime
        #: Seconds every answer waits first.
        self.latency = latency
        #: The most records a page holds whatever ``limit`` asks (real servers cap it).
        self.max_limit = max_limit
        #: Whether list answers carry ``X-Total-Count``.
        self.total_count = total_count
        #: How clients may authenticate at the token endpoint: "basic" and/or "form".
        self.auth_methods = auth_methods
        #: A server-side TLS context (:func:`tls_for`): https:// instead of http://.
        self.tls = tls
        #: When set, the only scopes granted; a token request asking for another is refused.
        self.scopes: set[str] | None = None
        #: False: any ``filter`` is a 400, as from a server that implements none.
        self.supports_filter = True
        self.orgs: list[dict[str, Any]] = []
        self.users: list[dict[str, Any]] = []
        self.classes: list[dict[str, Any]] = []
        self.enrollments: list[dict[str, Any]] = []
        #: Every request answered, in order.
        self.requests: list[Logged] = []
        #: The scope of each token request ("" when none was asked for).
        self.token_scopes: list[str] = []
        #: Every access token issued, so tests can check none leaks into a message.
        self.issued: list[str] = []
        self._tokens: dict[str, float] = {}
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeOneRoster:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.fake = self
        self._server = server
        # A short poll: stop() waits for it, and tests start and stop many servers.
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.02,), name="fake-oneroster", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeOneRoster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def origin(self) -> str:
        if self._server is None:
            raise RuntimeError("the fake OneRoster server is not started")
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self._server.server_address[1]}"

    @property
    def url(self) -> str:
        """The OneRoster base URL a school would enter."""
        return self.origin + self.base_path

    @property
    def token_url(self) -> str:
        return self.origin + self.token_path

    # ------------------------------------------------------------------ control

    def expire_tokens(self) -> None:
        """End every token issued so far: the next request with one gets 401."""
        with self._lock:
            self._tokens.clear()

    def fault(
        self,
        endpoint: str,
        kind: FaultKind,
        *,
        times: int = 1,
        after: int = 0,
        status: int = 503,
        retry_after: str = "1",
        location: str = "http://127.0.0.1:9/elsewhere",
        delay: float = 1.0,
        drop: int = 1,
        header: tuple[str, str] = ("X-Total-Count", "\u00b2"),
    ) -> None:
        """Answer the next ``times`` requests to ``endpoint`` ("users", "user", "token", …,
        or "*" for any) badly, after letting ``after`` of them through. ``status`` is for
        "status", ``retry_after`` for "429" (seconds or an HTTP date), ``location`` for
        "redirect", ``delay`` for "slow", ``drop`` for "short" (records missing from the end),
        ``header`` for "header" (a list page's header, sent instead of the true one:
        ``Content-Length`` or ``X-Total-Count``, by default a "²", which passes
        ``str.isdigit()`` and no number parser).
        """
        with self._lock:
            self._faults.append(
                _Fault(
                    endpoint,
                    kind,
                    times,
                    after,
                    status,
                    retry_after,
                    location,
                    delay,
                    drop,
                    header,
                )
            )

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def requests_to(self, endpoint: str) -> list[Logged]:
        with self._lock:
            return [r for r in self.requests if r.endpoint == endpoint]

    def clear_log(self) -> None:
        with self._lock:
            self.requests.clear()
            self.token_scopes.clear()

    def touch(self, record: dict[str, Any], when: dt.datetime | None = None) -> None:
        """Stamp a changed record, as a server does (now, unless ``when``)."""
        record["dateLastModified"] = rest_time(when or dt.datetime.now(dt.UTC))

    def user(self, sourced_id: str) -> dict[str, Any]:
        """The user with this sourcedId (KeyError if none)."""
        found = self._user_index().get(sourced_id)
        if found is None:
            raise KeyError(sourced_id)
        return found

    # ------------------------------------------------------------------ serving

    def _take_fault(self, endpoint: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.endpoint not in (endpoint, "*"):
                    continue
                if fault.after > 0:
                    fault.after -= 1
                    continue
                fault.times -= 1
                if fault.times <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    def _log(
        self, method: str, endpoint: str, path: str, params: dict[str, str], status: int, auth: str
    ) -> None:
        with self._lock:
            self.requests.append(Logged(method, endpoint, path, params, status, auth))

    def _endpoint(self, method: str, path: str) -> tuple[str, str]:
        """(endpoint, sourcedId for users/{id})."""
        if method == "POST" and path in (self.token_path, self.base_path + "/token"):
            return "token", ""
        if method != "GET" or not path.startswith(self.base_path + "/"):
            return "", ""
        parts = path[len(self.base_path) + 1 :].split("/")
        if len(parts) == 1 and parts[0] in COLLECTIONS:
            return parts[0], ""
        if len(parts) == 2 and parts[0] == "users" and parts[1]:
            return "user", unquote(parts[1])
        return "", ""

    def _handle(self, handler: _Handler, method: str, body: bytes) -> None:
        if self.latency:
            time.sleep(self.latency)
        split = urlsplit(handler.path)
        params = dict(parse_qsl(split.query, keep_blank_values=True))
        endpoint, sourced_id = self._endpoint(method, split.path)
        fault = self._take_fault(endpoint) if endpoint else None
        if fault is not None and fault.kind == "expire_tokens":
            self.expire_tokens()
            fault = None
        if fault is not None and fault.kind == "slow":
            time.sleep(fault.delay)
            fault = None

        def log(status: int, auth: str) -> None:
            self._log(method, endpoint, split.path, params, status, auth)

        if fault is not None and fault.kind == "drop":
            log(0, "none")
            handler.hang_up()
            return
        if fault is not None and fault.kind in ("status", "429", "redirect"):
            headers: dict[str, str] = {}
            status = fault.status
            if fault.kind == "429":
                status, headers["Retry-After"] = 429, fault.retry_after
            elif fault.kind == "redirect":
                status, headers["Location"] = 302, fault.location
            log(status, "none")
            handler.answer(status, _error(f"fault {status}"), headers=headers)
            return
        if endpoint == "token":
            status, auth, payload, headers = self._token(handler, body)
            log(status, auth)
            handler.answer(status, payload, headers=headers)
            return
        if not endpoint:
            log(404, "none")
            handler.answer(404, _error("no such endpoint"))
            return
        if not self._authorised(handler):
            log(401, "bearer-invalid")
            handler.answer(
                401,
                _error("invalid or expired access token"),
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
            return
        if endpoint == "user":
            user = self._user_index().get(sourced_id)
            status = 200 if user is not None else 404
            log(status, "bearer")
            handler.answer(
                status, json.dumps({"user": user}).encode() if user else _error("no such user")
            )
            return
        try:
            page, total = self._page(endpoint, params)
        except ValueError as exc:
            log(400, "bearer")
            handler.answer(400, _error(str(exc)))
            return
        if fault is not None and fault.kind == "short":
            page = page[: max(0, len(page) - fault.drop)]
        elif fault is not None and fault.kind == "lose" and page:
            page = page[: len(page) // 2] + page[len(page) // 2 + 1 :]
        elif fault is not None and fault.kind == "empty":
            page = []
        headers = {"X-Total-Count": str(total)} if self.total_count else {}
        if fault is not None and fault.kind == "header":
            headers[fault.header[0]] = fault.header[1]
        log(200, "bearer")
        if fault is not None and fault.kind == "garbage":
            handler.answer(
                200,
                b"<html><body><h1>Service temporarily unavailable</h1></body></html>",
                headers=headers,
                content_type="text/html",
            )
            return
        payload = json.dumps({endpoint: page}, separators=(",", ":")).encode()
        handler.answer(
            200, payload, headers=headers, cut=fault is not None and fault.kind == "truncate"
        )

    def _token(self, handler: _Handler, body: bytes) -> tuple[int, str, bytes, dict[str, str]]:
        form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        header = handler.headers.get("Authorization", "")
        auth, client, secret = "none", "", ""
        if header.lower().startswith("basic "):
            auth = "basic"
            try:
                decoded = base64.b64decode(header[6:].strip()).decode()
                raw_client, _, raw_secret = decoded.partition(":")
                client, secret = unquote_plus(raw_client), unquote_plus(raw_secret)
            except ValueError:
                pass
        elif "client_id" in form:
            auth = "form"
            client, secret = form.get("client_id", ""), form.get("client_secret", "")
        ok = (
            auth in self.auth_methods
            and secrets.compare_digest(client.encode(), self.client_id.encode())
            and secrets.compare_digest(secret.encode(), self.client_secret.encode())
        )
        if not ok:
            # RFC 6749 §5.2: 401 when the client tried the Authorization header, else 400.
            status = 401 if auth == "basic" else 400
            headers = {"WWW-Authenticate": 'Basic realm="oneroster"'} if status == 401 else {}
            return status, auth, json.dumps({"error": "invalid_client"}).encode(), headers
        if form.get("grant_type") != "client_credentials":
            return 400, auth, json.dumps({"error": "unsupported_grant_type"}).encode(), {}
        scope = form.get("scope", "")
        with self._lock:
            self.token_scopes.append(scope)
        if scope and self.scopes is not None and not set(scope.split()) <= self.scopes:
            return 400, auth, json.dumps({"error": "invalid_scope"}).encode(), {}
        token = secrets.token_urlsafe(24)
        lifetime = self.token_lifetime
        with self._lock:
            self._tokens[token] = time.monotonic() + lifetime
            self.issued.append(token)
        answer: dict[str, Any] = {
            "access_token": token,
            "token_type": "bearer",
            "expires_in": int(lifetime) if float(lifetime).is_integer() else lifetime,
        }
        if scope:
            answer["scope"] = scope
        return 200, auth, json.dumps(answer).encode(), {"Cache-Control": "no-store"}

    def _authorised(self, handler: _Handler) -> bool:
        header = handler.headers.get("Authorization", "")
        if not header.lower().startswith("bearer "):
            return False
        token = header[7:].strip()
        with self._lock:
            expires = self._tokens.get(token)
            if expires is None:
                return False
            if time.monotonic() >= expires:
                del self._tokens[token]
                return False
            return True

    def _user_index(self) -> dict[str, dict[str, Any]]:
        # Built afresh (a few milliseconds for 60,000 users): the lists may change any time.
        return {u["sourcedId"]: u for u in self.users}

    def _page(self, endpoint: str, params: dict[str, str]) -> tuple[list[dict[str, Any]], int]:
        records: list[dict[str, Any]] = getattr(self, endpoint)
        try:
            limit = int(params.get("limit", "100"))
            offset = int(params.get("offset", "0"))
        except ValueError:
            raise ValueError("limit and offset must be whole numbers") from None
        if limit < 1 or offset < 0:
            raise ValueError("limit must be at least 1 and offset at least 0")
        if self.max_limit is not None:
            limit = min(limit, self.max_limit)
        if "filter" in params:
            if not self.supports_filter:
                raise ValueError("filter is not supported")
            records = _filtered(records, params["filter"])
        return records[offset : offset + limit], len(records)

    # ------------------------------------------------------------------ data builders

    def user_record(
        self,
        sourced_id: str,
        role: str,
        *,
        given: str,
        family: str,
        org: str = "org-1",
        identifier: str = "",
        email: str = "",
        sms: str = "",
        phone: str = "",
        agents: tuple[str, ...] = (),
        grades: tuple[str, ...] = (),
        status: str = "active",
        enabled: bool = True,
        modified: str = DEFAULT_DATE,
    ) -> dict[str, Any]:
        """A user in REST shape for this fake's version (not added: append it to ``users``)."""
        user: dict[str, Any] = {
            "sourcedId": sourced_id,
            "status": status,
            "dateLastModified": modified,
            "username": "",
            "enabledUser": "true" if enabled else "false",
            "givenName": given,
            "familyName": family,
            "middleName": "",
            "identifier": identifier,
            "email": email,
            "sms": sms,
            "phone": phone,
            "agents": [self._ref("users", a, "user") for a in agents],
            "grades": list(grades),
        }
        if self.version == "1.2":
            user["roles"] = [
                {"roleType": "primary", "role": role, "org": self._ref("orgs", org, "org")}
            ]
            user["primaryOrg"] = self._ref("orgs", org, "org")
        else:
            user["role"] = role
            user["orgs"] = [self._ref("orgs", org, "org")]
        return user

    def _ref(self, collection: str, sourced_id: str, kind: str) -> dict[str, str]:
        return {
            "href": f"{self.base_path}/{collection}/{sourced_id}",
            "sourcedId": sourced_id,
            "type": kind,
        }

    def add_school(
        self,
        *,
        students: int,
        contacts_per_student: int = 2,
        siblings: float = 0.15,
        form_size: int = 30,
        org: str = "org-1",
        seed: int = 14,
        name: str = "Example Academy",
        identifier: str = "100001",
        prefix: str = "",
    ) -> None:
        """Add a real-shaped school: one org, homerooms of ``form_size`` per year (7 to 11),
        a teacher enrolled in each, and ``students`` students with ``contacts_per_student``
        contacts each (a parent, then a guardian or parent, then relatives). A fraction
        ``siblings`` of students are the younger sibling of the student before and share that
        family's contacts. Links are on both sides (the student's agents in priority order, the
        contact's agents naming each child). Deterministic for a seed; sourcedIds are
        ``stu-000001``, ``con-000001``, ``tch-001``, ``cls-7A``, ``enr-000001``, each after
        ``prefix`` (so that a trust's several schools can share one fake). The org is ``org``,
        a school called ``name`` whose ``identifier`` is ``identifier`` (a URN).
        """
        from homelink.mis.generate import NamePool

        rng = random.Random(seed)
        names = NamePool.full()
        self.orgs.append(
            {
                "sourcedId": org,
                "status": "active",
                "dateLastModified": DEFAULT_DATE,
                "name": name,
                "type": "school",
                "identifier": identifier,
            }
        )
        years = ("7", "8", "9", "10", "11")
        per_year = max(1, -(-students // len(years)))
        forms = max(1, -(-per_year // form_size))
        homerooms: list[str] = []
        for year in years:
            for f in range(forms):
                label = f"{year}{_form(f)}"
                sid = f"{prefix}cls-{label}"
                homerooms.append(sid)
                self.classes.append(
                    {
                        "sourcedId": sid,
                        "status": "active",
                        "dateLastModified": DEFAULT_DATE,
                        "title": label,
                        "classCode": label,
                        "classType": "homeroom",
                        "location": "",
                        "grades": [year.zfill(2)],
                        "subjects": [],
                        "course": self._ref("courses", f"crs-{year}", "course"),
                        "school": self._ref("orgs", org, "org"),
                        "terms": [self._ref("academicSessions", "term-1", "academicSession")],
                    }
                )
        teachers = []
        for n in range(1, len(homerooms) + 1):
            tid = f"{prefix}tch-{n:03d}"
            given, family = names.forename(rng, rng.choice("MF")), names.surname(rng)
            teachers.append(tid)
            self.users.append(
                self.user_record(
                    tid,
                    "teacher",
                    given=given,
                    family=family,
                    org=org,
                    identifier=f"T{n:03d}",
                    email=f"{given}.{family}.{n}@school.example.org".lower(),
                )
            )
        mobiles = (f"07700{900000 + k}" for k in range(100_000))
        enrolments: list[tuple[str, str, str]] = []
        contacts: dict[str, dict[str, Any]] = {}
        family_contacts: list[str] = []
        family_name = ""
        contact_serial = 0
        for s in range(1, students + 1):
            sid = f"{prefix}stu-{s:06d}"
            year_index = min((s - 1) // per_year, len(years) - 1)
            year = years[year_index]
            homeroom = f"{prefix}cls-{year}{_form(((s - 1) % per_year) // form_size)}"
            if not family_contacts or rng.random() >= siblings:
                family_name = names.surname(rng)
                family_contacts = []
                for c in range(contacts_per_student):
                    contact_serial += 1
                    cid = f"{prefix}con-{contact_serial:06d}"
                    role = (
                        "parent"
                        if c == 0
                        else ("guardian" if rng.random() < 0.1 else "parent")
                        if c == 1
                        else "relative"
                    )
                    gender = "F" if c == 0 else "M"
                    given = names.forename(rng, gender)
                    surname = family_name if rng.random() < 0.8 else names.surname(rng)
                    contacts[cid] = self.user_record(
                        cid,
                        role,
                        given=given,
                        family=surname,
                        org=org,
                        email=f"{given}.{surname}.{contact_serial}@example.org".lower(),
                        sms=next(mobiles),
                        phone=f"0113496{rng.randint(0, 999):04d}" if rng.random() < 0.4 else "",
                    )
                    family_contacts.append(cid)
            given = names.forename(rng, rng.choice("MF"))
            self.users.append(
                self.user_record(
                    sid,
                    "student",
                    given=given,
                    family=family_name,
                    org=org,
                    identifier=f"A{s:06d}",
                    agents=tuple(family_contacts),
                    grades=(year.zfill(2),),
                )
            )
            for cid in family_contacts:
                contacts[cid]["agents"].append(self._ref("users", sid, "user"))
            enrolments.append((homeroom, sid, "student"))
        self.users.extend(contacts.values())
        for n, homeroom in enumerate(homerooms):
            enrolments.append((homeroom, teachers[n], "teacher"))
        start = len(self.enrollments)
        for n, (homeroom, uid, role) in enumerate(enrolments, start=start + 1):
            self.enrollments.append(
                {
                    "sourcedId": f"{prefix}enr-{n:06d}",
                    "status": "active",
                    "dateLastModified": DEFAULT_DATE,
                    "user": self._ref("users", uid, "user"),
                    "class": self._ref("classes", homeroom, "class"),
                    "school": self._ref("orgs", org, "org"),
                    "role": role,
                    "primary": "true" if role == "teacher" else "false",
                    "beginDate": "2024-09-01",
                    "endDate": "2025-07-31",
                }
            )

    @classmethod
    def from_csv_folder(cls, folder: Path, **kwargs: Any) -> FakeOneRoster:
        """A fake (not started) serving a OneRoster CSV folder's data in REST shape.

        The version is the manifest's (else 1.2 when there is a ``roles.csv``). Headers are
        matched as the CSV reader matches them (case, spaces, underscores, a byte-order mark);
        unknown columns (typos) are dropped; blank dates become :data:`DEFAULT_DATE` and
        d/m/yyyy dates are read as such; ``tobedeleted`` rows are kept (a server lists them too).
        """
        tables = {p.name.casefold(): p for p in folder.iterdir() if p.is_file()}
        manifest = {
            row.get("propertyName", "").casefold(): row.get("value", "")
            for row in _csv_rows(tables.get("manifest.csv"))
        }
        version = manifest.get("oneroster.version") or ("1.2" if "roles.csv" in tables else "1.1")
        fake = cls(version="1.2" if version == "1.2" else "1.1", **kwargs)
        for row in _csv_rows(tables.get("orgs.csv")):
            org: dict[str, Any] = {
                "sourcedId": row.get("sourcedId", ""),
                "status": row.get("status") or "active",
                "dateLastModified": _csv_date(row.get("dateLastModified", "")),
                "name": row.get("name", ""),
                "type": row.get("type", ""),
                "identifier": row.get("identifier", ""),
            }
            if row.get("parentSourcedId"):
                org["parent"] = fake._ref("orgs", row["parentSourcedId"], "org")
            fake.orgs.append(org)
        roles: dict[str, list[dict[str, Any]]] = {}
        for row in _csv_rows(tables.get("roles.csv")):
            if (row.get("status") or "").casefold() == "tobedeleted":
                continue
            role: dict[str, Any] = {
                "roleType": row.get("roleType", ""),
                "role": row.get("role", ""),
            }
            if row.get("orgSourcedId"):
                role["org"] = fake._ref("orgs", row["orgSourcedId"], "org")
            for when in ("beginDate", "endDate"):
                if row.get(when):
                    role[when] = row[when]
            roles.setdefault(row.get("userSourcedId", ""), []).append(role)
        for row in _csv_rows(tables.get("users.csv")):
            sid = row.get("sourcedId", "")
            user: dict[str, Any] = {
                "sourcedId": sid,
                "status": row.get("status") or "active",
                "dateLastModified": _csv_date(row.get("dateLastModified", "")),
                "username": row.get("username", ""),
                "enabledUser": (row.get("enabledUser") or "true").casefold(),
                "givenName": row.get("givenName", ""),
                "familyName": row.get("familyName", ""),
                "middleName": row.get("middleName", ""),
                "identifier": row.get("identifier", ""),
                "email": row.get("email", ""),
                "sms": row.get("sms", ""),
                "phone": row.get("phone", ""),
                "agents": [fake._ref("users", a, "user") for a in _ids(row.get("agentSourcedIds"))],
                "grades": list(_ids(row.get("grades"))),
            }
            if fake.version == "1.2":
                user["roles"] = roles.get(sid, [])
                if row.get("primaryOrgSourcedId"):
                    user["primaryOrg"] = fake._ref("orgs", row["primaryOrgSourcedId"], "org")
            else:
                user["role"] = row.get("role", "")
                user["orgs"] = [fake._ref("orgs", o, "org") for o in _ids(row.get("orgSourcedIds"))]
            fake.users.append(user)
        for row in _csv_rows(tables.get("classes.csv")):
            cls_: dict[str, Any] = {
                "sourcedId": row.get("sourcedId", ""),
                "status": row.get("status") or "active",
                "dateLastModified": _csv_date(row.get("dateLastModified", "")),
                "title": row.get("title", ""),
                "classCode": row.get("classCode", ""),
                "classType": row.get("classType", ""),
                "location": row.get("location", ""),
                "grades": list(_ids(row.get("grades"))),
                "subjects": list(_ids(row.get("subjects"))),
                "terms": [
                    fake._ref("academicSessions", t, "academicSession")
                    for t in _ids(row.get("termSourcedIds"))
                ],
            }
            if row.get("courseSourcedId"):
                cls_["course"] = fake._ref("courses", row["courseSourcedId"], "course")
            if row.get("schoolSourcedId"):
                cls_["school"] = fake._ref("orgs", row["schoolSourcedId"], "org")
            fake.classes.append(cls_)
        for row in _csv_rows(tables.get("enrollments.csv")):
            enrolment: dict[str, Any] = {
                "sourcedId": row.get("sourcedId", ""),
                "status": row.get("status") or "active",
                "dateLastModified": _csv_date(row.get("dateLastModified", "")),
                "user": fake._ref("users", row.get("userSourcedId", ""), "user"),
                "class": fake._ref("classes", row.get("classSourcedId", ""), "class"),
                "role": row.get("role", ""),
                "primary": (row.get("primary") or "false").casefold(),
                "beginDate": row.get("beginDate", ""),
                "endDate": row.get("endDate", ""),
            }
            if row.get("schoolSourcedId"):
                enrolment["school"] = fake._ref("orgs", row["schoolSourcedId"], "org")
            fake.enrollments.append(enrolment)
        return fake


# --------------------------------------------------------------------------- helpers

# The CSV columns from_csv_folder keeps (OneRoster 1.1 and 1.2 CSV), by header key.
_KNOWN_COLUMNS = {
    name.casefold(): name
    for name in [
        "propertyName",
        "value",
        "sourcedId",
        "status",
        "dateLastModified",
        "enabledUser",
        "orgSourcedIds",
        "role",
        "username",
        "userIds",
        "givenName",
        "familyName",
        "middleName",
        "identifier",
        "email",
        "sms",
        "phone",
        "agentSourcedIds",
        "grades",
        "password",
        "userMasterIdentifier",
        "preferredGivenName",
        "preferredMiddleName",
        "preferredFamilyName",
        "primaryOrgSourcedId",
        "pronouns",
        "userSourcedId",
        "roleType",
        "beginDate",
        "endDate",
        "orgSourcedId",
        "userProfileSourcedId",
        "name",
        "type",
        "parentSourcedId",
        "title",
        "courseSourcedId",
        "classCode",
        "classType",
        "location",
        "schoolSourcedId",
        "termSourcedIds",
        "subjects",
        "subjectCodes",
        "periods",
        "resources",
        "classSourcedId",
        "primary",
    ]
}


def _form(n: int) -> str:
    """A form's letters: A to Z, then AA, AB… (a benchmark school has hundreds a year)."""
    letters = ""
    n += 1
    while n:
        n, rest = divmod(n - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


def _header_key(header: str) -> str:
    return "".join(header.lstrip("\ufeff").split()).replace("_", "").casefold()


def _csv_rows(path: Path | None) -> Iterator[dict[str, str]]:
    if path is None:
        return
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        header = next(reader, [])
        names = [_KNOWN_COLUMNS.get(_header_key(h), "") for h in header]
        for cells in reader:
            if not any(c.strip() for c in cells):
                continue
            row: dict[str, str] = {}
            for name, cell in zip(names, cells, strict=False):
                if name and name not in row:
                    row[name] = cell.strip()
            yield row


def _ids(raw: str | None) -> tuple[str, ...]:
    found: dict[str, None] = {}
    for part in (raw or "").split(","):
        part = part.strip().strip("\"'").strip()
        if part:
            found[part] = None
    return tuple(found)


def _csv_date(raw: str) -> str:
    raw = raw.strip()
    if not raw:
        return DEFAULT_DATE
    try:
        return rest_time(_aware(dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))))
    except ValueError:
        pass
    with contextlib.suppress(ValueError):
        return rest_time(_aware(dt.datetime.strptime(raw, "%d/%m/%Y")))
    return DEFAULT_DATE


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _filtered(records: list[dict[str, Any]], expression: str) -> list[dict[str, Any]]:
    match = _FILTER.match(expression)
    if match is None:
        raise ValueError(f"unsupported filter {expression!r}")
    name, op, value = match.groups()
    if name == "dateLastModified" and op in (">", ">=", "<", "<="):
        since = _when(value)
        if since == dt.datetime.min.replace(tzinfo=dt.UTC):
            raise ValueError(f"not a time: {value!r}")
        compare = {
            ">": lambda t: t > since,
            ">=": lambda t: t >= since,
            "<": lambda t: t < since,
            "<=": lambda t: t <= since,
        }[op]
        return [r for r in records if compare(_when(str(r.get("dateLastModified", ""))))]
    if name == "status" and op in ("=", "!="):
        same = op == "="
        return [r for r in records if (r.get("status") == value) == same]
    raise ValueError(f"unsupported filter {expression!r}")


def _error(description: str) -> bytes:
    return json.dumps(
        {
            "imsx_codeMajor": "failure",
            "imsx_severity": "error",
            "imsx_description": description,
        }
    ).encode()
