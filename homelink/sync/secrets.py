"""The OneRoster client secret at rest: sealed with a Fernet key from the settings.

``HOMELINK_SYNC_KEY`` holds one or more keys, newest first; a secret sealed with any of them can
be opened, and :func:`seal` always uses the first, so adding a key in front rotates. A production
install without a key refuses to seal or open (:class:`SyncKeyMissing`): a secret is never kept
in the clear. The demo and the tests (``HOMELINK_DEV``) derive a key from the development key.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class SyncKeyMissing(Exception):
    """No key to seal or open a secret with."""


class SecretUnreadable(Exception):
    """The stored secret was sealed with a key the settings no longer hold."""


MISSING = (
    "HOMELINK_SYNC_KEY is not set, so a OneRoster client secret cannot be stored or read. "
    'Generate a key with: python -c "from cryptography.fernet import Fernet; '
    'print(Fernet.generate_key().decode())"'
)


def _keys() -> MultiFernet:
    keys = list(settings.HOMELINK_SYNC_KEYS)
    if not keys:
        if not settings.HOMELINK_DEV:
            raise SyncKeyMissing(MISSING)
        derived = hashlib.sha256(b"homelink-sync-key:" + settings.SECRET_KEY.encode()).digest()
        keys = [base64.urlsafe_b64encode(derived).decode()]
    try:
        return MultiFernet([Fernet(key) for key in keys])
    except ValueError:
        raise SyncKeyMissing(
            "HOMELINK_SYNC_KEY is not a Fernet key (32 url-safe base64-encoded bytes). " + MISSING
        ) from None


def seal(secret: str) -> str:
    return _keys().encrypt(secret.encode()).decode()


def unseal(sealed: str) -> str:
    try:
        return _keys().decrypt(sealed.encode()).decode()
    except InvalidToken:
        raise SecretUnreadable(
            "the stored OneRoster client secret cannot be read with the current "
            "HOMELINK_SYNC_KEY: enter the secret again"
        ) from None
