"""The benchmarks' small statistics: the median and spread of repeated rounds, and a verdict
against a target that judges the very figure printed next to it."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

#: More decimals than this are never added to tell a figure from its target.
MAX_DIGITS = 6


def median(values: Sequence[float]) -> float:
    if not values:
        raise ValueError("the median of nothing")
    return float(statistics.median(values))


def spread(values: Sequence[float]) -> tuple[float, float]:
    """The lowest and highest of ``values``."""
    if not values:
        raise ValueError("the spread of nothing")
    return float(min(values)), float(max(values))


def meets(value: float, target: float, *, higher_is_better: bool) -> bool:
    """Whether ``value`` is on the right side of ``target`` (equal meets it)."""
    return value >= target if higher_is_better else value <= target


def verdict(value: float, target: float, *, higher_is_better: bool, unit: str = "") -> str:
    """``"meets ≥ 0.7"`` or ``"MISSES ≥ 0.7"`` (``≤`` when lower is better): never "ok" for a
    figure on the wrong side of its target, however close."""
    sign = "≥" if higher_is_better else "≤"
    word = "meets" if meets(value, target, higher_is_better=higher_is_better) else "MISSES"
    return f"{word} {sign} {target:g}{unit}"


def figure(value: float, digits: int, *, target: float | None = None) -> str:
    """``value`` with ``digits`` decimals (thousands separated), or with as many more as it
    takes not to print the target itself for a value that differs from it: 0.696 against 0.7
    prints "0.696", not a "0.70" that then MISSES (and 0.704 prints "0.704")."""
    if target is not None and value != target:
        while digits < MAX_DIGITS and round(value, digits) == target:
            digits += 1
    return f"{value:,.{digits}f}"


def judged(
    value: float, target: float, *, higher_is_better: bool, digits: int = 2, unit: str = ""
) -> str:
    """The figure and its verdict, together: ``"0.696 MISSES ≥ 0.7"``, ``"303 MB MISSES ≤ 300
    MB"``. What is judged is what is printed."""
    shown = figure(value, digits, target=target)
    return f"{shown}{unit} {verdict(value, target, higher_is_better=higher_is_better, unit=unit)}"
