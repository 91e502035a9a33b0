"""The members list: search, filters, pages of 50, and a query count that does not grow."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from homelink.console.views import PAGE_SIZE
from homelink.mis.tests.factories import contact, pupil, run_import, staff
from homelink.register.models import Member


def upn(n: int) -> str:
    return f"M{n:012d}"


def students(start: int, count: int, *, reachable: bool = True):
    return [
        replace(
            pupil(
                upn(n),
                f"Kid{n:04d}",
                "Zed" if n % 2 else "Young",
                contact(1, f"Mum{n}", "Parent", email=f"mum{n}@x.example" if reachable else ""),
                contact(2, f"Dad{n}", "Parent", mobile=f"07700 9{n:05d}"),
                year=str(7 + n % 5),
            ),
            reg_group=f"{7 + n % 5}{'AB'[n % 2]}",
        )
        for n in range(start, start + count)
    ]


@pytest.fixture
def url(school) -> str:
    return reverse("console:members", kwargs={"urn": school.urn})


def names(response) -> list[str]:
    return [f"{m.forename} {m.surname}" for m, _ in response.context["rows"]]


def search(client, url, **params):
    """Search as the page does: POST the form, follow the redirect to the list."""
    posted = client.post(url, params)
    assert posted.status_code == 302
    return client.get(posted["Location"])


def test_search_and_filters(client, school, admin_a, url):
    run_import(
        school,
        [
            *students(1, 6),
            *students(7, 2, reachable=False),
            staff("T1", "Grace", "Hopper", email="grace@x.example"),
        ],
    )
    Member.objects.filter(school=school, mis_id=upn(1)).update(
        status=Member.Status.LEFT, left_at=timezone.now()
    )
    client.force_login(admin_a)

    def found(**params) -> set[str]:
        response = search(client, url, **params)
        assert response.status_code == 200
        return {n.split()[0] for n in names(response)}

    everyone_current = found()
    assert "Kid0001" not in everyone_current and "Grace" in everyone_current
    assert found(q="kid0003") == {"Kid0003"}
    assert found(q="Zed Kid0005") == {"Kid0005"}
    assert found(q=upn(4)) == {"Kid0004"}
    assert found(q="hopper") == {"Grace"}
    assert found(status="left") == {"Kid0001"}
    assert "Kid0001" in found(status="all")
    assert found(kind="adult") == {"Grace"}
    assert found(role="teacher") == {"Grace"}
    assert found(year="9") == {"Kid0002", "Kid0007"}
    assert found(reg_group="9B") == {"Kid0007"}
    # 7 and 8 have a prime parent with no details (the mobile is on the non-prime parent).
    assert found(reachable="no", kind="student") == {"Kid0007", "Kid0008"}
    assert "Grace" in found(reachable="yes")
    # A value that is not a choice (an old bookmark) is ignored rather than an error.
    assert found(year="13") == everyone_current


def test_each_row_shows_its_prime_parents_and_links_to_the_member(client, school, admin_a, url):
    run_import(school, students(1, 1))
    client.force_login(admin_a)
    response = client.get(url)
    html = response.content.decode()
    member = Member.objects.get(school=school, mis_id=upn(1))
    assert reverse("console:member", kwargs={"urn": school.urn, "member_id": member.pk}) in html
    assert "Mum1 Parent" in html
    assert '<label for="id_q">' in html


def test_pages_of_fifty_keep_the_filters(client, school, admin_a, url):
    run_import(school, students(1, 120))
    client.force_login(admin_a)
    first = client.get(url, {"year": "7"})
    assert len(first.context["rows"]) == 24
    response = client.get(url)
    assert len(response.context["rows"]) == PAGE_SIZE
    assert response.context["page"].paginator.num_pages == 3
    last = client.get(url, {"page": "3"})
    assert len(last.context["rows"]) == 20
    first_of_search = search(client, url, q="Kid", year="7")
    key = first_of_search.request["QUERY_STRING"]
    assert "Kid" not in key and "year=7" in key
    assert len(first_of_search.context["rows"]) == 24
    whole = search(client, url, q="Kid")
    second = client.get(f"{url}?{whole.request['QUERY_STRING']}&page=2")
    assert f"{whole.request['QUERY_STRING']}&amp;page=3" in second.content.decode()
    assert len(second.context["rows"]) == PAGE_SIZE


def test_search_terms_stay_out_of_every_url(client, school, admin_a, url):
    """A parent's name typed into the search never enters an address (the web server's log,
    the browser's history, a Referer): it is POSTed and kept in the session."""
    run_import(school, students(1, 120))
    client.force_login(admin_a)
    posted = client.post(url, {"q": "Kid0003 Zed", "year": "10"})
    assert posted.status_code == 302
    assert "Kid" not in posted["Location"] and "Zed" not in posted["Location"]
    page = client.get(posted["Location"])
    assert names(page) == ["Kid0003 Zed"]
    html = page.content.decode()
    assert 'method="post"' in html and "csrfmiddlewaretoken" in html
    assert "?q=" not in html and "&amp;q=" not in html
    # The key means nothing in another session, and a name put in the address is not searched.
    other = client.__class__()
    other.force_login(admin_a)
    assert len(names(other.get(posted["Location"]))) == 24
    assert len(names(client.get(url, {"q": "Kid0003"}))) == PAGE_SIZE


def test_a_viewer_may_search(client, school, url):
    from homelink.console.models import Role
    from homelink.console.tests.conftest import make_user, member_of

    run_import(school, students(1, 3))
    viewer = make_user("viewer@search.example")
    member_of(viewer, school, Role.VIEWER)
    client.force_login(viewer)
    assert names(search(client, url, q="Kid0002")) == ["Kid0002 Young"]


def count_queries(client, url, params=None) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url, params or {}).status_code == 200
    return len(ctx.captured_queries)


def test_the_query_count_does_not_grow_with_the_school(
    client, school, admin_a, url, django_assert_max_num_queries
):
    run_import(school, students(1, 10))
    client.force_login(admin_a)
    small = count_queries(client, url)
    searched = search(client, url, reachable="yes", q="Kid").request["QUERY_STRING"]
    small_filtered = count_queries(client, f"{url}?{searched}")
    run_import(school, students(11, 190), update_only=True)
    assert count_queries(client, url) == small
    assert count_queries(client, f"{url}?{searched}") == small_filtered
    with django_assert_max_num_queries(12):
        client.get(url, {"page": "2"})


def test_two_thousand_students_list_quickly(
    client, school, admin_a, url, django_assert_max_num_queries
):
    run_import(school, students(1, 2000))
    client.force_login(admin_a)
    client.get(url)  # warm the template cache
    started = time.perf_counter()
    with django_assert_max_num_queries(12):
        response = client.get(url, {"reachable": "no", "year": "8"})
    assert response.status_code == 200
    with django_assert_max_num_queries(12):
        client.get(url, {"page": "40"})
    assert time.perf_counter() - started < 2.0
