"""The limits the registration and login views apply, in one place so they are reviewed together.

Per-IP policies count every attempt (a spray from one address is stopped whichever accounts it
targets); the caller refunds an attempt that succeeds, so a hall full of parents on the school's
one address is limited by its mistakes only. Per-account policies are reset by a success, so they
count failures since the last one. "Account" is whatever a code or password is checked against:
the signed-in parent entering a code, or the normalised email typed at login.

Budgets are site-wide: past them every attempt is slowed (at most two seconds) and staff alerted,
but nobody is refused, so an attacker cannot lock every parent out by flooding.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings

from homelink.ratelimit.limiter import Budget, Policy

# A code is guessed once per attempt; thirty misses an hour from one address is far above what a
# family, or a school hall, mistypes, and a spray's 10,000 guesses stop at the thirty-first.
CODE_PER_IP = Policy("code:ip", limit=30, window=timedelta(hours=1), lockout=timedelta(hours=1))
# Five misses by one signed-in account lock that account's code entry for an hour (a success
# clears the count). With 80-bit codes this only bounds nuisance; the per-address limit and the
# site-wide budget are what make spraying hopeless.
CODE_PER_ACCOUNT = Policy(
    "code:account", limit=5, window=timedelta(hours=1), lockout=timedelta(hours=1)
)
# An install expecting a bigger rush (a trust's letters all going home at once) raises it.
CODE_BUDGET = Budget(
    "code:global", per_minute=getattr(settings, "HOMELINK_CODE_BUDGET_PER_MINUTE", 300)
)

LOGIN_PER_IP = Policy(
    "login:ip", limit=50, window=timedelta(minutes=15), lockout=timedelta(minutes=15)
)
LOGIN_PER_ACCOUNT = Policy(
    "login:account", limit=10, window=timedelta(minutes=15), lockout=timedelta(minutes=15)
)
LOGIN_BUDGET = Budget("login:global", per_minute=600)
