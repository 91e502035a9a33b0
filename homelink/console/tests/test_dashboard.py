"""The dashboard page: how reachable the school is, and the data issues, each leading to a fix
(its reads: register/tests/test_selectors.py, mis/tests/test_selectors.py)."""

from __future__ import annotations

from dataclasses import replace

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from homelink.mis.tests.factories import contact, pupil, run_import
from homelink.register.models import Member
from homelink.register.tests.factories import build, upn


def test_the_page_shows_the_figures_and_links_each_issue(client, school, admin_a):
    build(school)
    client.force_login(admin_a)
    response = client.get(reverse("console:dashboard", kwargs={"urn": school.urn}))
    assert response.status_code == 200
    html = response.content.decode()
    assert "<main" in html and "<h1>" in html
    tied = Member.objects.get(school=school, mis_id=upn(3))
    assert reverse("console:member", kwargs={"urn": school.urn, "member_id": tied.pk}) in html
    assert "More than one contact at priority 1" in html and "Adults held for review" in html


def queries_for(client, url: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


def grow(school, start: int, count: int) -> None:
    run_import(
        school,
        [
            replace(
                pupil(
                    upn(n),
                    f"Kid{n}",
                    "Many",
                    contact(1, f"Mum{n}", "Many", email=f"mum{n}@x.example"),
                    contact(1, f"Dad{n}", "Many", mobile=f"07700 9{n:05d}"),
                ),
                reg_group=f"R{n % 3}",
            )
            for n in range(start, start + count)
        ],
        update_only=True,
    )


def test_the_dashboard_costs_the_same_queries_for_a_bigger_school(client, school, admin_a):
    build(school)
    client.force_login(admin_a)
    url = reverse("console:dashboard", kwargs={"urn": school.urn})
    small = queries_for(client, url)
    grow(school, 100, 60)
    assert queries_for(client, url) == small
    # 25 for the register's figures, 2 for the delivery panel, 1 for the adults from the MIS
    # not yet sent the privacy notice, 2 for the register's freshness from the MIS (the
    # school's sync and its last import).
    assert small <= 30
