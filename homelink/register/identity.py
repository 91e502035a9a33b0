"""How the register compares people: normalised names and contact details (import rule 7)."""

from __future__ import annotations

import re
import unicodedata

_NOT_WORD = re.compile(r"[^\w\s]+")
_SPACES = re.compile(r"\s+")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def clean_text(value: str) -> str:
    """Trim padding and fold inner runs of white space: real SIMS files pad their text."""
    return _SPACES.sub(" ", value).strip()


def name_key(forename: str, surname: str) -> str:
    """Casefolded, accent-free, punctuation-free "forename surname".

    "Zoë  O'Brien" and "zoe obrien" are the same name to the identity rule; names alone never
    merge two adults across students, so this only needs to be forgiving, not clever.
    """
    text = f"{forename} {surname}"
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = _NOT_WORD.sub("", text.casefold())
    return _SPACES.sub(" ", text).strip()


def normalise_email(value: str) -> str | None:
    """The address as stored and compared ("" for none); ``None`` when it is not an address."""
    email = value.strip().lower()
    if not email:
        return ""
    return email if _EMAIL.match(email) and len(email) <= 254 else None
