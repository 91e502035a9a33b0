"""The limits the registration and login views apply, in one place so they are reviewed together.

Per-IP policies count every attempt (a spray from one address is stopped whichever accounts it
targets); the caller refunds an attempt that succeeds, so a hall full of parents on the school's
one address is limited by its mistakes only. Per-account policies count failures since the last
success (a success resets them, or refunds its own attempt where noted). "Account" is whatever a
code or password is checked against: the signed-in parent entering a code, or the normalised email
typed at login.

Budgets are site-wide: past them every attempt is slowed (at most two seconds) and staff alerted,
but nobody is refused, so an attacker cannot lock every parent out by flooding.

Passwords and second factors: known devices
-------------------------------------------

A lock-out per account lets anyone who knows an address keep its owner out; a lock-out per
address lets a pupil on the school's one connection keep the head out; and a delay per account
(homelink had one) bounds nothing against many addresses, while every delay holds a web worker.
So guesses are split by *who can make them* (OWASP's "device cookies",
:mod:`homelink.ratelimit.devices`). A browser where an account has signed in with its current
password carries a signed cookie saying so; a browser where it has also given a right code says
that too. Nothing waits: a limit refuses at once or not at all (only the site-wide budgets slow).

Password, from a device *known* for the account (only the owner's own browsers, since the cookie
is set after a right password and dies when the password changes): only
``LOGIN_KNOWN_DEVICE``, 10 failures in 15 minutes. No per-address limit applies, so the head at
school is never refused because of a pupil's guesses on the same connection.

Password, from a *new* device: per address (``LOGIN_PER_IP``, a spray), per address and account
(``LOGIN_PER_ACCOUNT_IP``), and a hard cap per account across all addresses
(``LOGIN_NEW_DEVICES``: 20 failures an hour, then every new device is refused for that account
for an hour). The cap is counted for unknown emails too, so its refusal says nothing about
whether the account exists. However many addresses an attacker has, they get 20 passwords an hour
at one account.

Second factor, from a device known for it (a right code was given there under the current
password): only ``OTP_KNOWN_DEVICE``. From a new device: per address as for passwords, and a hard
cap per account (``OTP_NEW_DEVICES``: 10 wrong codes an hour). Only someone who has just given the
password reaches a code, so reaching the cap means the password is known to someone else: the
console replaces it with a random one (every session of the account ends, the attacker's too) and
emails the owner a link to choose a new one (:func:`homelink.console.otp._check`). The owner is
warned after ``OTP_OWNER_ALERT_AFTER`` wrong codes, before that.

A password reset by email remembers the browser it is done on and clears the account's caps, so
the owner who proves the mailbox always gets back in, even during an attack. The residual cost:
an owner on a brand-new device during a sustained attack on their account is refused until the
hour is over, and must reset the password by email (which always works) or use a device they
have signed in on before.
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

# Passwords from new devices: fifty attempts from one address in 15 minutes, then that address is
# refused for 15 minutes. A success is refunded, so a school hall on one connection is limited by
# its mistakes only.
LOGIN_PER_IP = Policy(
    "login:ip", limit=50, window=timedelta(minutes=15), lockout=timedelta(minutes=15)
)
# Ten wrong passwords for one account from one address (on new devices): that address is refused
# for that account (the identity is "account address").
LOGIN_PER_ACCOUNT_IP = Policy(
    "login:account_ip", limit=10, window=timedelta(minutes=15), lockout=timedelta(minutes=15)
)
# The hard cap per account for new devices, across all addresses: twenty failures an hour (a
# success from a new device gives its attempt back), then new devices are refused for that
# account for an hour. A password reset clears it.
LOGIN_NEW_DEVICES = Policy(
    "login:new_devices", limit=20, window=timedelta(hours=1), lockout=timedelta(hours=1)
)
# Each device known for the account (its owner's), counted on its own (the account and the
# browser's id): ten wrong passwords in 15 minutes, then that browser waits 15 minutes. Only that
# browser counts there, so a shared office PC cannot spend the limit of the owner's phone.
LOGIN_KNOWN_DEVICE = Policy(
    "login:known_device", limit=10, window=timedelta(minutes=15), lockout=timedelta(minutes=15)
)
# A bigger install (a trust's parents all signing in at once) raises it.
LOGIN_BUDGET = Budget(
    "login:global", per_minute=getattr(settings, "HOMELINK_LOGIN_BUDGET_PER_MINUTE", 600)
)

# The console's second factor (homelink.console.otp): only someone who has just signed in with
# the account's password can try a code, so these bound what a stolen password is worth. From new
# devices: five wrong codes per account and address, twenty per address, then that address waits
# 15 minutes.
OTP_PER_IP = Policy("otp:ip", limit=20, window=timedelta(minutes=15), lockout=timedelta(minutes=15))
OTP_PER_ACCOUNT_IP = Policy(
    "otp:account_ip", limit=5, window=timedelta(minutes=15), lockout=timedelta(minutes=15)
)
# The hard cap per account for new devices, across all addresses: the tenth wrong code in an hour
# ends the password (the caller replaces it, which ends every session, and emails the owner when an
# attempt leaves nothing remaining). A right code gives its attempt back; a password reset clears
# it.
OTP_NEW_DEVICES = Policy(
    "otp:new_devices", limit=10, window=timedelta(hours=1), lockout=timedelta(hours=1)
)
# The wrong code from new devices at which the owner is first warned that their password is known.
OTP_OWNER_ALERT_AFTER = 5
# A browser where the account has given a right code: ten wrong codes in 15 minutes, then 15
# minutes' wait. Nobody else can count here, so nobody else can cause it.
# Per known browser, like LOGIN_KNOWN_DEVICE.
OTP_KNOWN_DEVICE = Policy(
    "otp:known_device", limit=10, window=timedelta(minutes=15), lockout=timedelta(minutes=15)
)
# Staff signing in across the install: far fewer than parents' attempts.
OTP_BUDGET = Budget("otp:global", per_minute=120)
