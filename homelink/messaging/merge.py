"""Merge fields in a message: ``{name}`` (whom it greets), ``{children}`` (the students it is
about, "Amy, Ben and Cara") and ``{school}``. Anything else in braces is an error staff see
before sending, so a typo never reaches a thousand parents as ``{chidren}``."""

from __future__ import annotations

import re
from typing import Any

FIELDS = ("name", "children", "school")
_FIELD = re.compile(r"\{(\w*)\}")


class MergeError(ValueError):
    pass


def check(text: str) -> None:
    unknown = sorted({m.group(1) for m in _FIELD.finditer(text)} - set(FIELDS))
    if unknown:
        known = ", ".join("{" + f + "}" for f in FIELDS)
        raise MergeError(
            f"Unknown merge field {', '.join('{' + u + '}' for u in unknown)}: use {known}."
        )


def uses_fields(text: str) -> bool:
    return bool(_FIELD.search(text))


def render(text: str, *, name: str, children: str, school: str) -> str:
    if "{" not in text:
        return text
    values = {"name": name, "children": children, "school": school}
    return _FIELD.sub(lambda m: values.get(m.group(1), m.group(0)), text)


def list_names(names: list[str]) -> str:
    """``["Amy", "Ben", "Cara"]`` → ``"Amy, Ben and Cara"``."""
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def school_named(schools: list[dict[str, Any]] | None, own: str) -> str:
    """What ``{school}`` says in a copy: its own school's name (``own``), or, for a trust-wide
    send's copy standing for families of several schools (``Delivery.schools``), all of them
    ("Oak Primary and Elm Academy"), the sending school first."""
    if schools:
        return list_names([str(s["name"]) for s in schools])
    return own
