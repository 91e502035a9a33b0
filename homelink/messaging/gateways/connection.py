"""One kept-alive HTTP(S) connection to a gateway, shared by the sends of a batch.

A TLS handshake per message would cost more than the message: a gateway keeps one
``http.client`` connection open across its sends and opens a new one when the server has
dropped it (an idle timeout between batches is the usual cause). What an answer means for the
dispatcher (hold the gateway, back it off, or this message alone) is decided here, once for
every gateway: :func:`answer_error`.
"""

from __future__ import annotations

import contextlib
import http.client
import select
import socket
import ssl
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import BinaryIO
from urllib.parse import urlsplit

from homelink.messaging.gateways.base import GatewayError

#: Answers that say "not now" rather than "never": rate limits, overload, and the credentials
#: or account being wrong, which staff fix once for every waiting message (failing each one
#: for good would lose a whole send to one typo in the settings).
TRANSIENT_4XX = frozenset({401, 403, 408, 409, 425, 429})


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    #: The Retry-After header's seconds, when the answer carried a usable one.
    retry_after: float | None = None


#: The longest a provider's Retry-After may hold a gateway: a typo on their side (an hour, a
#: date next year) must not stop a school's messages for the day.
MAX_HOLD_SECONDS = 300.0


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), capped; None if
    absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - time.time()
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_HOLD_SECONDS)


def _readable(sock: socket.socket) -> bool:
    # poll, not select: a worker with many files open can have descriptors above 1024.
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


def is_transient(status: int) -> bool:
    return status in TRANSIENT_4XX or not 400 <= status < 500


#: Answers that say the provider (or our account with it) is failing, not one message.
GATEWAY_WIDE_4XX = frozenset({401, 403, 408})


def answer_error(reason: str, answer: Answer) -> GatewayError:
    """The error for a provider's answer that was not a success: a 429 holds the gateway for
    its Retry-After (a second when it gives none), a 5xx or refused credentials back the
    gateway off, anything else concerns this one message."""
    if answer.status == 429:
        hold = answer.retry_after if answer.retry_after is not None else 1.0
        return GatewayError(reason, retry=True, hold=hold)
    gateway_wide = answer.status >= 500 or answer.status in GATEWAY_WIDE_4XX
    return GatewayError(reason, retry=is_transient(answer.status), gateway_wide=gateway_wide)


#: Limits on an answer, as http.client has them: a provider is not allowed to flood a worker.
MAX_LINE = 65536
MAX_HEADERS = 100


class KeptAliveConnection:
    """POSTs to one origin over a connection kept open between calls.

    HTTP/1.1 written and read directly on the socket rather than through ``http.client``,
    whose answer parsing (the ``email`` package's header parser) cost a worker more than the
    rest of a message; what a gateway needs is small: a POST with a body, and an answer's
    status, headers and body (by Content-Length, chunked, or to the end of the connection).
    """

    def __init__(self, base_url: str, *, label: str, timeout: float = 15.0) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError(f"{label}: not an http(s) URL")
        self.label = label
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        default_port = self.port == (443 if parts.scheme == "https" else 80)
        host = f"[{self.host}]" if ":" in self.host else self.host
        self._host_header = host if default_port else f"{host}:{self.port}"
        #: The path of the base URL, which request paths are appended to.
        self.base_path = parts.path
        self.query = f"?{parts.query}" if parts.query else ""
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._reader: BinaryIO | None = None
        #: Connections opened so far (tests check that one serves a whole batch).
        self.opened = 0

    def _open(self) -> tuple[socket.socket, BinaryIO]:
        self.opened += 1
        sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        try:
            # Each request is one write: nothing for Nagle to gather, only to delay.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.scheme == "https":
                sock = ssl.create_default_context().wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise
        self._sock, self._reader = sock, sock.makefile("rb")
        return sock, self._reader

    def _connection(self) -> tuple[socket.socket, BinaryIO]:
        """The open connection; a fresh one if there is none or the server dropped it."""
        if self._sock is not None and self._reader is not None:
            # A kept-alive socket that is readable before we asked anything has been closed
            # by the server (or holds garbage): don't send a message into it.
            if not _readable(self._sock):
                return self._sock, self._reader
            self.close()
        return self._open()

    def _target(self, path: str) -> str:
        return (self.base_path + path or "/") + self.query

    def _request(self, path: str, body: bytes, headers: dict[str, str]) -> bytes:
        lines = [
            f"POST {self._target(path)} HTTP/1.1",
            f"Host: {self._host_header}",
            "Accept-Encoding: identity",
            f"Content-Length: {len(body)}",
        ]
        for name, value in headers.items():
            # Names and values come from settings: a line break would be a second header
            # (or request) of someone else's making.
            if any(c in name or c in value for c in "\r\n") or ":" in name:
                raise GatewayError(f"{self.label}: a header has a line break", retry=False)
            lines.append(f"{name}: {value}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> Answer:
        """POST and read the whole answer; connection failures become retryable errors.

        Only a request that provably never reached the provider is tried again at once, on a
        new connection: one whose connection could not be opened, or whose bytes could not all
        be written (a provider acts on a whole request, never part of one). Once the request
        is out, a timeout or a dropped connection may come after the provider took the
        message: that is an ``unanswered`` error, never retried here, and the dispatcher
        retries it once at most.
        """
        request = self._request(path, body, headers)
        for attempt in (1, 2):
            try:
                sock, reader = self._connection()
                sock.sendall(request)
            except OSError as exc:
                self.close()
                if attempt == 1:
                    continue
                # The exception's class says what happened without echoing the request.
                raise GatewayError(
                    f"{self.label}: connection failed ({type(exc).__name__})",
                    retry=True,
                    gateway_wide=True,
                ) from exc
            try:
                status, answer_headers, data, will_close = _read_answer(reader)
            except (OSError, ValueError, http.client.HTTPException) as exc:
                self.close()
                raise GatewayError(
                    f"{self.label}: no answer ({type(exc).__name__}); it may have been sent",
                    retry=True,
                    unanswered=True,
                ) from exc
            if will_close:
                self.close()
            retry_after = (
                parse_retry_after(answer_headers.get("retry-after")) if status == 429 else None
            )
            return Answer(status, data, retry_after)
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        sock, reader = self._sock, self._reader
        self._sock = self._reader = None
        if reader is not None:
            with contextlib.suppress(OSError):
                reader.close()
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()


def _line(reader: BinaryIO) -> bytes:
    line = reader.readline(MAX_LINE + 1)
    if len(line) > MAX_LINE:
        raise http.client.LineTooLong("answer line")
    return line


def _read_answer(reader: BinaryIO) -> tuple[int, dict[str, str], bytes, bool]:
    """One HTTP/1.x answer: its status, headers (names in lower case), body, and whether the
    server will close the connection after it."""
    while True:
        line = _line(reader)
        if not line:
            raise http.client.RemoteDisconnected("closed without an answer")
        version, _, rest = line.decode("latin-1").strip().partition(" ")
        code = rest[:3]
        if not version.startswith("HTTP/1.") or not code.isdigit():
            raise http.client.BadStatusLine(line[:40].decode("latin-1"))
        status = int(code)
        headers: dict[str, str] = {}
        for _ in range(MAX_HEADERS + 1):
            field = _line(reader)
            if field in (b"\r\n", b"\n", b""):
                break
            name, _, value = field.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        else:
            raise http.client.HTTPException("too many headers")
        if status >= 200 or status == 101:
            break  # 1xx (100 Continue) come before the answer itself
    connection = headers.get("connection", "").lower()
    will_close = "close" in connection or (version == "HTTP/1.0" and "keep-alive" not in connection)
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return status, headers, _read_chunked(reader), will_close
    if status in (204, 304):
        return status, headers, b"", will_close
    length = headers.get("content-length")
    if length is None:
        return status, headers, reader.read(), True
    if not length.isdigit():
        raise http.client.HTTPException("bad Content-Length")
    data = reader.read(int(length))
    if len(data) < int(length):
        raise http.client.IncompleteRead(data, int(length) - len(data))
    return status, headers, data, will_close


def _read_chunked(reader: BinaryIO) -> bytes:
    parts: list[bytes] = []
    while True:
        size_line = _line(reader).split(b";", 1)[0].strip()
        if not size_line:
            raise http.client.IncompleteRead(b"".join(parts))
        size = int(size_line, 16)
        if size == 0:
            break
        chunk = reader.read(size)
        if len(chunk) < size:
            raise http.client.IncompleteRead(b"".join(parts) + chunk, size - len(chunk))
        parts.append(chunk)
        reader.readline(MAX_LINE)  # the CRLF after the chunk
    while _line(reader) not in (b"\r\n", b"\n", b""):
        pass  # trailers: nothing we need
    return b"".join(parts)
