"""The limits the registration and login views apply, in one place so they are reviewed together.

Per-IP policies count every attempt (a spray from one address is stopped whichever accounts it
targets); the caller refunds an attempt that succeeds, so a hall full of parents on the school's
one address is limited by its mistakes only. Per-account policies are reset by a success, so they
count failures since the last one. "Account" is whatever a code or password is checked against:
the signed-in parent entering a code, or the normalised email typed at login.

Budgets are site-wide: past them every attempt is slowed (at most two seconds) and staff alerted,
but nobody is refused, so an attacker cannot lock every parent out by flooding.

Passwords and second factors are never locked per account. Anyone who knows an address could
otherwise keep its owner out (ten wrong passwords used to lock a staff account for 15 minutes,
refusing even the right one). Instead guessing is slowed and bounded by what the attacker has:

- each *address* is refused after its own mistakes: per address (a spray over many accounts) and
  per address and account (guessing one account), then locked out for 15 minutes;
- each *account* only slows down: a delay that doubles per failure since its last success and
  stops at a few seconds (:class:`~homelink.ratelimit.limiter.Backoff`), applied to every attempt
  on it, right or wrong, so a fast answer never gives a right guess away;
- the site-wide budget slows everyone past it and emails the operators.

So the owner, from any address the attacker has not used, always gets in with the right password
(and code), at worst a few seconds late; an attacker gets about ten passwords, and five codes, per
address per 15 minutes, and a botnet's spread of addresses shows up in the budget's alert. A
shared address (a school's one connection) is refused for everyone behind it only after its own
failures: the refund on success keeps a busy hall within its limit.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings

from homelink.ratelimit.limiter import Backoff, Budget, Policy

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

# Fifty attempts from one address in 15 minutes, then that address is refused for 15 minutes. A
# success is refunded, so a school hall on one connection is limited by its mistakes only.
LOGIN_PER_IP = Policy(
    "login:ip", limit=50, window=timedelta(minutes=15), lockout=timedelta(minutes=15)
)
# Ten wrong passwords for one account from one address: that address is refused for that account
# (the identity is "account address"); the owner elsewhere is not.
LOGIN_PER_ACCOUNT_IP = Policy(
    "login:account_ip", limit=10, window=timedelta(minutes=15), lockout=timedelta(minutes=15)
)
# The account itself is never refused: three free mistakes, then 0.5, 1, 2 and at most 3 seconds
# before each attempt, until the right password (or a reset) clears it.
LOGIN_BACKOFF = Backoff("login:backoff", free=3, first=0.5, cap=3.0, window=timedelta(hours=1))
LOGIN_BUDGET = Budget("login:global", per_minute=600)

# The console's second factor (homelink.console.otp): only someone who has just signed in with
# the account's password can try a code, so these bound what a stolen password is worth. Five
# wrong codes per account and address, twenty per address, then that address waits 15 minutes.
OTP_PER_IP = Policy("otp:ip", limit=20, window=timedelta(minutes=15), lockout=timedelta(minutes=15))
OTP_PER_ACCOUNT_IP = Policy(
    "otp:account_ip", limit=5, window=timedelta(minutes=15), lockout=timedelta(minutes=15)
)
# The account slows down but is never refused: the owner with their app always gets in. Wrong
# codes from other addresses mean the password is known: OTP_OWNER_ALERT_AFTER of them and the
# owner is emailed (once per window) to change it, which ends every other session.
OTP_BACKOFF = Backoff("otp:backoff", free=2, first=0.5, cap=3.0, window=timedelta(hours=1))
OTP_OWNER_ALERT_AFTER = 5
# Staff signing in across the install: far fewer than parents' attempts.
OTP_BUDGET = Budget("otp:global", per_minute=120)
