"""Email confirmation links: a signed, timestamped token that names an account and an address.

The token carries a keyed digest of the address rather than the address itself, so the link (which
lands in web server logs and mail scanners) holds nothing personal, and a link for an address the
parent has since replaced stops working. It also carries a digest of the account's password hash:
a new password (a reset by whoever owns the mailbox) voids every link sent before, so a change of
address asked for by someone who held the account earlier cannot be completed afterwards.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.core import signing
from django.utils.crypto import constant_time_compare, salted_hmac

SALT = "homelink.accounts.confirm_email"
MAX_AGE = dt.timedelta(days=3)


class TokenExpired(Exception):
    pass


class TokenInvalid(Exception):
    pass


@dataclass(frozen=True, slots=True)
class EmailToken:
    user_id: int
    digest: str
    password_digest: str

    def is_for(self, email: str) -> bool:
        return bool(email) and constant_time_compare(self.digest, email_digest(email))

    def same_password(self, password_hash: str) -> bool:
        return constant_time_compare(self.password_digest, password_digest(password_hash))


def email_digest(email: str) -> str:
    return salted_hmac(SALT, email.strip().lower(), algorithm="sha256").hexdigest()[:32]


def password_digest(password_hash: str) -> str:
    return salted_hmac(SALT + ".password", password_hash, algorithm="sha256").hexdigest()[:16]


def make_email_token(*, user_id: int, email: str, password_hash: str) -> str:
    return signing.TimestampSigner(salt=SALT).sign_object(
        {"u": user_id, "e": email_digest(email), "p": password_digest(password_hash)}
    )


def read_email_token(token: str) -> EmailToken:
    """Raises :class:`TokenExpired` (older than three days) or :class:`TokenInvalid`."""
    try:
        data = signing.TimestampSigner(salt=SALT).unsign_object(token, max_age=MAX_AGE)
    except signing.SignatureExpired as exc:
        raise TokenExpired from exc
    except (signing.BadSignature, ValueError) as exc:
        raise TokenInvalid from exc
    if not isinstance(data, dict) or not isinstance(data.get("u"), int):
        raise TokenInvalid
    return EmailToken(
        user_id=data["u"], digest=str(data.get("e", "")), password_digest=str(data.get("p", ""))
    )
