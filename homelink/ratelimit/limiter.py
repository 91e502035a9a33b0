"""A database-backed rate limiter that counts exactly under concurrency.

Every attempt is one ``INSERT … ON CONFLICT (key) DO UPDATE … RETURNING`` statement: the database
serialises attempts on the same bucket, so N concurrent attempts add exactly N and exactly
``limit`` of them are allowed, on PostgreSQL and on SQLite alike; a refused attempt costs the same
one statement, so a spray is cheap to turn away.

How the registration and login views use it (see :mod:`homelink.ratelimit.policies`)::

    verdict = limiter.hit_all((CODE_PER_IP, client_ip(request)), (CODE_PER_ACCOUNT, account))
    delay = CODE_BUDGET.hit().delay  # never refuses; sleep for it, staff are told once a minute
    if not verdict.allowed: answer exactly as for a wrong code
    … check the code (in its own transaction) …
    on success: CODE_PER_ACCOUNT.reset(account); CODE_PER_IP.refund(ip)

``hit`` counts *attempts*, counted before the code is checked, so concurrent guesses cannot all
slip past a check made before any of them failed. Resetting a per-account bucket when the code or
password is right makes it count failures since the last success; refunding the per-IP attempt
makes it count failures without letting one valid code wipe a spray's record.

Passwords and second factors choose their policies by device: a browser known for the account
(:mod:`homelink.ratelimit.devices`) counts only against the owner's own per-account limit, a new
one against per-address limits and a hard per-account cap (see
:mod:`homelink.ratelimit.policies`). Nothing here sleeps except what a :class:`Budget` asks for.

Call these outside ``transaction.atomic`` blocks (before the one that redeems the code): inside
one, a rollback would undo the count, and on PostgreSQL the bucket's row lock would be held until
the outer transaction ends, queueing every other attempt on that bucket behind it.

Identities (addresses, emails, account ids) are hashed with the site's secret before they reach
the database and never reach a log line.
"""

from __future__ import annotations

import logging
import random
import time
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import OperationalError, connection, transaction
from django.utils import timezone
from django.utils.crypto import salted_hmac
from django.utils.dateparse import parse_datetime

from homelink.ratelimit.ip import client_ip
from homelink.ratelimit.models import SCOPE_MAX_LENGTH, Bucket
from homelink.ratelimit.signals import budget_exceeded

__all__ = [
    "Budget",
    "GlobalVerdict",
    "Policy",
    "Verdict",
    "bucket_key",
    "client_ip",
    "global_hit",
    "hit",
    "hit_all",
    "prune",
    "refund",
    "refund_all",
    "reset",
]

logger = logging.getLogger(__name__)

KEY_SALT = "homelink.ratelimit.bucket"
GLOBAL_IDENTITY = "*"
GLOBAL_WINDOW = timedelta(minutes=1)
MAX_DELAY = 2.0
# Shared-cache SQLite (the in-memory test database) reports a busy table as "locked" at once
# instead of waiting on the busy timeout, so writers from several threads retry briefly.
SQLITE_LOCK_RETRIES = 200


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether one attempt may go ahead.

    ``remaining``: attempts still allowed in this window after this one. ``retry_after``: when a
    refused identity may try again (None when allowed). ``locked``: refused because of a lock-out
    rather than just a full window. Callers must answer a refusal exactly as a wrong code, so the
    attacker cannot tell a lock from a miss; the fields are for logs of counts and for tests.
    """

    allowed: bool
    remaining: int
    retry_after: timedelta | None
    locked: bool


@dataclass(frozen=True, slots=True)
class GlobalVerdict:
    """``delay``: seconds to slow this request by (0 within budget, at most ``MAX_DELAY``).
    ``alert``: True for exactly one request per window, the first over budget. ``count``:
    attempts in this window so far, this one included."""

    delay: float
    alert: bool
    count: int


@dataclass(frozen=True, slots=True)
class Policy:
    """A named limit, so a view states it in one line: ``CODE_PER_IP.hit(client_ip(request))``."""

    scope: str
    limit: int
    window: timedelta
    lockout: timedelta | None = None

    def hit(self, identity: str, *, now: datetime | None = None) -> Verdict:
        return hit(
            self.scope,
            identity,
            limit=self.limit,
            window=self.window,
            lockout=self.lockout,
            now=now,
        )

    def reset(self, identity: str) -> None:
        reset(self.scope, identity)

    def refund(self, identity: str, *, now: datetime | None = None) -> None:
        refund(self.scope, identity, now=now)


@dataclass(frozen=True, slots=True)
class Budget:
    """A site-wide budget per minute: slows everyone past it and alerts staff, never refuses."""

    scope: str
    per_minute: int

    def hit(self, *, now: datetime | None = None) -> GlobalVerdict:
        return global_hit(self.scope, per_minute=self.per_minute, now=now)


def bucket_key(scope: str, identity: str) -> str:
    """The stored key: an HMAC of scope and identity under SECRET_KEY, never the identity itself.

    The identity is stripped and case-folded so ``Parent@Example.org`` and ``parent@example.org``
    share a bucket instead of giving an attacker a fresh one per spelling.
    """
    value = f"{scope}\x00{identity.strip().casefold()}"
    return salted_hmac(KEY_SALT, value, algorithm="sha256").hexdigest()


def hit(
    scope: str,
    identity: str,
    *,
    limit: int,
    window: timedelta,
    lockout: timedelta | None = None,
    now: datetime | None = None,
) -> Verdict:
    """Record one attempt by ``identity`` in ``scope`` and say whether it may go ahead.

    The first ``limit`` attempts in a window that starts with the first attempt are allowed;
    later ones are refused until the window ends, and still counted. With ``lockout``, the first
    attempt over the limit also locks the identity out for ``lockout`` from then, and the lock-out
    ends the window: once it is over the identity starts afresh. Exact under concurrency.
    """
    if not 0 < len(scope) <= SCOPE_MAX_LENGTH:
        # SQLite would store a longer scope silently and PostgreSQL refuse it: fail alike.
        raise ValueError("scope must be 1 to 32 characters")
    if limit < 1:
        raise ValueError("limit must be at least 1")
    if window <= timedelta(0) or (lockout is not None and lockout <= timedelta(0)):
        raise ValueError("window and lockout must be positive")
    now = now or timezone.now()
    count, expires_at, locked_until = _upsert(
        scope, identity, limit=limit, window=window, lockout=lockout, now=now
    )
    locked = locked_until is not None and locked_until > now
    allowed = not locked and count <= limit
    if count == limit + 1:
        # Once per window or lock-out, however long the spray goes on: enough to see it happen.
        logger.info("rate limit reached: scope=%s locked=%s", scope, locked)
    return Verdict(
        allowed=allowed,
        remaining=0 if locked else max(0, limit - count),
        retry_after=None if allowed else max(expires_at - now, timedelta(0)),
        locked=locked,
    )


def hit_all(*checks: tuple[Policy, str], now: datetime | None = None) -> Verdict:
    """``hit`` each (policy, identity) in order and stop at the first refusal.

    Put the per-IP policy first: a refused address then costs one statement and adds nothing to
    the per-account buckets, so a blocked sprayer cannot go on locking accounts out.
    """
    if not checks:
        raise ValueError("hit_all needs at least one check")
    remaining: int | None = None
    for policy, identity in checks:
        verdict = policy.hit(identity, now=now)
        if not verdict.allowed:
            return verdict
        remaining = verdict.remaining if remaining is None else min(remaining, verdict.remaining)
    assert remaining is not None
    return Verdict(allowed=True, remaining=remaining, retry_after=None, locked=False)


def reset(scope: str, identity: str) -> None:
    """Forget ``identity`` in ``scope``, lock-out included: after a correct code or password on a
    per-account bucket, or when staff unlock an account."""
    table, col = _names()
    # One statement: a QuerySet.delete() would wrap it in a transaction of its own.
    _execute(
        f"DELETE FROM {table} WHERE {col['key']} = %(key)s",  # noqa: S608 - quoted names only
        {"key": bucket_key(scope, identity)},
        fetch=False,
    )


def refund(scope: str, identity: str, *, now: datetime | None = None) -> None:
    """Give back one attempt in the current window (never below zero; a lock-out stays).

    For per-IP buckets after a success, so a school hall full of parents on one address is
    limited by its mistakes, not its registrations, while a sprayer holding one real code can
    win back one attempt, not wipe the count as a reset would.
    """
    _refund([bucket_key(scope, identity)], now or timezone.now())


def refund_all(*refunds: tuple[Policy, str], now: datetime | None = None) -> None:
    """:func:`refund` one attempt to each (policy, identity), in one statement."""
    _refund(
        [bucket_key(policy.scope, identity) for policy, identity in refunds], now or timezone.now()
    )


def _refund(keys: list[str], now: datetime) -> None:
    table, col = _names()
    params: dict[str, Any] = {f"k{n}": key for n, key in enumerate(keys)}
    params["now"] = _db_datetime(now)
    listed = ", ".join(f"%(k{n})s" for n in range(len(keys)))
    # One statement, as for every attempt; a refund in a window that is over changes nothing.
    _execute(
        f"UPDATE {table} SET"  # noqa: S608 - quoted names only; every value is a parameter
        f" {col['count']} = CASE WHEN {col['count']} > 0 THEN {col['count']} - 1 ELSE 0 END,"
        f" {col['updated_at']} = %(now)s"
        f" WHERE {col['key']} IN ({listed}) AND {col['expires_at']} > %(now)s",
        params,
        fetch=False,
    )


def global_hit(
    scope: str, *, per_minute: int, max_delay: float = MAX_DELAY, now: datetime | None = None
) -> GlobalVerdict:
    """Count one attempt against a site-wide budget; never refuses.

    Past ``per_minute`` in a minute, the delay grows with the excess, reaching ``max_delay`` at
    twice the budget, so a flood is slowed without an attacker being able to lock every parent
    out. The first attempt over budget in each window gets ``alert=True``, logs a warning (scope
    and count only) and sends :data:`homelink.ratelimit.signals.budget_exceeded` after commit.
    """
    if per_minute < 1:
        raise ValueError("per_minute must be at least 1")
    now = now or timezone.now()
    count, _, _ = _upsert(
        scope, GLOBAL_IDENTITY, limit=per_minute, window=GLOBAL_WINDOW, lockout=None, now=now
    )
    excess = count - per_minute
    delay = min(max_delay, max_delay * excess / per_minute) if excess > 0 else 0.0
    # The upsert hands out each count exactly once, so exactly one request sees budget + 1.
    alert = excess == 1
    if alert:
        logger.warning(
            "rate limit budget exceeded: scope=%s count=%d per_minute=%d", scope, count, per_minute
        )
        transaction.on_commit(
            lambda: budget_exceeded.send(
                sender=Bucket, scope=scope, count=count, per_minute=per_minute
            )
        )
    return GlobalVerdict(delay=delay, alert=alert, count=count)


def prune(now: datetime | None = None) -> int:
    """Delete buckets whose window and lock-out are over; returns how many. Run from cron."""
    now = now or timezone.now()
    deleted, _ = Bucket.objects.filter(expires_at__lte=now).delete()
    return deleted


def _upsert(
    scope: str,
    identity: str,
    *,
    limit: int,
    window: timedelta,
    lockout: timedelta | None,
    now: datetime,
) -> tuple[int, datetime, datetime | None]:
    """The one statement: start a window, or count into the current one, and lock on overflow."""
    table, col = _names()

    def old(name: str) -> str:
        return f"{table}.{col[name]}"

    # A row is stale once its window (or its lock-out, which replaces the window) is over.
    stale = f"{old('expires_at')} <= %(now)s"
    # The attempt that takes the count past the limit is the one that locks.
    locking = f"{old('locked_until')} IS NULL AND {old('count')} >= %(limit)s"
    if lockout is not None:
        locked_until = (
            f"CASE WHEN {stale} THEN NULL WHEN {locking} THEN %(lock_end)s"
            f" ELSE {old('locked_until')} END"
        )
        expires_at = (
            f"CASE WHEN {stale} THEN %(window_end)s WHEN {locking} THEN %(lock_end)s"
            f" ELSE {old('expires_at')} END"
        )
    else:
        locked_until = f"CASE WHEN {stale} THEN NULL ELSE {old('locked_until')} END"
        expires_at = f"CASE WHEN {stale} THEN %(window_end)s ELSE {old('expires_at')} END"
    # Only quoted names from the model are interpolated; every value is a query parameter.
    sql = (
        f"INSERT INTO {table} ({col['key']}, {col['scope']}, {col['count']},"  # noqa: S608
        f" {col['window_start']}, {col['expires_at']}, {col['locked_until']}, {col['updated_at']})"
        " VALUES (%(key)s, %(scope)s, 1, %(now)s, %(window_end)s, NULL, %(now)s)"
        f" ON CONFLICT ({col['key']}) DO UPDATE SET"
        # SET expressions all read the row as it was before this statement, on both databases.
        f" {col['count']} = CASE WHEN {stale} THEN 1 ELSE {old('count')} + 1 END,"
        f" {col['window_start']} = CASE WHEN {stale} THEN %(now)s ELSE {old('window_start')} END,"
        f" {col['locked_until']} = {locked_until},"
        f" {col['expires_at']} = {expires_at},"
        f" {col['updated_at']} = %(now)s"
        f" RETURNING {col['count']}, {col['expires_at']}, {col['locked_until']}"
    )
    params: dict[str, Any] = {
        "key": bucket_key(scope, identity),
        "scope": scope,
        "now": _db_datetime(now),
        "window_end": _db_datetime(now + window),
        "limit": limit,
    }
    if lockout is not None:
        params["lock_end"] = _db_datetime(now + lockout)
    row = _execute(sql, params)
    assert row is not None
    count, expires_at, locked_until = row
    expires = _from_db(expires_at)
    assert expires is not None
    return int(count), expires, _from_db(locked_until)


def _execute(sql: str, params: dict[str, Any], *, fetch: bool = True) -> tuple[Any, ...] | None:
    for attempt in range(SQLITE_LOCK_RETRIES + 1):
        # One statement is atomic by itself; a transaction of its own would only add a BEGIN and
        # a COMMIT round trip to every attempt. Inside the caller's transaction, a savepoint lets
        # a failed attempt be retried without spoiling the caller's work.
        atomic = transaction.atomic() if connection.in_atomic_block else nullcontext()
        try:
            with atomic, connection.cursor() as cursor:
                cursor.execute(sql, params)
                return cursor.fetchone() if fetch else None
        except OperationalError as exc:
            retryable = connection.vendor == "sqlite" and "locked" in str(exc)
            if not retryable or attempt == SQLITE_LOCK_RETRIES:
                raise
            # Jittered so retrying threads do not collide again in step.
            time.sleep(random.uniform(0, min(0.02, 0.0005 * 2**attempt)))
    raise AssertionError("unreachable")


def _names() -> tuple[str, dict[str, str]]:
    qn = connection.ops.quote_name
    columns = ("key", "scope", "count", "window_start", "expires_at", "locked_until", "updated_at")
    return qn(Bucket._meta.db_table), {name: qn(name) for name in columns}


def _db_datetime(value: datetime) -> Any:
    if timezone.is_naive(value):
        raise ValueError("rate-limit times must be timezone-aware")
    return connection.ops.adapt_datetimefield_value(value)


def _from_db(value: Any) -> datetime | None:
    # Raw SQL skips the model field's converters: SQLite hands back text in UTC.
    if value is None:
        return None
    parsed = parse_datetime(value) if isinstance(value, str) else value
    if not isinstance(parsed, datetime):
        raise TypeError(f"not a datetime from the database: {type(value).__name__}")
    return parsed if timezone.is_aware(parsed) else parsed.replace(tzinfo=UTC)
