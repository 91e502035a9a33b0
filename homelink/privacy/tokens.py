"""The links at the foot of every email a school sends and in the first-contact notice: the
school's current privacy notice, and a per-person link to stop all messages.

The stop link carries a token that names the people a copy went to — one adult, every adult on a
copy sent to an address or number they share, or one adult member of staff — and a keyed MAC of
them (128 bits of HMAC-SHA256 under ``SECRET_KEY``): nobody can make one for someone else, and
nothing needs storing. A shared copy's link names them all, so whoever of them uses it stops the
messages to that address (not only the first person's). It never expires, as an unsubscribe link must keep working; rotating
``SECRET_KEY`` retires every link sent before. Kept short because it goes in an SMS.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from django.conf import settings
from django.urls import reverse
from django.utils.crypto import constant_time_compare, salted_hmac

SALT = "homelink.privacy.stop-link"
ADULT, MEMBER = "a", "m"
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


#: The most people one link names (a copy's adults: a family sharing one address).
MAX_PEOPLE = 20


@dataclass(frozen=True)
class StopToken:
    """Whom a stop link is for: ``kind`` is :data:`ADULT` or :data:`MEMBER`; ``pks`` the
    people (several adults when they share the copy's address or number)."""

    kind: str
    pks: tuple[int, ...]

    @property
    def pk(self) -> int:
        return self.pks[0]


def _base36(number: int) -> str:
    digits = ""
    while True:
        number, rest = divmod(number, 36)
        digits = _DIGITS[rest] + digits
        if not number:
            return digits


def _mac(kind: str, pks: tuple[int, ...]) -> str:
    # One person's message is "a42", as it was before links named several: their links sent
    # earlier keep working.
    signed = kind + ".".join(str(pk) for pk in pks)
    digest = salted_hmac(SALT, signed, algorithm="sha256").digest()[:16]
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def _people(pks: int | tuple[int, ...] | list[int]) -> tuple[int, ...]:
    found = (pks,) if isinstance(pks, int) else tuple(dict.fromkeys(pks))
    if not found or len(found) > MAX_PEOPLE:
        raise ValueError(f"a stop link names 1 to {MAX_PEOPLE} people")
    return found


def stop_token(kind: str, pks: int | tuple[int, ...] | list[int]) -> str:
    people = _people(pks)
    # "_" between people: a word character, so the link is one word wherever it is pasted.
    return f"{kind}{'_'.join(_base36(pk) for pk in people)}-{_mac(kind, people)}"


def read_stop_token(token: str) -> StopToken | None:
    """Whom ``token`` names, or None for anything that is not a token we made."""
    head, _, mac = token.partition("-")
    if len(head) < 2 or head[0] not in (ADULT, MEMBER) or len(head) > 14 * MAX_PEOPLE or not mac:
        return None
    parts = head[1:].split("_")
    if len(parts) > MAX_PEOPLE or (head[0] == MEMBER and len(parts) > 1):
        return None
    try:
        pks = tuple(int(part, 36) for part in parts if 0 < len(part) <= 13)
    except ValueError:
        return None
    if len(pks) != len(parts) or len(set(pks)) != len(pks):
        return None
    if not constant_time_compare(mac, _mac(head[0], pks)):
        return None
    return StopToken(head[0], pks)


def _public(path: str) -> str:
    return settings.HOMELINK_PUBLIC_URL.rstrip("/") + path


def notice_url(urn: str) -> str:
    """The school's current privacy notice, readable by anyone."""
    return _public(reverse("privacy_notice", kwargs={"urn": urn}))


def stop_url(kind: str, pks: int | tuple[int, ...] | list[int]) -> str:
    """The page that stops all messages to the people named (a confirm button; no sign-in)."""
    return _public(reverse("privacy_stop", kwargs={"token": stop_token(kind, pks)}))


def footer_links(
    school_urn: str,
    school_name: str,
    *,
    adult_id: int | None,
    member_id: int | None,
    adult_ids: list[int] | tuple[int, ...] = (),
) -> list[str]:
    """The lines every email a school sends ends with: its notice, and how to stop messages
    to the copy's address, for everyone the copy is for (its adults, else the member of
    staff)."""
    lines = [f"Privacy notice: {notice_url(school_urn)}"] if school_urn else []
    adults = list(adult_ids) or ([adult_id] if adult_id is not None else [])
    if adults:
        lines.append(f"Stop messages from {school_name}: {stop_url(ADULT, adults[:MAX_PEOPLE])}")
    elif member_id is not None:
        lines.append(f"Stop messages from {school_name}: {stop_url(MEMBER, member_id)}")
    return lines
