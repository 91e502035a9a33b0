"""Staff sessions end when idle for 30 minutes and 12 hours after login; parents' do not."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from homelink.console.tests.conftest import make_user, member_of
from homelink.staff.middleware import LAST_SEEN_KEY, LOGIN_AT_KEY, STAFF_KEY, now_stamp
from homelink.staff.models import Role

MINUTE = 60
HOUR = 60 * MINUTE


def age_session(client, *, login_ago: int, seen_ago: int) -> None:
    session = client.session
    now = now_stamp()
    session[LOGIN_AT_KEY] = now - login_ago
    session[LAST_SEEN_KEY] = now - seen_ago
    session.save()


@pytest.fixture
def dashboard(school) -> str:
    return reverse("console:dashboard", kwargs={"urn": school.urn})


def test_signing_in_starts_both_clocks(client, admin_a, dashboard):
    client.force_login(admin_a)
    session = client.session
    assert abs(session[LOGIN_AT_KEY] - now_stamp()) <= 2
    assert session[LAST_SEEN_KEY] == session[LOGIN_AT_KEY]
    assert client.get(dashboard).status_code == 200


def test_an_active_session_carries_on(client, admin_a, dashboard):
    client.force_login(admin_a)
    age_session(client, login_ago=11 * HOUR, seen_ago=29 * MINUTE)
    assert client.get(dashboard).status_code == 200
    # The request counted as activity: the idle clock starts again.
    assert now_stamp() - client.session[LAST_SEEN_KEY] <= 2


@pytest.mark.parametrize(
    ("login_ago", "seen_ago", "why"),
    [(1 * HOUR, 31 * MINUTE, "idle for 30 minutes"), (12 * HOUR + 1, 1 * MINUTE, "12 hours ago")],
)
def test_an_expired_staff_session_signs_out_and_asks_to_sign_in(
    client, admin_a, dashboard, login_ago, seen_ago, why
):
    client.force_login(admin_a)
    age_session(client, login_ago=login_ago, seen_ago=seen_ago)
    response = client.get(dashboard)
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next={dashboard}"
    assert "_auth_user_id" not in client.session
    messages = [str(m) for m in get_messages(response.wsgi_request)]
    assert any(why in m for m in messages), messages
    # Signed out for good: the next request is anonymous.
    assert client.get(dashboard)["Location"].startswith(reverse("login"))


def test_an_expired_session_refuses_a_post_too(client, admin_a, world_a):
    client.force_login(admin_a)
    age_session(client, login_ago=HOUR, seen_ago=HOUR)
    url = reverse(
        "console:link_prime",
        kwargs={
            "urn": world_a.school.urn,
            "member_id": world_a.student.pk,
            "link_id": world_a.link.pk,
        },
    )
    assert client.post(url, {"prime": "1"}).status_code == 302
    world_a.link.refresh_from_db()
    assert not world_a.link.prime


def test_parents_sessions_are_not_affected(client, school):
    parent = make_user("parent@home.example")
    client.force_login(parent)
    age_session(client, login_ago=48 * HOUR, seen_ago=10 * HOUR)
    response = client.get(reverse("console:home"))
    assert response.status_code == 200
    assert response.wsgi_request.user == parent
    assert "_auth_user_id" in client.session


def test_a_session_from_before_the_clocks_is_dated_now(client, admin_a, dashboard):
    client.force_login(admin_a)
    session = client.session
    del session[LOGIN_AT_KEY]
    del session[LAST_SEEN_KEY]
    session.save()
    assert client.get(dashboard).status_code == 200
    assert abs(client.session[LOGIN_AT_KEY] - now_stamp()) <= 2


def test_the_limits_are_settings(client, admin_a, dashboard, settings):
    settings.HOMELINK_STAFF_IDLE_SECONDS = 5 * MINUTE
    client.force_login(admin_a)
    age_session(client, login_ago=10 * MINUTE, seen_ago=6 * MINUTE)
    assert client.get(dashboard).status_code == 302


def test_an_idle_staff_session_ends_on_a_parents_page_too(client, admin_a):
    # Staff may be parents too: coming back after the limit to their own account page, not the
    # console, still signs them out.
    client.force_login(admin_a)
    age_session(client, login_ago=HOUR, seen_ago=31 * MINUTE)
    response = client.get(reverse("account"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    assert "_auth_user_id" not in client.session


def test_a_parents_pages_ask_nothing_about_staff(client, school):
    parent = make_user("parent@home.example")
    client.force_login(parent)
    assert STAFF_KEY not in client.session
    for url in (reverse("healthz"), reverse("account")):
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        asked = [q["sql"] for q in captured.captured_queries if "staffmembership" in q["sql"]]
        assert asked == [], url


def test_a_parent_made_staff_mid_session_is_timed_from_their_login(client, school):
    parent = make_user("parent@home.example")
    client.force_login(parent)
    age_session(client, login_ago=12 * HOUR + 1, seen_ago=MINUTE)
    # Still a parent: the parents' pages carry on.
    assert client.get(reverse("account")).status_code == 200
    member_of(parent, school, Role.ADMINISTRATOR)
    # The first staff page reads the new membership and applies the clocks from the login.
    dashboard = reverse("console:dashboard", kwargs={"urn": school.urn})
    assert client.get(dashboard)["Location"].startswith(reverse("login"))
    assert "_auth_user_id" not in client.session


def test_a_staff_area_marks_a_session_that_became_staff(client, school):
    parent = make_user("parent@home.example")
    client.force_login(parent)
    member_of(parent, school, Role.ADMINISTRATOR)
    dashboard = reverse("console:dashboard", kwargs={"urn": school.urn})
    assert client.get(dashboard).status_code == 200
    assert client.session[STAFF_KEY] is True
    # From then on the clocks apply everywhere.
    age_session(client, login_ago=HOUR, seen_ago=31 * MINUTE)
    assert client.get(reverse("account")).status_code == 302
