"""Security codes as text: making them, reading them back as typed, and hashing them.

A code is 16 symbols of Crockford's base32 (80 bits from :mod:`secrets`), printed in groups of
four. What parents type is forgiven the way Crockford intended: any case, spaces or hyphens
anywhere, and O, I and L read as the digits they look like. U is not in the alphabet at all.

Only :func:`code_hash` of a code is ever stored. It is keyed with the site's SECRET_KEY, so a
copy of the database alone cannot be searched for codes, even though 80 bits would already make
that hopeless.
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.utils.crypto import salted_hmac

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
LENGTH = 16
GROUP = 4
#: len(ALPHABET) ** LENGTH == 2 ** BITS
BITS = 80

# The salt makes this key different from every other key Django derives from SECRET_KEY
# (sessions, signing); changing it would invalidate every letter ever printed.
_SALT = "homelink.registration.security-code"

_LOOK_ALIKES = str.maketrans({"O": "0", "I": "1", "L": "1"})
_SEPARATORS = str.maketrans("", "", " -\t\n\r\u00a0\u2010\u2011\u2012\u2013\u2014\u2212")
_VALID = frozenset(ALPHABET)


def generate_code() -> str:
    """A new code, normalised (16 symbols, no separators)."""
    return "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))


def format_code(code: str) -> str:
    """``7KQ2M9XD4RTWPBH3`` → ``7KQ2-M9XD-4RTW-PBH3``, for printing."""
    return "-".join(code[i : i + GROUP] for i in range(0, len(code), GROUP))


def normalise_code(text: str) -> str | None:
    """What a person typed as the code it must be, or None when it cannot be a code."""
    code = text.upper().translate(_SEPARATORS).translate(_LOOK_ALIKES)
    if len(code) != LENGTH or not _VALID.issuperset(code):
        return None
    return code


def code_hash(code: str, secret: str | bytes | None = None) -> str:
    """The stored form of a normalised code: HMAC-SHA256 under a key from SECRET_KEY (hex)."""
    return salted_hmac(
        _SALT,
        code,
        secret=secret if secret is not None else settings.SECRET_KEY,
        algorithm="sha256",
    ).hexdigest()


def code_hashes(code: str) -> list[str]:
    """The code's hash under SECRET_KEY and under each SECRET_KEY_FALLBACKS key, so rotating
    the key does not invalidate letters already in parents' hands."""
    keys = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return [code_hash(code, key) for key in keys]
