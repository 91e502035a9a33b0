"""Email through Django's SMTP backend, with a short way for the common message.

Django builds each message with the standard library's ``email`` package: folding and
encoding every header and re-parsing every address costs about half a millisecond a message,
more than the SMTP conversation with a nearby relay. A message the outbox sends is nearly
always plain: ASCII headers, one recipient, a UTF-8 text body with short lines. For those
:func:`plain_bytes` writes the same message directly; anything else (a school name with an
accent, a long line, an international address) goes through Django's own code. The connection
is still Django's (its TLS, login and timeout settings), and so are the envelope's addresses.
"""

from __future__ import annotations

import re
from email.utils import formatdate
from functools import lru_cache

from django.conf import settings
from django.core.mail import EmailMessage
from django.core.mail.backends.smtp import EmailBackend
from django.core.mail.message import sanitize_address

#: Header values taken as they stand: printable ASCII, no line breaks.
_PLAIN_HEADER = re.compile(r"[\x20-\x7e]*")
#: A bare address in ASCII, as the envelope takes it without rewriting: dot-separated labels on
#: both sides (no leading, trailing or doubled dots, which Django refuses).
_PLAIN_ADDRESS = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+"
)
#: RFC 5322's limit on a line, less the CRLF.
MAX_LINE = 998
#: Where Django's generator folds a header: a longer one is left to Django, so the bytes stay
#: the same as Django's.
FOLD_AT = 78


def is_plain_smtp(backend: object) -> bool:
    """Whether ``backend`` is Django's SMTP backend itself (a subclass may send differently)."""
    return type(backend) is EmailBackend


@lru_cache(maxsize=256)
def envelope_address(address: str) -> str:
    """The envelope form of a From or To address, as Django's backend would give it."""
    if _PLAIN_ADDRESS.fullmatch(address):
        return address
    return sanitize_address(address, settings.DEFAULT_CHARSET)


def plain_bytes(email: EmailMessage) -> bytes | None:
    """``email`` as the bytes Django would send, for a plain message (short ASCII headers, a
    plain address, lines within the limit); None for any other, which Django must build."""
    if len(email.to) != 1 or email.cc or email.bcc or email.attachments:
        return None
    if getattr(email, "alternatives", None) or email.content_subtype != "plain":
        return None
    headers = {
        "Subject": str(email.subject),
        "From": email.from_email,
        "To": email.to[0],
        "Date": formatdate(localtime=settings.EMAIL_USE_LOCALTIME),
        **{name: str(value) for name, value in email.extra_headers.items()},
    }
    for name, value in headers.items():
        if len(name) + 2 + len(value) > FOLD_AT or not _PLAIN_HEADER.fullmatch(value):
            return None
    if not _PLAIN_ADDRESS.fullmatch(email.to[0]):
        return None
    body = email.body.replace("\r\n", "\n").replace("\r", "\n")
    encoded = body.encode("utf-8")
    if any(len(line) > MAX_LINE for line in encoded.split(b"\n")):
        return None
    transfer = "7bit" if body.isascii() else "8bit"
    head = (
        'Content-Type: text/plain; charset="utf-8"\r\n'
        "MIME-Version: 1.0\r\n"
        f"Content-Transfer-Encoding: {transfer}\r\n"
        + "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        + "\r\n"
    )
    return head.encode("ascii") + encoded.replace(b"\n", b"\r\n")


def send_plain(backend: EmailBackend, email: EmailMessage) -> bool:
    """Send ``email`` over the open ``backend`` connection if it is plain; whether it was."""
    data = plain_bytes(email)
    if data is None or backend.connection is None:
        return False
    backend.connection.sendmail(
        envelope_address(email.from_email), [envelope_address(email.to[0])], data
    )
    return True
