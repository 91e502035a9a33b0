"""The benchmarks' verdicts judge the figure printed beside them: never "meets" for a figure
on the wrong side of its target, however close."""

from __future__ import annotations

import pytest

from homelink.bench.stats import figure, judged, median, meets, spread, verdict


def test_median_and_spread() -> None:
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0, 2.0, 3.0]) == 2.5
    assert spread([3.0, 1.0, 2.0]) == (1.0, 3.0)
    with pytest.raises(ValueError, match="median of nothing"):
        median([])
    with pytest.raises(ValueError, match="spread of nothing"):
        spread([])


def test_lower_is_better() -> None:
    assert verdict(303, 300, higher_is_better=False, unit=" MB") == "MISSES ≤ 300 MB"
    assert verdict(300, 300, higher_is_better=False, unit=" MB") == "meets ≤ 300 MB"
    assert verdict(0.99, 1, higher_is_better=False) == "meets ≤ 1"
    assert not meets(1, 0, higher_is_better=False)
    assert meets(0, 0, higher_is_better=False)


def test_higher_is_better() -> None:
    assert verdict(0.69, 0.7, higher_is_better=True) == "MISSES ≥ 0.7"
    assert verdict(0.7, 0.7, higher_is_better=True) == "meets ≥ 0.7"
    assert verdict(1.2, 0.7, higher_is_better=True) == "meets ≥ 0.7"


def test_never_ok() -> None:
    for value in (0.0, 0.5, 0.7, 2.0):
        for higher in (True, False):
            assert "ok" not in verdict(value, 0.7, higher_is_better=higher)


def test_a_figure_that_would_print_as_its_target_gets_more_digits() -> None:
    assert figure(0.696, 2, target=0.7) == "0.696"
    assert figure(300.4, 0, target=300) == "300.4"
    assert figure(0.7, 2, target=0.7) == "0.70"
    assert figure(0.6, 2, target=0.7) == "0.60"
    assert figure(1234.5, 0) == "1,234"


def test_judged_prints_the_figure_it_judges() -> None:
    assert judged(303.2, 300, higher_is_better=False, digits=0, unit=" MB") == (
        "303 MB MISSES ≤ 300 MB"
    )
    assert judged(0.696, 0.7, higher_is_better=True) == "0.696 MISSES ≥ 0.7"
    assert judged(0.704, 0.7, higher_is_better=True) == "0.704 meets ≥ 0.7"
    assert judged(0.75, 0.7, higher_is_better=True) == "0.75 meets ≥ 0.7"
    assert judged(299.6, 300, higher_is_better=False, digits=0, unit=" MB") == (
        "299.6 MB meets ≤ 300 MB"
    )
