"""Phone numbers: which ones are SMS targets, and how to show them.

Uses libphonenumber with the school's region. Ofcom's drama range and the rest of the unallocated
07700 9 block are *fictional mobiles* (mis-formats.md §4): libphonenumber calls them invalid, but
generated schools need them to behave as mobiles everywhere inside the system. Gateways that leave
the machine refuse them (see :func:`is_fictional`).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers
from phonenumbers import PhoneNumberType

from homelink.mis.records import PhoneRecord

FICTIONAL_LOW = 447700900000
FICTIONAL_HIGH = 447700999999
_MOBILE_TYPES = {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE}
_JUNK = re.compile(r"[\s().\-/]")


class PhoneKind(enum.StrEnum):
    MOBILE = "mobile"
    NOT_MOBILE = "not_mobile"  # valid, but a landline, pager, personal number…
    INVALID = "invalid"  # not a number in this region: too short, typo, no area code


@dataclass(frozen=True, slots=True)
class Phone:
    kind: PhoneKind
    #: E.164 where the number parsed; otherwise the digits as typed.
    value: str
    reason: str = ""


def is_fictional(e164: str) -> bool:
    digits = e164.lstrip("+")
    return digits.isdigit() and FICTIONAL_LOW <= int(digits) <= FICTIONAL_HIGH


_TYPE_NAMES = {
    PhoneNumberType.FIXED_LINE: "a landline",
    PhoneNumberType.PAGER: "a pager",
    PhoneNumberType.PERSONAL_NUMBER: "a personal number",
    PhoneNumberType.VOIP: "an internet phone number",
    PhoneNumberType.TOLL_FREE: "a free-phone number",
    PhoneNumberType.PREMIUM_RATE: "a premium-rate number",
    PhoneNumberType.SHARED_COST: "a shared-cost number",
    PhoneNumberType.UAN: "a non-geographic number",
}


def _normal_text(raw: str) -> str:
    text = _JUNK.sub("", raw.strip())
    if text.startswith("00"):
        text = "+" + text[2:]
    # "+44 (0)7…" leaves "+440 7…" once the brackets go.
    if text.startswith("+440"):
        text = "+44" + text[4:]
    if text.startswith("44") and len(text) == 12:
        text = "+" + text
    return text


# Small: most numbers in a file are unique; the cache serves the numbers siblings share.
@lru_cache(maxsize=4096)
def classify(raw: str, region: str = "GB") -> Phone:
    """Classify one number as typed in the file, in the school's region."""
    text = _normal_text(raw)
    if not text or not re.fullmatch(r"\+?\d{4,17}", text):
        return Phone(PhoneKind.INVALID, raw.strip(), "not a phone number")
    if region in UK_REGIONS:
        uk = _UK_MOBILE_SHAPE.fullmatch(text)
        if uk is not None:
            return _classify_uk_07(uk.group(1))
    return _classify_slow(text, region)


def could_be_mobile(raw: str, region: str) -> bool:
    """A cheap test that rules out most landlines without libphonenumber: in the UK numbering
    (shared by Guernsey, Jersey and the Isle of Man) only 07 numbers are mobiles."""
    if region not in UK_REGIONS:
        return True
    text = _normal_text(raw)
    if text.startswith("+") and not text.startswith("+44"):
        return True  # a number abroad: ask libphonenumber
    return _UK_MOBILE_SHAPE.fullmatch(text) is not None


# Great Britain and the Crown Dependencies share +44 and its 07 numbering.
UK_REGIONS = frozenset({"GB", "GG", "JE", "IM"})
_UK_MOBILE_SHAPE = re.compile(r"(?:\+44|0)(7\d{9})")


def _classify_uk_07(national: str) -> Phone:
    """A ten-digit 07 number: fictional, or typed by its first six digits.

    libphonenumber's UK patterns decide validity and type from at most the first six national
    digits for this length (07624 5 for the Isle of Man is the deepest), so one lookup per
    block serves every number in it: a school's file is mostly a few thousand blocks.
    """
    e164 = "+44" + national
    if is_fictional(e164):
        return Phone(PhoneKind.MOBILE, e164)
    kind, reason = _uk_block(national[:6])
    if kind == PhoneKind.INVALID:
        return Phone(kind, "0" + national, reason)
    return Phone(kind, e164, reason)


@lru_cache(maxsize=4096)
def _uk_block(prefix: str) -> tuple[PhoneKind, str]:
    result = _classify_slow("+44" + prefix + "0000", "GB")
    return result.kind, result.reason


def _classify_slow(text: str, region: str) -> Phone:
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return Phone(PhoneKind.INVALID, text, "not a phone number")
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    if is_fictional(e164):
        return Phone(PhoneKind.MOBILE, e164)
    if not phonenumbers.is_valid_number(parsed):
        return Phone(
            PhoneKind.INVALID, text, "not a valid number (too short, too long or unallocated)"
        )
    kind = phonenumbers.number_type(parsed)
    if kind in _MOBILE_TYPES:
        return Phone(PhoneKind.MOBILE, e164)
    return Phone(PhoneKind.NOT_MOBILE, e164, f"{_TYPE_NAMES.get(kind, 'not a mobile')}")


@dataclass(frozen=True, slots=True)
class MobileChoice:
    mobile: str  # E.164, or "" when none of the numbers is a mobile
    #: Numbers typed as mobile that are not mobiles: data issues, never SMS targets.
    problems: tuple[tuple[str, str], ...]  # (number as typed, reason)


def pick_mobile(phones: Iterable[PhoneRecord], region: str = "GB") -> MobileChoice:
    """The first number typed mobile that really is a mobile; failing that, the first other
    number that is a mobile (product.md, "Phones")."""
    numbers = list(phones)
    mobile = ""
    problems: list[tuple[str, str]] = []
    for phone in numbers:
        if phone.kind != "M":
            continue
        result = classify(phone.number, region)
        if result.kind == PhoneKind.MOBILE:
            mobile = mobile or result.value
        else:
            problems.append((phone.number.strip(), f"typed as a mobile but {result.reason}"))
    if not mobile:
        for phone in numbers:
            if phone.kind != "M" and could_be_mobile(phone.number, region):
                result = classify(phone.number, region)
                if result.kind == PhoneKind.MOBILE:
                    mobile = result.value
                    break
    return MobileChoice(mobile, tuple(problems))


_E164 = re.compile(r"\+[1-9]\d{5,14}")


@lru_cache(maxsize=4096)
def for_display(number: str, region: str = "GB") -> str:
    """A stored number (E.164) as people in the school's ``region`` write it: national format
    for a number of the region's own country code ("07700 900767" in GB, and for a Jersey or
    Isle of Man mobile too, which share +44 and its dialling), international for any other
    ("+33 6 12 34 56 78"). Anything that is not E.164 (an email address, a sender name, a
    number kept as typed because it did not parse) comes back unchanged."""
    text = (number or "").strip()
    if not _E164.fullmatch(text):
        return number or ""
    home = phonenumbers.country_code_for_region((region or "GB").upper())
    if is_fictional(text):
        # libphonenumber calls the 07700 9 block invalid, so its formatting cannot be trusted
        # to stay right for it: spelled out, as Ofcom prints the drama range.
        rest = text[len("+447700") :]
        return f"07700 {rest}" if home == 44 else f"+44 7700 {rest}"
    try:
        parsed = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        return text
    if not phonenumbers.is_valid_number(parsed):
        # Without a valid pattern a national format can drop the trunk 0 ("77009007"), which
        # reads as a different number: E.164 at least says exactly what is stored.
        return text
    style = (
        phonenumbers.PhoneNumberFormat.NATIONAL
        if parsed.country_code == home
        else phonenumbers.PhoneNumberFormat.INTERNATIONAL
    )
    return phonenumbers.format_number(parsed, style)


def normalise_mobile(raw: str, region: str = "GB") -> str:
    """E.164 if ``raw`` is a mobile, else ""."""
    result = classify(raw, region)
    return result.value if result.kind == PhoneKind.MOBILE else ""
