"""Which numbers are SMS targets (mis-formats.md §4)."""

from __future__ import annotations

import random

import pytest

from homelink.mis.phones import (
    PhoneKind,
    _classify_slow,
    classify,
    could_be_mobile,
    for_display,
    is_fictional,
    pick_mobile,
)
from homelink.mis.records import PhoneRecord


@pytest.mark.parametrize(
    "typed",
    [
        "07700 900101",
        "+447700900101",
        "447700900101",
        "0044 7700 900101",
        "+44 (0)7700 900101",
        "07700-900-101",
    ],
)
def test_every_common_way_of_writing_a_uk_mobile_gives_one_e164(typed: str) -> None:
    assert classify(typed) == classify("07700900101")
    assert classify(typed).value == "+447700900101"
    assert classify(typed).kind == PhoneKind.MOBILE


def test_fictional_mobiles_are_mobiles_here_although_libphonenumber_calls_them_invalid() -> None:
    assert _classify_slow("+447700900101", "GB").kind == PhoneKind.MOBILE
    assert is_fictional("+447700900000")
    assert is_fictional("+447700999999")
    assert not is_fictional("+447700899999")
    assert not is_fictional("+447788178715")


@pytest.mark.parametrize(
    ("typed", "kind"),
    [
        ("07788 178715", PhoneKind.MOBILE),
        ("07689 415547", PhoneKind.INVALID),  # a pager range typed as mobile in a real file
        ("07749 21789", PhoneKind.INVALID),  # too short
        ("0113 496 0000", PhoneKind.NOT_MOBILE),
        ("07624 123456", PhoneKind.MOBILE),  # Isle of Man
        ("070 1234 5678", PhoneKind.NOT_MOBILE),  # personal number
        ("ring after 6", PhoneKind.INVALID),
    ],
)
def test_kinds(typed: str, kind: PhoneKind) -> None:
    assert classify(typed).kind == kind


def test_a_local_number_takes_the_schools_region() -> None:
    # A Guernsey school writes six-digit local numbers with no area code.
    assert classify("234981", "GG").value == "+441481234981"
    assert classify("234981", "GB").kind == PhoneKind.INVALID


def test_the_fast_path_for_07_numbers_agrees_with_libphonenumber() -> None:
    rng = random.Random(7)
    for _ in range(5000):
        national = "07" + "".join(rng.choice("0123456789") for _ in range(9))
        fast, slow = classify(national), _classify_slow(national, "GB")
        if is_fictional(fast.value):
            continue
        assert fast.kind == slow.kind, national
        if fast.kind != PhoneKind.INVALID:
            assert fast.value == slow.value


def test_pick_mobile_takes_the_first_real_mobile_and_reports_typed_mobiles_that_are_not() -> None:
    choice = pick_mobile(
        [
            PhoneRecord("H", "0113 496 0000"),
            PhoneRecord("M", "07689 415 547"),
            PhoneRecord("M", "07700 900123"),
        ]
    )
    assert choice.mobile == "+447700900123"
    assert [n for n, _ in choice.problems] == ["07689 415 547"]
    # No number typed mobile: the first other number that is a mobile.
    assert (
        pick_mobile([PhoneRecord("W", "0113 496 0000"), PhoneRecord("H", "07700 900124")]).mobile
        == "+447700900124"
    )
    assert pick_mobile([PhoneRecord("H", "0113 496 0000")]).mobile == ""


def test_the_cheap_landline_filter_never_hides_a_mobile() -> None:
    rng = random.Random(11)
    for _ in range(3000):
        number = (
            "0"
            + rng.choice("12345689")
            + "".join(rng.choice("0123456789") for _ in range(rng.choice([8, 9])))
        )
        if not could_be_mobile(number, "GB"):
            assert classify(number).kind != PhoneKind.MOBILE, number
    assert could_be_mobile("+33 6 12 34 56 78", "GB")
    assert could_be_mobile("07700 900123", "GG")


# --- shown as the school's region writes them -----------------------------------------------------


@pytest.mark.parametrize(
    ("stored", "region", "shown"),
    [
        # Fictional (libphonenumber calls them invalid) and real UK mobiles, the GB way.
        ("+447700900767", "GB", "07700 900767"),
        ("+447700912345", "GB", "07700 912345"),
        ("+447788178715", "GB", "07788 178715"),
        ("+441134960000", "GB", "0113 496 0000"),
        # Guernsey, Jersey and the Isle of Man dial +44 numbers nationally too.
        ("+447700900767", "GG", "07700 900767"),
        ("+447624123456", "GB", "07624 123456"),
        ("+441481234981", "GG", "01481 234981"),
        # A number from another country: international, as it would be dialled from here.
        ("+33612345678", "GB", "+33 6 12 34 56 78"),
        ("+14155550123", "GB", "+1 415-555-0123"),
        # And a school abroad: its own numbers its way, a UK mobile internationally.
        ("+33612345678", "FR", "06 12 34 56 78"),
        ("+447700900767", "FR", "+44 7700 900767"),
    ],
)
def test_a_stored_number_is_shown_the_way_the_region_writes_it(
    stored: str, region: str, shown: str
) -> None:
    assert for_display(stored, region) == shown


@pytest.mark.parametrize(
    "value",
    [
        "",
        "anne@example.org",  # a delivery's "to" is an email or a number
        "EXAMPLE",  # a named SMS sender
        "07700 900767",  # not E.164: whatever it is, shown as stored
        "+4477009007",  # E.164-shaped but no valid number: a national format would drop the 0
    ],
)
def test_anything_else_is_shown_unchanged(value: str) -> None:
    assert for_display(value, "GB") == value


def test_the_template_filter_formats_numbers_for_the_school(rf) -> None:
    from django.template import Context, Template

    page = Template(
        "{% load phones %}{{ n|phone:region }}|{{ m|phone }}|{{ e|phone:region }}|"
        "{{ blank|phone:region|default:'—' }}"
    ).render(
        Context({"n": "+447700900767", "region": "GB", "m": "+33612345678", "e": "a&b@example.org"})
    )
    assert page == "07700 900767|+33 6 12 34 56 78|a&amp;b@example.org|—"
