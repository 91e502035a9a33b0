"""One kept-alive HTTP(S) connection to a gateway, shared by the sends of a batch.

A TLS handshake per message would cost more than the message: a gateway keeps one
``http.client`` connection open across its sends and reconnects once when the server has
dropped it (an idle timeout between batches is the usual cause).
"""

from __future__ import annotations

import http.client
import select
import socket
import ssl
from dataclasses import dataclass
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


def _readable(sock: socket.socket) -> bool:
    # poll, not select: a worker with many files open can have descriptors above 1024.
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


def is_transient(status: int) -> bool:
    return status in TRANSIENT_4XX or not 400 <= status < 500


class KeptAliveConnection:
    """POSTs to one origin over a connection kept open between calls."""

    def __init__(self, base_url: str, *, label: str, timeout: float = 15.0) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError(f"{label}: not an http(s) URL")
        self.label = label
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port
        #: The path of the base URL, which request paths are appended to.
        self.base_path = parts.path
        self.query = f"?{parts.query}" if parts.query else ""
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None
        #: Connections opened so far (tests check that one serves a whole batch).
        self.opened = 0

    def _new(self) -> http.client.HTTPConnection:
        self.opened += 1
        if self.scheme == "https":
            return http.client.HTTPSConnection(
                self.host, self.port, timeout=self.timeout, context=ssl.create_default_context()
            )
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        """The open connection and whether it was used before; a fresh one if it was dropped."""
        conn = self._conn
        if conn is not None and conn.sock is not None:
            # A kept-alive socket that is readable before we asked anything has been closed
            # by the server (or holds garbage): don't send a message into it.
            if not _readable(conn.sock):
                return conn, True
            conn.close()
        if conn is None:
            conn = self._conn = self._new()
        else:
            # http.client reopens a closed connection by itself on the next request.
            self.opened += 1
        return conn, False

    def _target(self, path: str) -> str:
        return (self.base_path + path or "/") + self.query

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> Answer:
        """POST and read the whole answer; connection failures become retryable errors.

        A kept-alive connection that fails is retried once on a new one: the server most
        likely closed it just as we used it. If it had in fact taken the message, the retry
        sends it twice, unless the gateway honours an idempotency key; a later retry after a
        transient error carries the same risk, so this adds no new window.
        """
        for attempt in (1, 2):
            conn, reused = self._connection()
            try:
                conn.request("POST", self._target(path), body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                if reused and attempt == 1:
                    continue
                # The exception's class says what happened without echoing the request.
                raise GatewayError(
                    f"{self.label}: connection failed ({type(exc).__name__})", retry=True
                ) from exc
            if response.will_close:
                conn.close()
            return Answer(response.status, data)
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
