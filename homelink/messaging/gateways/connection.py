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
#: A gateway in between (Bad Gateway, Gateway Timeout) answering for a provider it lost sight
#: of, perhaps after passing the request on.
UNANSWERED_5XX = frozenset({502, 504})


def answer_error(reason: str, answer: Answer) -> GatewayError:
    """The error for a provider's answer that was not a success: a 429 holds the gateway for
    its Retry-After (a second when it gives none), a 5xx or refused credentials back the
    gateway off, anything else concerns this one message."""
    if answer.status == 429:
        hold = answer.retry_after if answer.retry_after is not None else 1.0
        return GatewayError(reason, retry=True, hold=hold)
    if answer.status in UNANSWERED_5XX:
        # A proxy in front of the provider gave up waiting or lost it mid-request: the
        # provider may have taken the message, as after our own timeout.
        return GatewayError(reason, retry=True, unanswered=True)
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
        self._reader: _Reader | None = None
        #: Connections opened so far (tests check that one serves a whole batch).
        self.opened = 0

    def _open(self) -> tuple[socket.socket, _Reader]:
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
        self._sock, self._reader = sock, _Reader(sock, self.timeout)
        return sock, self._reader

    def _connection(self) -> tuple[socket.socket, _Reader]:
        """The open connection; a fresh one if there is none or the server dropped it."""
        if self._sock is not None and self._reader is not None:
            # A kept-alive socket that is readable before we asked anything has been closed
            # by the server (or holds garbage): don't send a message into it.
            if not _readable(self._sock):
                self._sock.settimeout(self.timeout)
                return self._sock, self._reader
            self.close()
        return self._open()

    def _target(self, path: str) -> str:
        return (self.base_path + path or "/") + self.query

    def _request(self, path: str, body: bytes, headers: dict[str, str]) -> bytes:
        target = self._target(path)
        if any(c in target for c in " \r\n\t"):
            raise GatewayError(f"{self.label}: the address has a space or line break", retry=False)
        lines = [
            f"POST {target} HTTP/1.1",
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
            except (OSError, ValueError, ArithmeticError, http.client.HTTPException) as exc:
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
            reader.buffer.clear()
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()


#: The largest answer body taken from a provider (its JSON is a few hundred bytes).
MAX_BODY = 1 << 20


class _Reader:
    """Reads one connection's answers with a buffer of its own: bytes left over after an
    answer (a body longer than its Content-Length) are seen, not taken for the next answer,
    and every answer must come whole within the timeout, however slowly it trickles in."""

    def __init__(self, sock: socket.socket, timeout: float) -> None:
        self.sock = sock
        self.timeout = timeout
        self.buffer = bytearray()
        self.deadline = 0.0

    def start(self) -> None:
        self.deadline = time.monotonic() + self.timeout

    def _fill(self) -> bool:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the answer took longer than the timeout")
        self.sock.settimeout(left)
        data = self.sock.recv(65536)
        if not data:
            return False
        self.buffer += data
        return True

    def readline(self) -> bytes:
        while True:
            end = self.buffer.find(b"\n", 0, MAX_LINE + 1)
            if end >= 0:
                line = bytes(self.buffer[: end + 1])
                del self.buffer[: end + 1]
                return line
            if len(self.buffer) > MAX_LINE:
                raise http.client.LineTooLong("answer line")
            if not self._fill():
                line = bytes(self.buffer)
                self.buffer.clear()
                return line

    def read(self, size: int) -> bytes:
        if size > MAX_BODY:
            raise http.client.HTTPException("answer too large")
        while len(self.buffer) < size and self._fill():
            pass
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    def read_to_end(self) -> bytes:
        while self._fill():
            if len(self.buffer) > MAX_BODY:
                raise http.client.HTTPException("answer too large")
        data = bytes(self.buffer)
        self.buffer.clear()
        return data


def _read_answer(reader: _Reader) -> tuple[int, dict[str, str], bytes, bool]:
    """One HTTP/1.x answer: its status, headers (names in lower case), body, and whether the
    connection must be closed after it."""
    reader.start()
    while True:
        line = reader.readline()
        if not line:
            raise http.client.RemoteDisconnected("closed without an answer")
        version, _, rest = line.decode("latin-1").strip().partition(" ")
        code = rest[:3]
        if not version.startswith("HTTP/1.") or not code.isdigit():
            raise http.client.BadStatusLine(line[:40].decode("latin-1"))
        status = int(code)
        headers: dict[str, str] = {}
        for _ in range(MAX_HEADERS + 1):
            field = reader.readline()
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
        data = _read_chunked(reader)
    elif status in (204, 304):
        data = b""
    elif (length := headers.get("content-length")) is None:
        return status, headers, reader.read_to_end(), True
    elif not length.isdigit() or len(length) > 9:
        raise http.client.HTTPException("bad Content-Length")
    else:
        data = reader.read(int(length))
        if len(data) < int(length):
            raise http.client.IncompleteRead(data, int(length) - len(data))
    # Anything after the answer is not an answer to anything we asked: never trust the
    # connection with another request.
    return status, headers, data, will_close or bool(reader.buffer)


def _read_chunked(reader: _Reader) -> bytes:
    parts: list[bytes] = []
    total = 0
    while True:
        size_line = reader.readline().split(b";", 1)[0].strip()
        if not size_line or len(size_line) > 8:
            raise http.client.IncompleteRead(b"".join(parts))
        size = int(size_line, 16)
        if size == 0:
            break
        total += size
        chunk = reader.read(size) if total <= MAX_BODY else reader.read(MAX_BODY + 1)
        if len(chunk) < size:
            raise http.client.IncompleteRead(b"".join(parts) + chunk, size - len(chunk))
        parts.append(chunk)
        reader.readline()  # the CRLF after the chunk
    while reader.readline() not in (b"\r\n", b"\n", b""):
        pass  # trailers: nothing we need
    return b"".join(parts)
