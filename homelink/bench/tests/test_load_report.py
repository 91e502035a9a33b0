"""The load benchmark's report (homelink/bench/load.py) judges what it prints, says when a page
cannot reach the target load, and never calls a run exact when the database disagrees. Runs
without wrk, gunicorn or PostgreSQL: the figures here are made up."""

from __future__ import annotations

from typing import Any

import pytest

from homelink.bench import load


def run(page: str, rate: float, p95_ms: float, problems: list[str] | None = None) -> dict[str, Any]:
    return {"page": page, "rate": rate, "p95_ms": p95_ms, "problems": problems or []}


def runs(**rates: float) -> dict[str, list[dict[str, Any]]]:
    return {page: [run(page, rates[page], 40.0)] * 3 for page in load.PAGES}


def test_each_judged_page_gets_its_ratio_and_p95_verdicts(capsys: pytest.CaptureFixture) -> None:
    measured = runs(hello=1000, signed_in=500, signin=10, account=320, link=290)
    paced = {"signin": [], "account": [run("account", 300, 20.0)] * 2, "link": []}
    md5 = [run("signin_md5", 200, 60.0)] * 3
    load._report(measured, paced, md5, 300.0, load.QUICK)
    out = capsys.readouterr().out
    [account] = [line for line in out.splitlines() if "GET /account/" in line and "ratio" in line]
    assert "ratio 0.32 meets ≥ 0.3" in account and "p95 40.0 ms meets ≤ 50 ms" in account
    [linking] = [line for line in out.splitlines() if "/account/link/" in line and "ratio" in line]
    assert "ratio 0.29 MISSES ≥ 0.3" in linking
    # The floor and the cheap hasher are for reading: no verdict on them.
    for what in ("+session", "sign-in, MD5"):
        [line] = [line for line in out.splitlines() if what in line and "ratio" in line]
        assert "meets" not in line and "MISSES" not in line
    # Paced: judged where the page reached the target load, a miss where it could not.
    [account] = [line for line in out.splitlines() if "GET /account/" in line and "300/s" in line]
    assert "p95 20.0 ms meets ≤ 50 ms" in account
    [signin] = [line for line in out.splitlines() if "not measurable" in line and "login" in line]
    assert "MISSES ≤ 50 ms" in signin and "10/s" in signin
    assert "exact in all" in out


def test_a_run_the_database_disagrees_with_is_reported(capsys: pytest.CaptureFixture) -> None:
    measured = runs(hello=1000, signed_in=500, signin=10, account=100, link=100)
    measured["link"] = [run("link", 100, 40.0, ["5 attempts counted, 4 links"])] * 3
    load._report(measured, {"signin": [], "account": [], "link": []}, [], 300.0, load.QUICK)
    out = capsys.readouterr().out
    assert "NOT EXACT in 3 of" in out
    assert "linking: 5 attempts counted, 4 links" in out
    assert "exact in all" not in out
