"""Year groups in school order: Nursery, Reception, 1 … 13, then anything else."""

from __future__ import annotations

import random

import pytest

from homelink.register.years import in_school_order, school_order, year_label


def test_a_ctf_s_years_sort_as_a_school_lists_them() -> None:
    years = ["N1", "N2", "R", *map(str, range(1, 14)), "X"]
    shuffled = years[:]
    random.Random(4).shuffle(shuffled)

    assert in_school_order(shuffled) == years
    # As text, which is what the menus did: Reception after 11, 10 before 2.
    assert sorted(years)[:4] == ["1", "10", "11", "12"]


def test_other_spellings_of_a_year_sort_with_it() -> None:
    years = ["Year 10", "Y3", "Reception", "07", "Nursery", "YR", "KG", "PK", "Year 7", "Oak", "13"]

    assert in_school_order(years) == [
        "Nursery",
        "PK",
        "KG",
        "Reception",
        "YR",
        "Y3",
        "07",
        "Year 7",
        "Year 10",
        "13",
        "Oak",
    ]


@pytest.mark.parametrize(
    ("earlier", "later"),
    [("N1", "N2"), ("N2", "R"), ("R", "1"), ("9", "10"), ("11", "12"), ("13", "X"), ("X", "Y")],
)
def test_pairs(earlier: str, later: str) -> None:
    assert school_order(earlier) < school_order(later)


@pytest.mark.parametrize(
    ("year", "label"),
    [
        ("R", "Reception"),
        ("YR", "Reception"),
        ("N1", "Nursery 1"),
        ("N", "Nursery"),
        ("7", "Year 7"),
        ("07", "Year 7"),
        ("Year 10", "Year 10"),
        ("X", "Year X"),
        ("", ""),
    ],
)
def test_labels(year: str, label: str) -> None:
    assert year_label(year) == label
