"""The trust overview: every school of the trust side by side with the figures its own
dashboard shows (students, reachable by email and by SMS, registered adults, the last update
from the MIS and whether it is stale, messages waiting, failures in the last day, SMS credits),
each linking into that school's console, and nothing of a school outside the trust. A fixed
number of queries per school, whatever the number of students."""

from __future__ import annotations

import datetime as dt
import html
import re
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from homelink.messaging.audience import Audience
from homelink.messaging.models import Delivery, Message
from homelink.mis.tests.factories import contact, pupil, run_import
from homelink.register.models import Adult
from homelink.schools.models import School
from homelink.staff.models import Role
from homelink.staff.testing import confirm_email_directly
from homelink.sync.models import SyncSource
from homelink.trusts.models import Trust, TrustMembership
from homelink.trusts.selectors import trust_overview
from homelink.trusts.services import trust_add
from homelink.trusts.tests.factories import make_user as _make_user


def make_user(email: str) -> Any:
    """A staff account (typed Any: the project's user model, not AbstractBaseUser)."""
    return _make_user(email)


Status = Delivery.Status


def add_deliveries(school: School, *rows: tuple[str, dt.datetime]) -> None:
    """Copies of one message in the given states (status, and when: the next attempt for a
    queued copy, the status time for a failed one)."""
    now = timezone.now()
    message = Message.objects.create(
        school=school,
        mode=Message.Mode.EMAIL,
        audience=Audience().to_json(),
        audience_label=Audience().label(),
        subject="Trip",
        email_body="Dear {name}",
        send_at=now,
        email_count=len(rows),
    )
    for i, (status, at) in enumerate(rows):
        Delivery.objects.create(
            message=message,
            school=school,
            channel="email",
            to=f"copy{i}@{school.urn}.example",
            status=status,
            next_attempt_at=at if status == Status.QUEUED else now,
            status_at=at if status != Status.QUEUED else None,
        )


@pytest.fixture
def world(db: None) -> dict[str, Any]:
    now = timezone.now()
    oak = School.objects.create(urn="400001", name="Oak Primary", sms_credits=250)
    elm = School.objects.create(urn="400002", name="Elm Academy", sms_credits=40)
    far = School.objects.create(urn="400009", name="Faraway High", sms_credits=999)
    run_import(
        oak,
        [
            pupil("A40000000001", "Amy", "Able", contact(1, "Ann", "Able", email="ann@x.example")),
            pupil("A40000000002", "Bob", "Bell", contact(1, "Bea", "Bell", mobile="07700900111")),
            pupil("A40000000003", "Cat", "Cole"),
        ],
    )
    Adult.objects.filter(school=oak, forename="Ann").update(registered=True)
    add_deliveries(
        oak,
        (Status.QUEUED, now - dt.timedelta(minutes=1)),
        (Status.QUEUED, now - dt.timedelta(minutes=1)),
        (Status.QUEUED, now + dt.timedelta(days=1)),
        (Status.FAILED, now - dt.timedelta(hours=2)),
        (Status.FAILED, now - dt.timedelta(days=2)),
    )
    run_import(
        elm,
        [
            pupil(
                "E40000000001",
                "Dan",
                "Dee",
                contact(1, "Di", "Dee", email="di@y.example", mobile="07700900222"),
            ),
            pupil(
                "E40000000002",
                "Eve",
                "Ely",
                contact(1, "Ed", "Ely", email="ed@y.example", mobile="07700900333"),
            ),
        ],
    )
    # Elm's scheduled sync has not succeeded for days: stale.
    source = SyncSource.objects.create(school=elm, kind=SyncSource.Kind.FOLDER, folder="/srv/elm")
    SyncSource.objects.filter(pk=source.pk).update(created_at=now - dt.timedelta(days=5))
    run_import(far, [pupil(f"F4000000000{i}", "Far", f"Pupil{i}") for i in range(1, 6)])
    add_deliveries(far, (Status.FAILED, now - dt.timedelta(hours=1)))
    trust = trust_add(name="Woodland Trust", schools=[oak, elm], actor="test")
    Trust.objects.filter(pk=trust.pk).update(sms_credits=5000)
    trust.refresh_from_db()
    viewer = make_user("viewer@woodland.example")
    confirm_email_directly(viewer)
    TrustMembership.objects.create(user=viewer, trust=trust, role=Role.VIEWER)
    return {"trust": trust, "oak": oak, "elm": elm, "far": far, "viewer": viewer}


def cells(page: str, school: School) -> list[str]:
    """The overview's row of a school: its cells' text."""
    row = re.search(
        r"<tr>\s*<th scope=\"row\"><a href=\""
        + re.escape(reverse("console:dashboard", args=[school.urn]))
        + r"\">.*?</tr>",
        page,
        re.S,
    )
    assert row is not None, f"no row for {school.name}"
    return [
        " ".join(html.unescape(re.sub(r"<[^>]+>", "", c)).split())
        for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row.group(0), re.S)
    ]


def test_the_overview_shows_each_trust_school_and_nothing_else(client: Client, world) -> None:
    trust, oak, elm = world["trust"], world["oak"], world["elm"]
    client.force_login(world["viewer"])
    response = client.get(reverse("console:trust_overview", args=[trust.pk]))
    assert response.status_code == 200
    page = response.content.decode()
    assert "Woodland Trust: its schools side by side" in page

    oak_row = cells(page, oak)
    assert oak_row[0] == "Oak Primary URN 400001"
    # students, by email, by SMS, registered
    assert oak_row[1:5] == ["3", "1", "1", "1"]
    last = timezone.localtime(oak.import_runs.latest("finished_at").finished_at)
    assert oak_row[5] == f"{last:%-d %b %Y %H:%M}"
    assert oak_row[6:] == ["2 now, 1 scheduled", "1", "250"]

    elm_row = cells(page, elm)
    assert elm_row[1:5] == ["2", "2", "2", "0"]
    assert elm_row[5].endswith("Stale")
    assert elm_row[6:] == ["0 now", "0", "40"]
    assert "1 school has not been updated from the MIS" in page

    totals = re.search(r"<tfoot>.*?</tfoot>", page, re.S).group(0)  # type: ignore[union-attr]
    text = " ".join(re.sub(r"<[^>]+>", "", totals).split())
    assert text == "All 2 schools 5 3 3 1 1 stale 2 now, 1 scheduled 1 290"
    assert "5000</strong> SMS credits" in page

    # Each school links into its own console.
    for school in (oak, elm):
        assert f'href="{reverse("console:dashboard", args=[school.urn])}"' in page
        assert f'href="{reverse("console:messages", args=[school.urn])}"' in page
    # Nothing of the school outside the trust.
    assert "Faraway" not in page and "400009" not in page


def test_the_overview_is_a_fixed_number_of_queries_whatever_the_students(
    client: Client, world
) -> None:
    trust, oak, elm = world["trust"], world["oak"], world["elm"]
    client.force_login(world["viewer"])
    url = reverse("console:trust_overview", args=[trust.pk])
    client.get(url)  # the session and the like, once
    with CaptureQueriesContext(connection) as before:
        assert client.get(url).status_code == 200
    for school, prefix in ((oak, "A4"), (elm, "E4")):
        run_import(
            school,
            [
                pupil(
                    f"{prefix}1{i:09d}",
                    "More",
                    f"Pupil{i}",
                    contact(1, "P", f"P{i}", email=f"p{i}@{prefix}.example"),
                )
                for i in range(30)
            ],
            update_only=True,
        )
    with CaptureQueriesContext(connection) as after:
        page = client.get(url).content.decode()
    assert "All 2 schools" in page
    assert len(after) == len(before), "the overview's queries grew with the students"
    # And per school, not per student: a third school adds a fixed few.
    third = School.objects.create(urn="400003", name="Ash Infants")
    from homelink.trusts.services import trust_add_school

    trust_add_school(trust=trust, school=third, actor="test")
    with CaptureQueriesContext(connection) as three:
        client.get(url)
    per_school = len(three) - len(after)
    assert 0 < per_school <= 12, per_school


def test_the_overview_of_a_trust_without_schools(client: Client, db) -> None:
    trust = trust_add(name="New Trust", actor="test")
    user = make_user("head@new.example")
    confirm_email_directly(user)
    TrustMembership.objects.create(user=user, trust=trust, role=Role.ADMINISTRATOR)
    client.force_login(user)
    page = client.get(reverse("console:trust_overview", args=[trust.pk])).content.decode()
    assert "No schools are in this trust yet" in page
    assert "each school's own credits" in page


def test_the_selector_totals_only_the_trusts_schools(world) -> None:
    overview = trust_overview(world["trust"])
    assert [f.school.name for f in overview.schools] == ["Elm Academy", "Oak Primary"]
    assert overview.totals == {
        "students": 5,
        "prime_email": 3,
        "prime_sms": 3,
        "registered": 1,
        "queued": 2,
        "scheduled": 1,
        "failed_24h": 1,
        "sms_credits": 290,
    }
    assert overview.stale == 1
