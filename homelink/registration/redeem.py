"""``redeem_code``: what the "enter your code" page calls. Limits first, then the link.

Guessing is hopeless by construction: 80-bit codes, thirty attempts an hour per address and five
failures per account before a lock-out, a site-wide budget that slows everyone and alerts staff
(but never refuses: an attacker must not be able to lock every parent out), and one answer for
unknown, wrong, expired, revoked and locked codes alike.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable

from django.contrib.auth.models import AbstractBaseUser

from homelink.accounts.models import Parent
from homelink.ratelimit import limiter
from homelink.ratelimit.policies import CODE_BUDGET, CODE_PER_ACCOUNT, CODE_PER_IP
from homelink.registration.linking import CodeNotAccepted, LinkResult, link_with_code


def redeem_code(
    *,
    user: AbstractBaseUser,
    raw_code: str,
    ip: str,
    relationship: str = "",
    now: dt.datetime | None = None,
    sleep: Callable[[float], None] = time.sleep,
    parent: Parent | None = None,
) -> LinkResult:
    """Raises :class:`CodeNotAccepted` (also when limited) or ``LinkRefused``. ``parent``: the
    account's :class:`Parent`, when the caller has it already."""
    account = f"user:{user.pk}"
    # Counted before the code is checked, outside any transaction, so concurrent guesses are
    # all counted and a rollback cannot undo the count.
    verdict = limiter.hit_all((CODE_PER_IP, ip), (CODE_PER_ACCOUNT, account), now=now)
    delay = CODE_BUDGET.hit(now=now).delay
    if delay:
        sleep(delay)
    if not verdict.allowed:
        raise CodeNotAccepted()
    result = link_with_code(
        user=user, raw_code=raw_code, relationship=relationship, now=now, parent=parent
    )
    CODE_PER_ACCOUNT.reset(account)
    CODE_PER_IP.refund(ip, now=now)
    return result
