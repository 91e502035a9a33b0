"""Letters benchmark: issuing and printing 2,000 security letters against raw ReportLab.

``run()`` starts this module as a child process with ``DATABASE_URL`` pointing at a throwaway
SQLite file, so it works whether or not the calling process has set Django up (and against
which database): settings are read once, at ``django.setup()``, and cannot be re-pointed later.
The child migrates the empty database, adds a school of 2,000 current students, then times

- ``letters_issue``: choosing the students, 2,000 codes hashed and stored with their batch and
  audit event in one transaction, and the PDF;
- the floor: the very strings those pages draw, replayed with ``setFont``/``drawString``/
  ``showPage`` on a bare canvas (no database, no wrapping, no layout).

Start-up and migration are not timed: the staff console calls the service in a running process.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

LETTERS = 2_000
TARGET = 2.0  # issue and print <= this x the floor
URN = "100001"


def run(letters: int = LETTERS) -> dict[str, float]:
    print(f"Letters benchmark ({letters:,} letters, SQLite, in a child process)")
    with tempfile.TemporaryDirectory(prefix="homelink-bench-letters-") as tmp:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "homelink.settings",
            "DATABASE_URL": f"sqlite:///{Path(tmp) / 'letters.sqlite3'}",
            "HOMELINK_VAR_DIR": tmp,
        }
        proc = subprocess.run(
            [sys.executable, "-m", "homelink.bench.letters", str(letters)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
    if proc.returncode:
        raise SystemExit(f"letters benchmark failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    ratio = result["issue_s"] / result["floor_s"]
    result["ratio"] = ratio
    verdict = "ok" if ratio <= TARGET else f"MISSES the target <= {TARGET:g}x"
    print(
        f"  letters_issue   {result['issue_s']:7.2f}s  ({result['pdf_mb']:.1f} MB PDF; of which "
        f"codes and database {result['codes_s']:.2f}s, drawing {result['render_s']:.2f}s)"
    )
    print(f"  floor           {result['floor_s']:7.2f}s  (same strings, bare ReportLab canvas)")
    print(f"  issue / floor   {ratio:7.2f}x {verdict}")
    return result


def _child(letters: int) -> dict[str, float]:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen.canvas import Canvas

    from homelink.register.models import Member
    from homelink.registration import letters as module
    from homelink.registration.letters import letter_for, letters_issue, render_letters
    from homelink.registration.models import SecurityCode
    from homelink.schools.models import School

    call_command("migrate", verbosity=0)
    school = School.objects.create(urn=URN, name="Bench Academy", la_code="838", estab="4512")
    forenames = ["Amelia", "Oliver", "Isla", "George", "Ava", "Noah", "Mia", "Leo", "Freya", "Jack"]
    surnames = ["Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies"]
    Member.objects.bulk_create(
        Member(
            school=school,
            kind=Member.Kind.STUDENT,
            mis_id=f"B{n:012d}",
            forename=forenames[n % len(forenames)],
            surname=f"{surnames[n % len(surnames)]}-{n}",
            year=str(7 + n % 5),
            reg_group=f"{7 + n % 5}{'ABCDEFGH'[n // 5 % 8]}",
        )
        for n in range(letters)
    )

    connection.close()  # the timed run opens its own connection, as a request would
    started = time.perf_counter()
    issued = letters_issue(school=school, actor="bench")
    issue_s = time.perf_counter() - started
    assert issued.count == letters
    assert SecurityCode.objects.filter(letter_batch=issued.batch).count() == letters

    # The same pages drawn again on their own, to split codes and database from drawing; the
    # recording canvas keeps every string and where it went, for the floor to replay.
    students = list(Member.objects.filter(school=school))
    pages = [letter_for(s, "7KQ2-M9XD-4RTW-PBH3") for s in students]
    expires = timezone.now()
    url = module.public_register_url()
    started = time.perf_counter()
    render_letters(school_name=school.name, letters=pages, expires_at=expires, url=url)
    render_s = time.perf_counter() - started

    recorded: list[list[tuple[str, float, float, float, str]]] = [[]]

    class Recorder(Canvas):
        def setFont(self, psfontname: str, size: float, leading: float | None = None) -> None:
            self._font_now = (psfontname, size)
            super().setFont(psfontname, size, leading)

        def drawString(self, x: float, y: float, text: str, *args: Any, **kw: Any) -> None:
            recorded[-1].append((*self._font_now, x, y, text))
            super().drawString(x, y, text, *args, **kw)

        def drawCentredString(self, x: float, y: float, text: str, *args: Any, **kw: Any) -> None:
            width = self.stringWidth(text, *self._font_now)
            recorded[-1].append((*self._font_now, x - width / 2, y, text))
            super().drawCentredString(x, y, text, *args, **kw)

        def showPage(self) -> None:
            recorded.append([])
            super().showPage()

    module.Canvas = Recorder
    try:
        render_letters(school_name=school.name, letters=pages, expires_at=expires, url=url)
    finally:
        module.Canvas = Canvas
    recorded.pop()

    started = time.perf_counter()
    canvas = Canvas(io.BytesIO(), pagesize=A4, pageCompression=1)
    for page in recorded:
        for font, size, x, y, text in page:
            canvas.setFont(font, size)
            canvas.drawString(x, y, text)
        canvas.showPage()
    canvas.save()
    floor_s = time.perf_counter() - started

    return {
        "letters": letters,
        "issue_s": issue_s,
        "render_s": render_s,
        "codes_s": max(issue_s - render_s, 0.0),
        "floor_s": floor_s,
        "pdf_mb": len(issued.pdf) / 1e6,
    }


if __name__ == "__main__":
    print(json.dumps(_child(int(sys.argv[1]) if len(sys.argv) > 1 else LETTERS)))
