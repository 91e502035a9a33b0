"""The benchmark's floor must keep inserting the same rows as the register's schema changes;
otherwise `make bench` breaks unnoticed. A correctness check, not a timing."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from homelink.bench import floor
from homelink.mis.generate import generate_ctf


def test_the_floor_fills_the_current_schema(tmp_path: Path) -> None:
    db = tmp_path / "floor.sqlite3"
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{db}", "HOMELINK_VAR_DIR": str(tmp_path)}
    subprocess.run(
        [sys.executable, "-m", "homelink.cli", "migrate", "-v0"], env=env, check=True, timeout=120
    )
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO schools_school (id, urn, name, la_code, estab, phone_region, import_lower_priority, code_expiry_days, sms_sender, oneroster_org_id, created_at, require_second_factor, sms_credits, large_send_threshold, office_phone) VALUES (1, '100001', 'Bench', '838', '4512', 'GB', 1, 90, '', '', '2026-01-01 00:00:00', 0, 0, 1000, '')"
        )
    ctf = tmp_path / "ctf.xml"
    stats = generate_ctf(ctf, pupils=20, seed=1)
    floor.main(str(ctf), str(db), 1)
    with sqlite3.connect(db) as conn:
        members, adults, links = (
            conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]  # noqa: S608
            for table in ("register_member", "register_adult", "register_link")
        )
    assert (members, adults, links) == (20, stats.contacts, stats.contacts)
