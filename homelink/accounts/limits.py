"""Limits on what an account can make the site send, beside the login limits in
:mod:`homelink.ratelimit.policies`: every email and SMS costs someone something (an SMS costs the
school a credit), so none of them may be triggered without bound."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings

from homelink.ratelimit.limiter import Budget, Policy

# A parent who lost the first email asks again once or twice; more is a script.
CONFIRM_RESEND_PER_ACCOUNT = Policy("account:confirm_resend", limit=3, window=timedelta(hours=1))
# Five texts an hour, each code good for five tries: 25 guesses an hour at one in a million.
MOBILE_CODE_PER_ACCOUNT = Policy("account:mobile_code", limit=5, window=timedelta(hours=1))
# Per number, whichever accounts ask: a parent needs one code and perhaps a second; a script
# cycling through accounts to text one number (a nuisance, or a premium-rate range earning per
# text) gets three an hour. The limiter stores only a keyed hash of the number.
MOBILE_CODE_PER_NUMBER = Policy("account:mobile_number", limit=3, window=timedelta(hours=1))
# A school hall registering on one address stays well under this; a script filling the
# table with accounts does not.
SIGNUP_PER_IP = Policy("account:signup_ip", limit=100, window=timedelta(hours=1))
# Reset emails go only to existing accounts, but each one is a message someone did not ask for.
PASSWORD_RESET_PER_IP = Policy("account:reset_ip", limit=20, window=timedelta(hours=1))


def verify_sms_budget() -> Budget:
    """Verification texts per minute across the install before each one is slowed and the
    operators are emailed (once a minute while it lasts). Never refuses: a real rush of parents
    still gets its codes, a few seconds late. Read when used, so the setting is never stale."""
    return Budget("sms:verify", per_minute=settings.HOMELINK_VERIFY_SMS_BUDGET_PER_MINUTE)


def verify_sms_per_day() -> Policy:
    """Verification texts a day across the install, then none until the window moves on: the
    budget above only slows, and a domain that takes mail for any address gives a script as many
    confirmed accounts as it likes. Read when used, like the budget."""
    return Policy(
        "sms:verify_day", limit=settings.HOMELINK_VERIFY_SMS_PER_DAY, window=timedelta(days=1)
    )
