"""The trust snow-day benchmark (homelink/bench/trust.py) must keep running as trust-wide sends,
``homelink send --trust`` and the workers change; otherwise `make bench` breaks unnoticed. One
round at 3 schools of 20 parents, whole processes as in the benchmark: a correctness check, not
a timing."""

from __future__ import annotations

import pytest
from django.db import connection

from homelink.bench import trust

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="the trust snow day runs on PostgreSQL"
    ),
]


def test_the_trust_benchmark_sends_every_copy_and_prints_its_figures(
    capfd: pytest.CaptureFixture,
) -> None:
    sizes = trust.Sizes(schools=3, per_school=20, rounds=1)
    result = trust.run(sizes=sizes)
    if "skipped" in result:
        pytest.skip(result["skipped"])
    out = capfd.readouterr().out  # the child process prints the figures
    # Both sends are 60 SMS, every one sent: the trust's schools share no number, so the
    # trust-wide send's one copy per number merged nothing.
    for kind in ("trust", "one"):
        [send] = result["rounds"][kind]
        assert (send["copies"], send["sent"], send["failed"], send["unfinished"]) == (60, 60, 0, 0)
        assert 0 < send["queued_s"] < send["recorded_s"]
    assert result["fake"]["taken"] == 120 and result["fake"]["repeated_keys"] == 0
    lines = out.splitlines()
    [ratio] = [line for line in lines if "≥ 0.9" in line]
    assert ratio.strip().startswith("trust / one school, throughput")
    assert "meets ≥ 0.9" in ratio or "MISSES ≥ 0.9" in ratio
    assert any(line.strip().startswith("trust, 3 schools x 20") for line in lines)
    assert any(line.strip().startswith("one school of 60") for line in lines)
