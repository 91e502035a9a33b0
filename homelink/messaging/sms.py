"""How many parts an SMS takes, which is what a school pays for (mis-formats.md §5).

GSM 03.38's 7-bit alphabet fits 160 characters in one part and 153 in each part of a longer
message; its extension characters take two. One character outside it switches the whole text to
UCS-2: 70 in one part, 67 per part, counted in UTF-16 units (an emoji is two).
"""

from __future__ import annotations

from dataclasses import dataclass

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")

GSM7_SINGLE, GSM7_MULTI = 160, 153
UCS2_SINGLE, UCS2_MULTI = 70, 67


@dataclass(frozen=True)
class SmsSize:
    encoding: str  # "GSM-7" or "UCS-2"
    units: int  # septets for GSM-7, UTF-16 code units for UCS-2
    parts: int
    #: The characters that force UCS-2, each once, in the order they first appear.
    ucs2_chars: tuple[str, ...]


def _parts(units: int, single: int, multi: int) -> int:
    if units == 0:
        return 0
    if units <= single:
        return 1
    return -(-units // multi)


def ucs2_chars(text: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(c for c in text if c not in GSM7_BASIC and c not in GSM7_EXTENSION))


def sms_size(text: str) -> SmsSize:
    forcing = ucs2_chars(text)
    if forcing:
        units = len(text.encode("utf-16-le")) // 2
        return SmsSize("UCS-2", units, _parts(units, UCS2_SINGLE, UCS2_MULTI), forcing)
    units = len(text) + sum(1 for c in text if c in GSM7_EXTENSION)
    return SmsSize("GSM-7", units, _parts(units, GSM7_SINGLE, GSM7_MULTI), ())


def sms_parts(text: str) -> int:
    return sms_size(text).parts
