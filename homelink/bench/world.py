"""A school whose register holds ``adults`` reachable parents, written straight into the tables,
and workers to send to them: for the messaging benchmark and the crash test, which measure
sending, not importing.

Two parents per student, the first prime; each parent has their own fictional mobile
(mis-formats.md §4: ``+447700900000`` onwards, so at most 100,000) and an example.org address.
"""

from __future__ import annotations

import subprocess
import sys
from typing import IO

from django.db import connection

from homelink.register.models import Adult, Link, Member
from homelink.schools.models import School

MAX_ADULTS = 100_000


def start_worker(
    env: dict[str, str] | None = None,
    *,
    interval: float = 0.2,
    stderr: int | IO[bytes] | None = subprocess.DEVNULL,
) -> subprocess.Popen[bytes]:
    """A ``homelink worker`` process, quiet, serving every queue, as deployed; its log (on
    stderr) is dropped unless ``stderr`` says where it goes."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "homelink.cli",
            "worker",
            "--queue-name",
            "*",
            "--no-startup-delay",
            "--no-reload",
            "--interval",
            str(interval),
            "--verbosity",
            "0",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )


BATCH = 2_000


def parents_school(urn: str, adults: int, *, credits: int = 10**9) -> School:
    if adults > MAX_ADULTS:
        raise ValueError(f"at most {MAX_ADULTS:,} fictional mobiles")
    school = School.objects.create(
        urn=urn, name=f"Bench School {urn}", sms_credits=credits, large_send_threshold=10**7
    )
    pupils = (adults + 1) // 2
    Member.objects.bulk_create(
        (
            Member(
                school=school,
                kind=Member.Kind.STUDENT,
                mis_id=f"B{i:07d}",
                forename=f"Pupil{i}",
                surname="Bench",
                year=str(7 + i % 5),
                reg_group=f"{7 + i % 5}{'ABCD'[i % 4]}",
            )
            for i in range(pupils)
        ),
        batch_size=BATCH,
    )
    student_ids = list(
        Member.objects.filter(school=school).order_by("mis_id").values_list("pk", flat=True)
    )
    Adult.objects.bulk_create(
        (
            Adult(
                school=school,
                forename=f"Parent{i}",
                surname="Bench",
                name_key=f"parent{i} bench",
                mobile=f"+4477009{i:05d}",
                email=f"parent{i}@example.org",
            )
            for i in range(adults)
        ),
        batch_size=BATCH,
    )
    adult_ids = list(
        Adult.objects.filter(school=school).order_by("pk").values_list("pk", flat=True)
    )
    Link.objects.bulk_create(
        (
            Link(
                school=school,
                student_id=student_ids[i // 2],
                adult_id=adult_id,
                source="import",
                priority=1 + i % 2,
                prime=i % 2 == 0,
                parental_responsibility=True,
            )
            for i, adult_id in enumerate(adult_ids)
        ),
        batch_size=BATCH,
    )
    if connection.vendor == "postgresql":
        # As after a real import (see mis.services): the planner must know the tables' sizes.
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    return school
