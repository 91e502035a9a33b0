"""Search benchmark (issue 10, item 3): finding a parent and their children at 2,000 students.

The office answers the phone and types what the caller gives: a surname, an email address, a
mobile as people say it ("07700 900123"). Each search is timed as the office waits for it: the
members page's form POSTed, then the results page the redirect leads to (search, paging, the
prime parents and the "why found" of every row, rendered), in one process through Django's test
client, for several rounds. The floor is the same POST and page with words that match nobody:
everything a search does but find. Target: a median under 100 ms.

``run()`` starts this module as a child process with ``DATABASE_URL`` at a throwaway SQLite file
(and again on PostgreSQL at ``BENCH_PG_URL`` when one is there, in a throwaway database), so it
works whether or not the calling process has set Django up. The school is a generated SIMS
export of 2,000 pupils, imported as the console would; start-up, migration and the import are
not timed.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PUPILS = 2_000
ROUNDS = 25
WARM_UP = 3
TARGET_MS = 100.0
URN = "100001"
PG_URL = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres")
KINDS = ("surname", "email", "mobile")


def run(pupils: int = PUPILS, rounds: int = ROUNDS) -> dict[str, Any]:
    print(f"Search benchmark ({pupils:,} students, {rounds} rounds, POST and results page)")
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="homelink-bench-search-") as tmp:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "homelink.settings",
            "DATABASE_URL": f"sqlite:///{Path(tmp) / 'search.sqlite3'}",
            "HOMELINK_VAR_DIR": tmp,
        }
        results["sqlite"] = _in_child(env, pupils, rounds)
        _report("SQLite", results["sqlite"])
    postgres = _on_postgres(pupils, rounds)
    if postgres is not None:
        results["postgresql"] = postgres
        _report("PostgreSQL", postgres)
    return results


def _in_child(env: dict[str, str], pupils: int, rounds: int) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "homelink.bench.search", str(pupils), str(rounds)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode:
        raise SystemExit(f"search benchmark failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _on_postgres(pupils: int, rounds: int) -> dict[str, Any] | None:
    import psycopg

    name = f"homelink_bench_search_{os.getpid()}"
    try:
        admin = psycopg.connect(PG_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError:
        print("  PostgreSQL: skipped (no PostgreSQL at BENCH_PG_URL)")
        return None
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "homelink.settings",
            "DATABASE_URL": f"{PG_URL.rsplit('/', 1)[0]}/{name}",
        }
        return _in_child(env, pupils, rounds)
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def _report(database: str, result: dict[str, Any]) -> None:
    floor = result["floor"]
    print(f"  {database}: matching nobody (floor)         {_spread(floor)}")
    for kind in KINDS:
        timing = result[kind]
        ratio = timing["median_ms"] / floor["median_ms"]
        verdict = "ok" if timing["median_ms"] < TARGET_MS else f"MISSES {TARGET_MS:g} ms"
        print(
            f"  {database}: by a parent's {kind:<8} ({timing['found']:>2} found)  {_spread(timing)}"
            f"  {ratio:.2f}x floor  {verdict}"
        )


def _spread(timing: dict[str, float]) -> str:
    return (
        f"median {timing['median_ms']:6.1f} ms  (min {timing['min_ms']:.1f}, "
        f"max {timing['max_ms']:.1f}, {timing['queries']} queries)"
    )


def _child(pupils: int, rounds: int) -> dict[str, Any]:
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    from homelink.mis.generate import generate_ctf
    from homelink.mis.phones import for_display
    from homelink.mis.services import import_file
    from homelink.register.models import Adult, Link
    from homelink.schools.models import School
    from homelink.staff.testing import staff_directly

    call_command("migrate", verbosity=0)
    school = School.objects.create(urn=URN, name="Bench Academy", la_code="838", estab="4512")
    with tempfile.TemporaryDirectory(prefix="homelink-bench-search-ctf-") as tmp:
        ctf = Path(tmp) / "school.xml"
        generate_ctf(ctf, pupils=pupils, seed=7, urn=URN)
        import_file(school=school, path=ctf, via="bench")
    user = get_user_model().objects.create_user(
        username="office@bench.example", email="office@bench.example"
    )
    staff_directly(user, school)

    # A parent in the middle of the register, with a mobile and an address and two children if
    # there is one such: the call the office takes most.
    linked = Link.objects.filter(school=school).exclude(adult__mobile="").exclude(adult__email="")
    siblings = (
        linked.values("adult_id")
        .annotate(n=django.db.models.Count("pk"))
        .filter(n__gt=1)
        .values_list("adult_id", flat=True)
    )
    ids = list(siblings) or list(linked.values_list("adult_id", flat=True))
    parent = Adult.objects.get(pk=sorted(ids)[len(ids) // 2])
    typed = {
        "surname": parent.surname,
        "email": parent.email.upper(),  # as read out: any case
        "mobile": for_display(parent.mobile, school.phone_region),  # "07700 900123"
    }

    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(user)
    url = reverse("console:members", kwargs={"urn": school.urn})

    def timed(request: Any) -> dict[str, Any]:
        for _ in range(WARM_UP):
            request()
        times = []
        for _ in range(rounds):
            started = time.perf_counter()
            request()
            times.append((time.perf_counter() - started) * 1000)
        with CaptureQueriesContext(connection) as ctx:
            found = request()
        return {
            "median_ms": statistics.median(times),
            "min_ms": min(times),
            "max_ms": max(times),
            "queries": len(ctx.captured_queries),
            "found": found,
        }

    def rows(response: Any) -> int:
        assert response.status_code == 200, response.status_code
        # How many the page lists ("3 members."): outside the test runner there is no context.
        found = re.search(r'role="status">([\d,]+) member', response.content.decode())
        assert found is not None, "no count of members on the page"
        return int(found.group(1).replace(",", ""))

    def plain() -> int:
        # The same POST, session key and search path, with words that match nobody: the floor
        # does all a search does but find (an empty search would list a page of everyone).
        posted = client.post(url, {"q": "zzqxv"})
        assert posted.status_code == 302, posted.status_code
        return rows(client.get(posted["Location"]))

    def searching(q: str) -> Any:
        def request() -> int:
            posted = client.post(url, {"q": q})
            assert posted.status_code == 302, posted.status_code
            return rows(client.get(posted["Location"]))

        return request

    result: dict[str, Any] = {"floor": timed(plain), "pupils": pupils}
    for kind in KINDS:
        result[kind] = timed(searching(typed[kind]))
        assert result[kind]["found"] >= 1, f"searching by {kind} found nobody"
    return result


if __name__ == "__main__":
    print(
        json.dumps(
            _child(
                int(sys.argv[1]) if len(sys.argv) > 1 else PUPILS,
                int(sys.argv[2]) if len(sys.argv) > 2 else ROUNDS,
            )
        )
    )
