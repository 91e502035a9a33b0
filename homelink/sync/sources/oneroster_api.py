"""The OneRoster 1.1 and 1.2 REST source: a school's roster read from its MIS's rostering API.

What it leaves is a OneRoster **CSV** set, zipped, that :func:`homelink.mis.formats.oneroster.
open_oneroster` reads unchanged: the REST records are only re-shaped into the CSV files, so the
rules, the identity and the notes of an import are those of a OneRoster CSV upload by
construction. The choices made:

* **Version** from the URL: a path with ``v1p2`` (``…/ims/oneroster/rostering/v1p2``) is 1.2
  (users carry ``roles`` and ``primaryOrg``, written to ``roles.csv``), anything else is 1.1
  (users carry ``role`` and ``orgs``).
* **Sign-in**: OAuth 2.0 client credentials. The token URL is the one configured, or when none
  is, ``<url>/token`` (the OneRoster base URL with ``/token`` added). The client id and secret
  go by HTTP Basic (RFC 6749 §2.3.1); a server that refuses that is asked once more with them as
  form fields, as some servers only accept. 1.2 asks for the scope
  ``…/v1p2/scope/roster-core.readonly`` (again without a scope if the server calls it
  ``invalid_scope``); 1.1 asks for none. The bearer token is renewed before ``expires_in`` runs
  out (at half its life, at most a minute early) and once when the server answers 401 mid-sync.
  A token endpoint that refuses the client is ``SourceError(retry=False)``; no message ever holds
  the secret or a token.
* **Reading**: ``orgs``, ``classes``, ``users`` and, when there are homeroom classes,
  ``enrollments``, in pages of :attr:`OneRosterSource.limit` (1,000) by ``limit``/``offset``.
  The next offset is where the records received end, so a server that caps the page size
  (many do) is still read to the end. With ``X-Total-Count`` the list ends at that total and
  must hold exactly that many distinct records, the total staying the same on every page;
  without it, the list ends at an empty page (one request more per list, but a server's page cap
  never cuts a roll short). A page cut off mid-way, not JSON, or empty where the total says more
  is asked for again (:data:`RETRIES` times, with backoff); a list that repeats a record or
  falls short of its total is read again from the start as often; then the source gives up
  with "the OneRoster server sent an incomplete page …". A partial roll is never imported: as a
  full sync it would mark everyone missing as left.
* **Refusals and waits**: 429 waits ``Retry-After`` (seconds or an HTTP date, at most
  :data:`MAX_WAIT` seconds, at most :data:`MAX_WAITS` times per request); 5xx, 408, timeouts and
  dropped connections are tried :data:`RETRIES` more times with backoff, then "the OneRoster
  server is not answering (…)" (``retry``). Redirects are never followed (the bearer token must
  not go anywhere else, and a redirect is a way into the server's own network): a 3xx is an
  error that names where it pointed. A host's name is resolved once per connection, by
  :func:`homelink.sync.addresses.connect_addresses`, which refuses private addresses, and the
  connection goes to an address of that answer (the name stays the ``Host`` header, the TLS
  SNI and what the certificate is verified against): a name answering a second lookup
  differently (DNS rebinding) cannot lead into the server's own network. Every request has a
  timeout (:data:`TIMEOUT`); a page is at most :data:`MAX_BODY` bytes. Only the standard
  library talks HTTP (``http.client``, certificates verified). A header that should be a number
  and is not (``Retry-After: ²``) counts as absent: Retry-After waits its default 5 seconds,
  ``X-Total-Count`` is ignored, and a ``Content-Length`` is an incomplete answer.
* **One school of several**: a OneRoster account may cover a trust's or a district's schools
  (one tenant, several orgs of type ``school``). The orgs are read first; when the server holds
  more than one school, the sync reads this school's org only. Which org: the one the school's
  earlier OneRoster imports recorded (``School.oneroster_org_id``) if exactly one of the
  server's schools is; else the one whose ``identifier`` is the school's URN or DfE number
  (``8384512``, ``838/4512``; among the recorded ones when several are, as after an import that
  bound the school to a whole trust); else nothing is guessed and nothing more is read: "the
  OneRoster server holds 3 schools (…) and none is recorded for this school" (``retry`` off).
  The file then holds what a server holding that school alone would give: its org in
  ``orgs.csv``, its students and staff (those whose 1.1 ``orgs``, 1.2 ``primaryOrg`` or
  ``roles[].org`` for the role they are read as, name it: the orgs the CSV reader places a user
  in), the contacts linked to its students from either side (each contact's agents cut to those
  students: a parent of a child at another school of the trust names no pupil of it), the
  classes whose ``school`` it is and their enrolments. A delta narrows the same way; one whose
  changes are all another school's is "no changes". A server holding one school (with or without
  a district above it) is read whole, as before.
* **Full or delta**: a full sync when the school has none yet, its last one is more than
  ``HOMELINK_SYNC_FULL_EVERY_DAYS`` old, or there is no cursor; otherwise a delta of the
  ``users`` and ``enrollments`` changed since the cursor (``filter=dateLastModified>'…'``;
  ``orgs`` and ``classes`` are small and read whole). A server that refuses the filter (400)
  gets a full sync instead. The cursor handed back is the time the fetch began less
  :data:`OVERLAP` (10 minutes, for the two clocks' skew; what changed in the overlap is read
  twice, which changes nothing), in the ``dateLastModified`` form (ISO 8601, UTC, milliseconds,
  so a server comparing text compares times). A delta with nothing changed is "no changes".
* **A delta is per student** (the CSV reader's rule): every student it names is complete, with
  all its contacts in their priority order. The students are those changed, those whose
  homeroom enrolment changed, and those a changed parent, guardian or relative is linked to
  (from either side). OneRoster has no "agent of" query and many servers keep a link on one side
  only (the parent naming the child, or the other way), so as soon as a delta concerns any
  student or contact the whole user list is read (unfiltered) to find every contact naming
  those students; the filtered read only says what changed, and a delta of staff changes alone
  reads nothing more. What a delta saves is the enrolments (the longest list by far) and the
  import itself: only those students go into the file. An agent the server does not list or is
  deleting is left out of a delta student's agents, as a full sync ignores it, so priorities do
  not shift between the two.
* **The file**: ``manifest.csv`` (``oneroster.version``, ``file.users`` bulk or delta),
  ``users.csv``, ``orgs.csv``, ``classes.csv`` (homerooms only), ``enrollments.csv`` (students
  in homerooms) and, for 1.2, ``roles.csv``; only the columns the reader uses (no password,
  user name or modification time), rows in ``sourcedId`` order, fixed zip timestamps: the same
  roster always gives the same bytes, so the runner's digest sees "no changes". A student's
  agents keep the server's order (their priority). ``tobedeleted`` records pass through, for
  the reader to skip with a note.
* A dry run fetches exactly the same; :meth:`OneRosterSource.finish` has nothing to do.

Nothing personal is logged: counts only.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import datetime as dt
import email.utils
import http.client
import io
import json
import logging
import re
import socket
import ssl
import time
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, quote_plus, urlencode, urlsplit

from django.conf import settings

from homelink.mis.records import Format
from homelink.mis.snapshot import collector_paused
from homelink.sync.addresses import connect_addresses
from homelink.sync.secrets import SecretUnreadable, SyncKeyMissing, unseal
from homelink.sync.sources import Fetched, SourceError

if TYPE_CHECKING:
    from homelink.sync.models import SyncSource

logger = logging.getLogger(__name__)

#: Records per page asked for.
DEFAULT_LIMIT = 1000
#: Seconds to connect, and between any two reads of an answer.
TIMEOUT = 30.0
#: Further tries of a request that failed in a way that may pass (5xx, no answer, a cut page).
RETRIES = 3
#: Seconds before each further try.
BACKOFF = (1.0, 4.0, 10.0)
#: The longest a 429's Retry-After is waited, and how many 429s one request may get.
MAX_WAIT = 60.0
MAX_WAITS = 5
#: Largest answer read (a page of 1,000 users is about 1 MB).
MAX_BODY = 64 * 1024 * 1024
#: The delta cursor is the fetch's start less this, for the clocks' skew.
OVERLAP = dt.timedelta(minutes=10)
SCOPE_V1P2 = "https://purl.imsglobal.org/spec/or/v1p2/scope/roster-core.readonly"
USER_AGENT = "homelink-sync (OneRoster client)"
CONTACT_ROLES = frozenset({"parent", "guardian", "relative"})
#: Org types that are no school: the bodies above one, and a part of one (OneRoster's orgType).
_NOT_SCHOOLS = frozenset({"district", "local", "state", "national", "department"})
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_OAUTH_ERROR = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


# --------------------------------------------------------------------------- HTTP


class _Unreachable(Exception):
    """No answer (refused, reset, timed out): may pass."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _CutOff(Exception):
    """An answer whose body stopped short of its length (or whose length cannot be read)."""

    def __init__(self, reason: str = "the page was cut off") -> None:
        super().__init__(reason)
        self.reason = reason


class _FilterRefused(Exception):
    """The server answered the delta filter with 400: it does not support it."""


@dataclass
class _Answer:
    status: int
    headers: http.client.HTTPMessage
    #: The decoded JSON body, or None when it is not JSON.
    data: Any


def _open_socket(addresses: list[str], port: int, timeout: float | None) -> socket.socket:
    """A TCP connection to the first of ``addresses`` that answers (as
    :func:`socket.create_connection` tries each address of a name)."""
    failure: OSError | None = None
    for address in addresses:
        try:
            sock = socket.create_connection((address, port), timeout)
        except OSError as exc:
            failure = exc
            continue
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
    raise failure or OSError("no address to connect to")


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """A connection to addresses resolved and checked once (no second lookup of the name,
    which DNS rebinding could answer differently); the name stays the ``Host`` header."""

    def __init__(self, host: str, port: int, *, addresses: list[str], timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._addresses = addresses

    def connect(self) -> None:
        self.sock = _open_socket(self._addresses, self.port, self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """As :class:`_PinnedHTTPConnection`, over TLS: the certificate is verified against the
    name (and the name is the SNI), whatever address it was reached at."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        addresses: list[str],
        timeout: float,
        context: ssl.SSLContext,
    ) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._addresses = addresses
        self._tls = context

    def connect(self) -> None:
        sock = _open_socket(self._addresses, self.port, self.timeout)
        try:
            self.sock = self._tls.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise


class _Http:
    """Kept-alive connections, one per host, each to the addresses
    :func:`~homelink.sync.addresses.connect_addresses` resolved and checked; no redirects
    (``http.client`` follows none)."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._connections: dict[tuple[str, str, int], http.client.HTTPConnection] = {}
        self._tls = ssl.create_default_context()

    def close(self) -> None:
        for connection in self._connections.values():
            connection.close()
        self._connections.clear()

    def _drop(self, key: tuple[str, str, int]) -> None:
        connection = self._connections.pop(key, None)
        if connection is not None:
            connection.close()

    def send(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None = None
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        parts = urlsplit(url)
        scheme, host = parts.scheme.lower(), parts.hostname or ""
        if scheme not in ("http", "https") or not host:
            raise SourceError(
                f"the OneRoster address {_show(url)} is not a web address (https://…)",
                retry=False,
            )
        port = parts.port or (443 if scheme == "https" else 80)
        key = (scheme, host, port)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        for _ in range(2):
            connection = self._connections.get(key)
            reused = connection is not None
            if connection is None:
                try:
                    addresses = connect_addresses(host, port)
                except OSError as exc:
                    raise _Unreachable(_reason(exc, self.timeout)) from None
                if scheme == "https":
                    connection = _PinnedHTTPSConnection(
                        host, port, addresses=addresses, timeout=self.timeout, context=self._tls
                    )
                else:
                    connection = _PinnedHTTPConnection(
                        host, port, addresses=addresses, timeout=self.timeout
                    )
                self._connections[key] = connection
            try:
                connection.request(method, target, body=body, headers=headers)
                response = connection.getresponse()
            except ssl.SSLCertVerificationError as exc:
                self._drop(key)
                raise SourceError(
                    f"the OneRoster server {host} has a certificate that cannot be trusted "
                    f"({exc.verify_message}): homelink will not send it the client's "
                    "credentials",
                    retry=False,
                ) from None
            except (
                http.client.RemoteDisconnected,
                ConnectionResetError,
                BrokenPipeError,
            ) as exc:
                self._drop(key)
                if reused:
                    continue  # the server closed an idle kept-alive connection: try a new one
                raise _Unreachable(_reason(exc, self.timeout)) from None
            except (OSError, http.client.HTTPException) as exc:
                self._drop(key)
                raise _Unreachable(_reason(exc, self.timeout)) from None
            try:
                data = _read(response)
            except _CutOff:
                self._drop(key)
                raise
            except (OSError, http.client.HTTPException) as exc:
                self._drop(key)
                if isinstance(exc, http.client.IncompleteRead):
                    raise _CutOff() from None
                raise _Unreachable(_reason(exc, self.timeout)) from None
            if response.will_close:
                self._drop(key)
            return response.status, response.headers, data
        raise _Unreachable("the connection was closed")  # pragma: no cover - loop returns


def _read(response: http.client.HTTPResponse) -> bytes:
    declared = response.getheader("Content-Length")
    length = _count(declared)
    if declared is not None and length is None and not response.chunked:
        # http.client cannot tell where such an answer ends: on a kept-alive connection it
        # would wait for the server to close it.
        raise _CutOff("its Content-Length was not a number")
    if length is not None and length > MAX_BODY:
        raise _Unreachable(f"an answer of {length:,} bytes, over the {MAX_BODY:,} accepted")
    data = response.read(MAX_BODY + 1)
    if len(data) > MAX_BODY:
        raise _Unreachable(f"an answer over the {MAX_BODY:,} bytes accepted")
    if length is not None and len(data) != length:
        raise _CutOff
    return data


def _reason(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return f"no answer within {timeout:g} seconds"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return "its name could not be found"
    if isinstance(exc, http.client.RemoteDisconnected | ConnectionResetError):
        return "the connection was closed without an answer"
    if isinstance(exc, ssl.SSLError):
        return "the secure connection failed"
    return type(exc).__name__


def _show(url: str) -> str:
    """A URL as a message may show it: no query, no user name or password."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}"


# --------------------------------------------------------------------------- the source


@dataclass
class _Roster:
    orgs: list[dict[str, Any]]
    classes: list[dict[str, Any]]
    users: list[dict[str, Any]]
    enrollments: list[dict[str, Any]]
    detail: dict[str, Any] = field(default_factory=dict)


class OneRosterSource:
    """One sync's reading of a OneRoster REST server (see the module docstring)."""

    def __init__(
        self,
        config: SyncSource,
        *,
        now: dt.datetime,
        limit: int = DEFAULT_LIMIT,
        timeout: float = TIMEOUT,
        retries: int = RETRIES,
        backoff: tuple[float, ...] = BACKOFF,
        max_wait: float = MAX_WAIT,
    ) -> None:
        self.config = config
        self.now = now if now.tzinfo else now.replace(tzinfo=dt.UTC)
        #: Records per page asked for.
        self.limit = limit
        self.retries = retries
        self.backoff = backoff or (0.0,)
        self.max_wait = max_wait
        self.base = config.url.strip().rstrip("/")
        self.version = "1.2" if "v1p2" in urlsplit(self.base).path.lower() else "1.1"
        self.token_url = config.token_url.strip() or f"{self.base}/token"
        self._http = _Http(timeout)
        self._token = ""
        self._renew_at = 0.0
        self.pages = 0

    # -- the protocol --

    def fetch(self, workdir: Path, *, dry_run: bool) -> Fetched:
        # A dry run reads exactly what a real one would: the runner decides what is written.
        since = self._delta_since()
        cursor = _stamp(self.now - OVERLAP)
        # The pages are plain JSON (no cycles): the collector walking them again and again as
        # they pile up costs a 20,000-student read about half a second of CPU.
        with collector_paused():
            return self._fetch(workdir, since, cursor)

    def _fetch(self, workdir: Path, since: str, cursor: str) -> Fetched:
        try:
            roster: _Roster | None = None
            orgs = self._collection("orgs")
            org = self._school_org(orgs)
            if org is not None:
                orgs = [o for o in orgs if o["sourcedId"] == org]
            if since:
                try:
                    roster = self._delta(since, orgs, org)
                except _FilterRefused:
                    since = ""  # the server cannot filter: a full read is the only honest one
                else:
                    if roster is None:
                        logger.info("OneRoster delta: no changes (%d pages)", self.pages)
                        return Fetched(
                            path=None,
                            file_name="oneroster-delta.zip",
                            format=Format.ONEROSTER,
                            full=False,
                            unchanged="no changes in the OneRoster server since "
                            + _human(self.config.cursor),
                            cursor=cursor,
                            detail=self._detail("delta", None, org),
                        )
            if roster is None:
                roster = self._full(orgs, org)
        finally:
            self._http.close()
        full = not since
        name = "oneroster-full.zip" if full else "oneroster-delta.zip"
        path = workdir / name
        path.write_bytes(self._zip(roster, full=full))
        detail = self._detail("full" if full else "delta", roster, org)
        logger.info(
            "OneRoster %s sync: %d pages, %d users",
            detail["mode"],
            self.pages,
            len(roster.users),
        )
        return Fetched(
            path=path,
            file_name=name,
            format=Format.ONEROSTER,
            full=full,
            cursor=cursor,
            detail=detail,
        )

    def finish(self, fetched: Fetched, *, imported: bool) -> None:
        """Nothing to tidy: the zip lives in the runner's work folder."""

    # -- full or delta --

    def _delta_since(self) -> str:
        """The cursor a delta starts from, or "" for a full sync."""
        config = self.config
        cursor = config.cursor.strip()
        if not cursor or config.last_full_at is None:
            return ""
        if self.now - config.last_full_at >= dt.timedelta(
            days=settings.HOMELINK_SYNC_FULL_EVERY_DAYS
        ):
            return ""
        try:
            dt.datetime.fromisoformat(cursor)
        except ValueError:
            return ""  # not a cursor of ours: never put it into a filter
        return cursor

    def _detail(self, mode: str, roster: _Roster | None, org: str | None) -> dict[str, Any]:
        detail: dict[str, Any] = {
            "version": self.version,
            "mode": mode,
            "pages": self.pages,
        }
        if org is not None:
            detail["org"] = org  # the one school org read of several
        if mode == "delta":
            detail["since"] = self.config.cursor
        if roster is not None:
            detail.update(
                orgs=len(roster.orgs),
                classes=len(roster.classes),
                users=len(roster.users),
                enrollments=len(roster.enrollments),
            )
            detail.update(roster.detail)
        return detail

    def _full(self, orgs: list[dict[str, Any]], org: str | None) -> _Roster:
        classes = _classes_of(self._collection("classes"), org)
        users = self._collection("users")
        if org is not None:
            users = _people_of(users, org, users)
        homerooms = _homerooms(classes)
        enrollments = self._collection("enrollments") if homerooms else []
        if org is not None:
            enrollments = [e for e in enrollments if _ref(e.get("class")) in homerooms]
        return _Roster(orgs, classes, users, enrollments)

    def _delta(self, since: str, orgs: list[dict[str, Any]], org: str | None) -> _Roster | None:
        """The changed part of the roster, each student in it complete; None when nothing
        that makes a record changed (for this school's org, of a server holding several)."""
        classes = _classes_of(self._collection("classes"), org)
        homerooms = _homerooms(classes)
        changed = self._collection("users", since=since)
        if org is not None:
            # Another school's students and staff are none of this school's business; a changed
            # contact is kept until the whole list says whose contact it is.
            changed = [u for u in changed if _role(u) in CONTACT_ROLES or org in _orgs_of(u)]
        enrolments = [
            e
            for e in (self._collection("enrollments", since=since) if homerooms else [])
            if _ref(e.get("class")) in homerooms
            and str(e.get("role") or "").casefold() == "student"
        ]
        if not changed and not enrolments:
            return None
        seeds = {u["sourcedId"] for u in changed if _role(u) == "student"}
        seeds |= {sid for e in enrolments if (sid := _ref(e.get("user")))}
        contacts = {u["sourcedId"] for u in changed if _role(u) in CONTACT_ROLES}
        users = {u["sourcedId"]: u for u in changed}
        everyone: dict[str, dict[str, Any]] = {}
        students: set[str] = set()
        if seeds or contacts:
            # Only a reverse index finds every contact that names a student (OneRoster has no
            # "agent of" query, and many servers keep a link on one side only), so the whole
            # user list is read; only the students it concerns go into the file.
            everyone = {u["sourcedId"]: u for u in self._collection("users")}
            users = {sid: everyone.get(sid, user) for sid, user in users.items()}

            def is_student(sid: str) -> bool:
                user = everyone.get(sid)
                return (
                    user is not None
                    and _role(user) == "student"
                    and not _deleted(user)
                    and (org is None or org in _orgs_of(user))
                )

            students = {sid for sid in seeds if is_student(sid)}
            for sid in contacts:
                students |= set(_refs(everyone.get(sid, users[sid]).get("agents")))
            students |= {
                sid for sid, user in everyone.items() if contacts & set(_refs(user.get("agents")))
            }
            students = {sid for sid in students if is_student(sid)}
            for sid in students:
                users[sid] = everyone[sid]
                for agent in _refs(everyone[sid].get("agents")):
                    if agent in everyone:
                        users[agent] = everyone[agent]
            for sid, user in everyone.items():
                if _role(user) in CONTACT_ROLES and students & set(_refs(user.get("agents"))):
                    users[sid] = user
            # An agent the server does not list, or is deleting, is left out of the student's
            # agents, as a full sync ignores it: a kept place would move every later contact
            # down one priority until the next full sync.
            gone = {sid for sid, user in everyone.items() if _deleted(user)}
            for sid in students:
                agents = _ref_list(everyone[sid].get("agents"))
                kept = [a for a in agents if _ref(a) in everyone and _ref(a) not in gone]
                if len(kept) != len(agents):
                    users[sid] = {**everyone[sid], "agents": kept}
        people = list(users.values())
        if org is not None:
            people = _people_of(people, org, everyone.values() if everyone else people)
            if not people and not enrolments:
                return None  # every change was another school's
        return _Roster(
            orgs,
            classes,
            people,
            enrolments,
            detail={"changed": len(changed), "students": len(students)},
        )

    # -- which school --

    def _school_org(self, orgs: list[dict[str, Any]]) -> str | None:
        """The org of this sync's school when the server holds several schools (a trust's or a
        district's tenant); None when it holds one at most, all of it being the school's.

        The org the school's earlier OneRoster imports recorded, if exactly one of the server's
        schools is; else the one whose ``identifier`` is the school's URN or DfE number (among
        the recorded ones, when several are); else nothing is guessed."""
        live = [o for o in orgs if not _deleted(o)]
        schools = [o for o in live if _org_type(o) == "school"] or [
            o for o in live if _org_type(o) not in _NOT_SCHOOLS
        ]
        if len(schools) <= 1:
            return None
        school = self.config.school if self.config.school_id is not None else None
        doubt: list[dict[str, Any]] = []  # orgs that could each be the school
        if school is not None:
            by_id = {o["sourcedId"]: o for o in schools}
            recorded = [
                by_id[sid]
                for sid in dict.fromkeys(p.strip() for p in school.oneroster_org_id.split(","))
                if sid in by_id
            ]
            if len(recorded) == 1:
                return str(recorded[0]["sourcedId"])
            # Several recorded (a whole trust, bound by an import before this check): the
            # identifier decides among them.
            ids = {_plain_id(school.urn), _plain_id(school.dfe_number)} - {""}
            matched = [
                o for o in recorded or schools if _plain_id(_text(o.get("identifier"))) in ids
            ]
            if len(matched) == 1:
                return str(matched[0]["sourcedId"])
            doubt = matched or recorded
        held = f"the OneRoster server holds {len(schools)} schools ({_org_names(schools)})"
        if doubt:
            which = f"{len(doubt)} of them ({_org_names(doubt)}) could be this school"
        else:
            which = "none is recorded for this school"
        urn = f" ({school.urn})" if school is not None else ""
        raise SourceError(
            f"{held} and {which}: homelink will not import another school's pupils. Ask the MIS "
            f"supplier to give this school's organisation its URN{urn} or DfE number as its "
            "identifier, or for a client id that reads this school alone",
            retry=False,
        )

    # -- reading --

    def _collection(self, endpoint: str, *, since: str = "") -> list[dict[str, Any]]:
        """Every record of a list endpoint, checked complete (module docstring)."""
        attempt = 0
        while True:
            problem = self._read_list(endpoint, since)
            if isinstance(problem, list):
                return problem
            attempt += 1
            if attempt > self.retries:
                raise SourceError(
                    f"the OneRoster server sent an incomplete list of {endpoint} ({problem}), "
                    f"{attempt} times: nothing was imported (a partial roll would mark students "
                    "as left); the sync will try again"
                )
            self._pause(attempt)

    def _read_list(self, endpoint: str, since: str) -> list[dict[str, Any]] | str:
        """The records, or why the listing cannot be trusted (to read it again)."""
        records: dict[str, dict[str, Any]] = {}
        offset = 0
        total: int | None = None
        empty = 0
        while True:
            params = {"limit": str(self.limit), "offset": str(offset)}
            if since:
                params["filter"] = f"dateLastModified>'{since}'"
            answer = self._get(
                f"{self.base}/{endpoint}?{urlencode(params, quote_via=quote)}",
                what=f"{endpoint} at offset {offset:,}",
                endpoint=endpoint,
                key=endpoint,
                filtered=bool(since),
            )
            self.pages += 1
            items: list[dict[str, Any]] = answer.data[endpoint]
            count = _total(answer.headers)
            if count is not None:
                if total is not None and count != total:
                    return f"the total went from {total:,} to {count:,} while reading"
                total = count
            for item in items:
                sid = item["sourcedId"]
                if sid in records:
                    return f"{sid!r} came twice"
                records[sid] = item
            offset += len(items)
            if total is None:
                if not items:
                    break
            elif offset >= total:
                break
            elif not items:
                # The server counts more than it sends: ask again for this page.
                empty += 1
                if empty > self.retries:
                    raise SourceError(
                        f"the OneRoster server sent an incomplete page of {endpoint} at offset "
                        f"{offset:,} (empty, of {total:,}), {empty} times: nothing was "
                        "imported (a partial roll would mark students as left); the sync will "
                        "try again"
                    )
                self._pause(empty)
        if total is not None and len(records) != total:
            return f"{len(records):,} records where the server counts {total:,}"
        return list(records.values())

    def _pause(self, attempt: int) -> None:
        time.sleep(self.backoff[min(attempt, len(self.backoff)) - 1])

    def _get(
        self,
        url: str,
        *,
        what: str,
        endpoint: str,
        key: str,
        filtered: bool = False,
    ) -> _Answer:
        """A GET of a list page (``key`` names the list) whose body is well formed; anything
        else is retried or raised."""

        def well_formed(data: Any) -> bool:
            if not isinstance(data, dict) or not isinstance(data.get(key), list):
                return False
            return all(
                isinstance(item, dict)
                and isinstance(item.get("sourcedId"), str)
                and item["sourcedId"]
                for item in data[key]
            )

        answer = self._exchange("GET", url, what=what, bearer=True, page=well_formed)
        if answer.status == 200:
            return answer
        status = answer.status
        if status == 400 and filtered:
            raise _FilterRefused
        if status == 403:
            raise SourceError(
                f"the OneRoster server does not let this client id read {endpoint} (HTTP 403): "
                "ask the MIS supplier to give it read access to the roster",
                retry=False,
            )
        if status == 404:
            raise SourceError(
                f"the OneRoster server has no {endpoint} at {_show(self.base)} (HTTP 404): check "
                "the OneRoster address, which usually ends in /ims/oneroster/v1p1 or "
                "/ims/oneroster/rostering/v1p2",
                retry=False,
            )
        raise SourceError(
            f"the OneRoster server refused homelink's request for {what} (HTTP {status}"
            f"{_oauth_code(answer.data, ', ')})",
            retry=False,
        )

    def _exchange(
        self,
        method: str,
        url: str,
        *,
        what: str,
        bearer: bool,
        body: dict[str, str] | None = None,
        basic: str = "",
        page: Callable[[Any], bool] | None = None,
    ) -> _Answer:
        """One request with the waits and tries of the module docstring. Returns an answer
        that is neither retryable nor a redirect; with ``page``, a 200 is one it accepts."""
        failures = waits = 0
        renewed = False
        while True:
            hint = ""  # a 503's Retry-After, waited instead of the backoff
            headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
            if bearer:
                headers["Authorization"] = f"Bearer {self._bearer()}"
            if basic:
                headers["Authorization"] = f"Basic {basic}"
            payload = None
            if body is not None:
                payload = urlencode(body).encode()
                headers["Content-Type"] = "application/x-www-form-urlencoded"
            try:
                status, answer_headers, raw = self._http.send(method, url, headers, payload)
            except _Unreachable as exc:
                failure, why = "down", exc.reason
            except _CutOff as exc:
                failure, why = "cut", exc.reason
            else:
                data = _json(raw)
                if status == 429:
                    waits += 1
                    if waits > MAX_WAITS:
                        raise SourceError(
                            "the OneRoster server kept asking homelink to wait (HTTP 429, "
                            f"{waits} times for {what}): the sync will try again later"
                        )
                    time.sleep(self._retry_after(answer_headers.get("Retry-After")))
                    continue
                if 300 <= status < 400:
                    where = answer_headers.get("Location") or ""
                    raise SourceError(
                        f"the OneRoster server answered with a redirect (HTTP {status}"
                        + (f" to {_show(where)}" if where else "")
                        + "): homelink does not follow redirects, so that the access token "
                        "goes nowhere else; enter the address it redirects to, if it is the "
                        "school's OneRoster server",
                        retry=False,
                    )
                if status == 401 and bearer:
                    if renewed:
                        raise SourceError(
                            f"the OneRoster server refused a fresh access token for {what} "
                            "(HTTP 401): the client id may not be allowed to read the roster",
                            retry=False,
                        )
                    renewed = True
                    self._token = ""
                    continue
                if status >= 500 or status == 408:
                    failure, why = "down", f"HTTP {status}"
                    hint = answer_headers.get("Retry-After") or ""
                elif status == 200 and page is not None and not page(data):
                    failure, why = "cut", "the page was not the JSON list expected"
                else:
                    return _Answer(status, answer_headers, data)
            failures += 1
            if failures > self.retries:
                if failure == "down":
                    raise SourceError(
                        f"the OneRoster server is not answering ({why}; tried {failures} "
                        f"times for {what}): nothing was imported; the sync will try again"
                    )
                raise SourceError(
                    f"the OneRoster server sent an incomplete "
                    f"{'page of' if page is not None else 'answer for'} {what} ({why}), "
                    f"{failures} times: nothing was imported (a partial roll would mark "
                    "students as left); the sync will try again"
                )
            if hint:
                time.sleep(self._retry_after(hint))
            else:
                self._pause(failures)

    def _retry_after(self, value: str | None) -> float:
        seconds = 5.0  # none, or none that can be read
        if value:
            value = value.strip()
            # isdigit() alone takes "²", which no number parser does.
            if value.isascii() and value.isdigit():
                seconds = float(value)
            else:
                try:
                    when = email.utils.parsedate_to_datetime(value)
                except (TypeError, ValueError, IndexError, OverflowError):
                    pass  # not a date either: as if there were none
                else:
                    if when.tzinfo is None:
                        when = when.replace(tzinfo=dt.UTC)
                    seconds = (when - dt.datetime.now(dt.UTC)).total_seconds()
        return max(0.0, min(seconds, self.max_wait))

    # -- the token --

    def _bearer(self) -> str:
        if not self._token or time.monotonic() >= self._renew_at:
            self._new_token()
        return self._token

    def _secret(self) -> str:
        if not self.config.secret:
            raise SourceError(
                "no client secret is stored for the OneRoster sync: enter it again", retry=False
            )
        try:
            return unseal(self.config.secret)
        except (SecretUnreadable, SyncKeyMissing) as exc:
            raise SourceError(str(exc), retry=False) from None

    def _new_token(self) -> None:
        client_id = self.config.client_id
        secret = self._secret()
        scope = SCOPE_V1P2 if self.version == "1.2" else ""
        in_form = False
        while True:
            body = {"grant_type": "client_credentials"}
            if scope:
                body["scope"] = scope
            basic = ""
            if in_form:
                body["client_id"], body["client_secret"] = client_id, secret
            else:
                pair = f"{quote_plus(client_id)}:{quote_plus(secret)}"
                basic = base64.b64encode(pair.encode()).decode()
            asked = time.monotonic()
            answer = self._exchange(
                "POST",
                self.token_url,
                what="an access token",
                bearer=False,
                body=body,
                basic=basic,
            )
            data = answer.data
            code = _oauth_code(data)
            if answer.status == 200:
                token = data.get("access_token") if isinstance(data, dict) else None
                kind = str(data.get("token_type") or "bearer") if isinstance(data, dict) else ""
                if not isinstance(token, str) or not token or kind.casefold() != "bearer":
                    raise SourceError(
                        f"the OneRoster token address {_show(self.token_url)} did not answer "
                        "with a bearer access token: check the token URL",
                        retry=False,
                    )
                self._token = token
                self._renew_at = asked + _lifetime(data.get("expires_in"))
                return
            if code == "invalid_scope" and scope:
                scope = ""  # the server grants the client's own scopes when none is asked for
                continue
            if answer.status in (400, 401) and code in (
                "",
                "invalid_client",
                "unauthorized_client",
            ):
                if not in_form:
                    in_form = True  # some servers only take the credentials as form fields
                    continue
                raise SourceError(
                    f"the OneRoster server refused the client id {client_id!r} "
                    f"({code or f'HTTP {answer.status}'}): check the client id and the secret "
                    "(which may have been changed or revoked at the MIS)",
                    retry=False,
                )
            if answer.status == 404:
                raise SourceError(
                    f"there is no token endpoint at {_show(self.token_url)} (HTTP 404): enter "
                    "the OneRoster server's token URL",
                    retry=False,
                )
            raise SourceError(
                f"the OneRoster token endpoint refused the request (HTTP {answer.status}"
                f"{_oauth_code(data, ', ')}): check the client id, the secret and the token URL",
                retry=False,
            )

    # -- the file --

    def _zip(self, roster: _Roster, *, full: bool) -> bytes:
        qualifier = "bulk" if full else "delta"
        homerooms = _homerooms(roster.classes)
        manifest = [
            ("manifest.version", "1.0"),
            ("oneroster.version", self.version),
            ("file.classes", "bulk"),
            ("file.enrollments", qualifier),
            ("file.orgs", "bulk"),
            ("file.users", qualifier),
        ]
        if self.version == "1.2":
            manifest.append(("file.roles", qualifier))
        users = sorted(roster.users, key=lambda u: u["sourcedId"])
        files = [
            ("manifest.csv", _csv(("propertyName", "value"), manifest)),
            ("users.csv", _users_csv(users, self.version)),
            (
                "orgs.csv",
                _csv(
                    ("sourcedId", "status", "name", "type", "identifier", "parentSourcedId"),
                    (
                        (
                            o["sourcedId"],
                            _text(o.get("status")),
                            _text(o.get("name")),
                            _text(o.get("type")),
                            _text(o.get("identifier")),
                            _ref(o.get("parent")),
                        )
                        for o in _sorted(roster.orgs)
                    ),
                ),
            ),
            (
                "classes.csv",
                _csv(
                    ("sourcedId", "status", "title", "classCode", "classType", "schoolSourcedId"),
                    (
                        (
                            c["sourcedId"],
                            _text(c.get("status")),
                            _text(c.get("title")),
                            _text(c.get("classCode")),
                            _text(c.get("classType")),
                            _ref(c.get("school")),
                        )
                        for c in _sorted(roster.classes)
                        if c["sourcedId"] in homerooms
                    ),
                ),
            ),
            (
                "enrollments.csv",
                _csv(
                    (
                        "sourcedId",
                        "status",
                        "classSourcedId",
                        "schoolSourcedId",
                        "userSourcedId",
                        "role",
                    ),
                    (
                        (
                            e["sourcedId"],
                            _text(e.get("status")),
                            _ref(e.get("class")),
                            _ref(e.get("school")),
                            _ref(e.get("user")),
                            _text(e.get("role")),
                        )
                        for e in _sorted(roster.enrollments)
                        if _ref(e.get("class")) in homerooms
                        and str(e.get("role") or "").casefold() == "student"
                    ),
                ),
            ),
        ]
        if self.version == "1.2":
            files.append(("roles.csv", _roles_csv(users)))
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as zf:
            for name, text in files:
                info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.create_system = 3
                info.external_attr = 0o644 << 16
                zf.writestr(info, text.encode("utf-8"), compresslevel=6)
        return out.getvalue()


# --------------------------------------------------------------------------- records


def _ref(value: Any) -> str:
    """A GUIDRef's sourcedId (or a bare id, as some servers send)."""
    if isinstance(value, dict):
        value = value.get("sourcedId")
    return value.strip() if isinstance(value, str) else ""


def _ref_list(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return []


def _refs(value: Any) -> list[str]:
    return [sid for sid in (_ref(v) for v in _ref_list(value)) if sid]


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(_text(v) for v in value)
    if isinstance(value, dict):
        return _ref(value)
    return str(value)


def _deleted(record: dict[str, Any]) -> bool:
    return str(record.get("status") or "").casefold() == "tobedeleted"


def _roles(user: dict[str, Any]) -> list[dict[str, Any]]:
    roles = user.get("roles")
    return [r for r in roles if isinstance(r, dict)] if isinstance(roles, list) else []


def _role(user: dict[str, Any]) -> str:
    """The role the CSV reader would take: 1.2's primary role, else its first secondary one,
    else 1.1's ``role``; casefolded."""
    roles = _roles(user)
    primary = [r for r in roles if str(r.get("roleType") or "").casefold() == "primary"]
    for role in (primary or roles)[:1]:
        return str(role.get("role") or "").casefold()
    return str(user.get("role") or "").casefold()


def _orgs_of(user: dict[str, Any]) -> set[str]:
    """The orgs the CSV reader places a user in: 1.1's ``orgs``, 1.2's ``primaryOrg`` and the
    orgs of its ``roles`` for the role it is read as."""
    role = _role(user)
    found = set(_refs(user.get("orgs")))
    found.add(_ref(user.get("primaryOrg")))
    found.update(
        _ref(r.get("org")) for r in _roles(user) if str(r.get("role") or "").casefold() == role
    )
    found.discard("")
    return found


def _people_of(
    users: Iterable[dict[str, Any]], org: str, population: Iterable[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The users of ``users`` that belong in ``org``'s file, as if the server held that org
    alone: its students and staff, and the contacts linked to its students (``population``:
    everyone the server lists) from either side, each contact's agents cut to those students
    (a parent with a child at another school of the trust names no pupil of that school)."""
    population = list(population)
    students = {u["sourcedId"] for u in population if _role(u) == "student" and org in _orgs_of(u)}
    named = {a for u in population if u["sourcedId"] in students for a in _refs(u.get("agents"))}
    kept: list[dict[str, Any]] = []
    for user in users:
        if _role(user) not in CONTACT_ROLES:
            if org in _orgs_of(user):
                kept.append(user)
            continue
        agents = _ref_list(user.get("agents"))
        own = [a for a in agents if _ref(a) in students]
        if own or user["sourcedId"] in named:
            kept.append(user if len(own) == len(agents) else {**user, "agents": own})
    return kept


def _classes_of(classes: list[dict[str, Any]], org: str | None) -> list[dict[str, Any]]:
    if org is None:
        return classes
    return [c for c in classes if _ref(c.get("school")) == org]


def _org_type(org: dict[str, Any]) -> str:
    return str(org.get("type") or "").strip().casefold()


def _org_names(orgs: list[dict[str, Any]], most: int = 10) -> str:
    """Orgs as a message names them (their names: nothing personal), each on one line and
    short, as the server's text goes into an email."""
    names = sorted(" ".join((_text(o.get("name")) or o["sourcedId"]).split())[:80] for o in orgs)
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def _plain_id(value: str) -> str:
    """An identifier compared as letters and digits only ("838/4512" is "8384512")."""
    return "".join(ch for ch in value if ch.isalnum()).casefold()


def _homerooms(classes: list[dict[str, Any]]) -> set[str]:
    return {
        c["sourcedId"] for c in classes if str(c.get("classType") or "").casefold() == "homeroom"
    }


def _sorted(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(records, key=lambda r: r["sourcedId"])


def _csv(header: tuple[str, ...], rows: Iterable[Iterable[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


_USERS_1P1 = (
    "sourcedId",
    "status",
    "enabledUser",
    "orgSourcedIds",
    "role",
    "givenName",
    "familyName",
    "identifier",
    "email",
    "sms",
    "phone",
    "agentSourcedIds",
    "grades",
)
_USERS_1P2 = (
    "sourcedId",
    "status",
    "enabledUser",
    "givenName",
    "familyName",
    "identifier",
    "email",
    "sms",
    "phone",
    "agentSourcedIds",
    "grades",
    "primaryOrgSourcedId",
)


_PLAIN = ("status", "enabledUser", "givenName", "familyName", "identifier", "email", "sms", "phone")


def _users_csv(users: list[dict[str, Any]], version: str) -> str:
    # Written for speed as well as clarity: a large school has 60,000 users.
    def common(u: dict[str, Any]) -> list[str]:
        cells = [u["sourcedId"]]
        for name in _PLAIN:
            value = u.get(name)
            cells.append(value if value.__class__ is str else _text(value))
        cells.append(",".join(_refs(u.get("agents"))))
        cells.append(",".join(_text(g) for g in _ref_list(u.get("grades"))))
        return cells

    if version == "1.2":
        return _csv(_USERS_1P2, ([*common(u), _ref(u.get("primaryOrg"))] for u in users))

    def row(u: dict[str, Any]) -> list[str]:
        role = u.get("role")
        orgs = _refs(u.get("orgs")) or [
            o for o in [*(_ref(r.get("org")) for r in _roles(u)), _ref(u.get("primaryOrg"))] if o
        ]
        sid, status, enabled, *rest = common(u)
        return [
            sid,
            status,
            enabled,
            ",".join(dict.fromkeys(orgs)),
            role if isinstance(role, str) else _role(u),
            *rest,
        ]

    return _csv(_USERS_1P1, (row(u) for u in users))


def _roles_csv(users: list[dict[str, Any]]) -> str:
    rows: list[tuple[str, ...]] = []
    for user in users:
        sid, status = user["sourcedId"], _text(user.get("status"))
        roles = _roles(user)
        if not roles and isinstance(user.get("role"), str) and user["role"]:
            roles = [{"roleType": "primary", "role": user["role"], "org": user.get("primaryOrg")}]
        for n, role in enumerate(roles, start=1):
            rows.append(
                (
                    f"{sid}#{n}",
                    status,
                    sid,
                    _text(role.get("roleType")),
                    _text(role.get("role")),
                    _ref(role.get("org")),
                )
            )
    return _csv(("sourcedId", "status", "userSourcedId", "roleType", "role", "orgSourcedId"), rows)


# --------------------------------------------------------------------------- small parts


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _count(value: str | None) -> int | None:
    """A header's whole number (a count, a length), or None when absent or not one: isdigit()
    alone takes "²", and a number too long for a count is no count either."""
    text = (value or "").strip()
    if not text or len(text) > 18 or not (text.isascii() and text.isdigit()):
        return None
    return int(text)


def _total(headers: http.client.HTTPMessage) -> int | None:
    """``X-Total-Count``; one that is not a number is as good as none (the list then ends at
    an empty page)."""
    return _count(headers.get("X-Total-Count"))


def _oauth_code(data: Any, prefix: str = "") -> str:
    """An OAuth error code from an answer, safe to show (a short token, never free text)."""
    code = data.get("error") if isinstance(data, dict) else None
    if isinstance(code, str) and _OAUTH_ERROR.match(code):
        return prefix + code
    return ""


def _lifetime(expires_in: Any) -> float:
    """Seconds to use a token for: renewed at half its life, at most a minute early."""
    try:
        seconds = float(expires_in)
    except (TypeError, ValueError):
        return 3600.0  # none given: renewed on the first 401 instead
    if seconds <= 0:
        return 0.0
    return seconds - min(60.0, seconds / 2)


def _stamp(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _human(cursor: str) -> str:
    try:
        when = dt.datetime.fromisoformat(cursor)
    except ValueError:
        return cursor
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC).strftime("%d %b %Y %H:%M UTC")
