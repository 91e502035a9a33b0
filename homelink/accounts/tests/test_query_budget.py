"""The parents' busiest pages keep to a budget of database statements (issue 12): when letters go
home, a school's parents sign in, look at their account and link with their codes in the same
evening, on an install that serves many schools.

A budget counts the statements a request sends, on SQLite and PostgreSQL alike (the transaction
statements SQLite shows and PostgreSQL does not are left out), and none of them may depend on how
many children, schools or parents there are. Every statement in a budget is named below: one
more is a regression to explain, not to absorb by raising the number.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from homelink.accounts.tests.conftest import PASSWORD, logged_in, make_parent
from homelink.audit.models import AuditEvent
from homelink.mis.tests.factories import contact, pupil, run_import
from homelink.ratelimit.models import Bucket
from homelink.register.models import Link, Source
from homelink.registration.tests.factories import letter
from homelink.schools.models import School

pytestmark = pytest.mark.django_db

#: Every signed-in request: the session and its user. Whether the user is staff (staff sessions
#: are shorter) is asked only in the staff areas, else read from the session (staff.middleware).
SIGNED_IN = 2
#: The account page: the parent, the children linked, the children waiting for the school, and
#: how the account's adults are reached.
ACCOUNT = SIGNED_IN + 4
#: Linking with a code, a student's first link by a parent new to the school: the parent; the
#: three counts (per address, per account, site-wide); the code with its student, locked; the
#: account's adults there; the new adult; the student's links counted; those waiting counted; the
#: new link; both audit events in one; the account's count cleared and the address's given back.
LINK_NEW_ADULT = SIGNED_IN + 1 + 3 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 2
#: Claiming an imported link: the adult found is updated instead of made, and the link itself is
#: read (to be claimed) and updated instead of made.
LINK_CLAIM = LINK_NEW_ADULT + 1
#: Signing in from a new device: four counts (address, account and address, the account's new
#: devices, site-wide); the user; the account-and-address count cleared and the other two given
#: back in one; the new session (its key checked, then saved); last_login; whether the user is
#: staff (for the session's clocks, and where to go next); the session written with the user in it.
SIGN_IN = 4 + 1 + 2 + 2 + 1 + 1 + 1
#: From a device known for the account: its cookie checked against the account's password; two
#: counts (this device's, site-wide); the user; this device's count cleared; then as above.
SIGN_IN_KNOWN_DEVICE = 1 + 2 + 1 + 1 + 2 + 1 + 1 + 1

TRANSACTION = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE SAVEPOINT")


def notice_url(school: School) -> str:
    """Where a parent who has just linked goes next: the school's privacy notice."""
    return reverse("privacy_notice", kwargs={"urn": school.urn})


@contextmanager
def budget(limit: int) -> Iterator[CaptureQueriesContext]:
    with CaptureQueriesContext(connection) as captured:
        yield captured
    statements = [
        q["sql"] for q in captured.captured_queries if not q["sql"].upper().startswith(TRANSACTION)
    ]
    listed = "\n".join(f"  {n}. {sql[:200]}" for n, sql in enumerate(statements, 1))
    assert len(statements) <= limit, f"{len(statements)} statements, budget {limit}:\n{listed}"


@pytest.fixture
def schools(school: School) -> list[School]:
    """Three schools: Sam and Alex at the first (Sam's MIS contact is Pat, by email), Kim at
    the second, Lou at the third, none of them linked yet."""
    run_import(
        school,
        [
            pupil(
                "A100000000001",
                "Sam",
                "Smith",
                contact(1, "Pat", "Smith", email="pat.smith@example.org"),
            ),
            pupil("A100000000002", "Alex", "Jones"),
        ],
    )
    others = []
    for urn, upn, name in (("100002", "A200000000001", "Kim"), ("100003", "A300000000001", "Lou")):
        other = School.objects.create(urn=urn, name=f"School {urn}")
        run_import(other, [pupil(upn, name, "Smith")])
        others.append(other)
    return [school, *others]


def post_code(client: Client, code: str):
    return client.post(reverse("link_code"), {"code": code, "relationship": "mother"})


def test_linking_a_new_adult_keeps_to_its_budget(schools: list[School]) -> None:
    client = logged_in(make_parent("lee@example.org", "Lee", "Jones"), REMOTE_ADDR="192.0.2.1")
    code = letter(schools[0], "A100000000002")
    with budget(LINK_NEW_ADULT):
        assert post_code(client, code)["Location"] == notice_url(schools[0])
    link = Link.objects.get(source=Source.WEB)
    assert link.adult.account is not None
    # Exact still: both events recorded, every count settled by the success.
    assert sorted(
        AuditEvent.objects.filter(actor_label__startswith="user:").values_list("action", flat=True)
    ) == ["adult.created", "link.added"]
    assert not Bucket.objects.filter(scope="code:account").exists()
    assert Bucket.objects.get(scope="code:ip").count == 0
    assert Bucket.objects.get(scope="code:global").count == 1


def test_claiming_an_imported_link_keeps_to_its_budget(schools: list[School]) -> None:
    client = logged_in(make_parent(), REMOTE_ADDR="192.0.2.1")
    code = letter(schools[0])
    with budget(LINK_CLAIM):
        assert post_code(client, code)["Location"] == notice_url(schools[0])
    assert Link.objects.get(student__forename="Sam").source == Source.WEB
    assert set(
        AuditEvent.objects.filter(actor_label__startswith="user:").values_list("action", flat=True)
    ) == {"adult.registered", "link.claimed"}


def test_a_later_link_at_another_school_costs_the_same(schools: list[School]) -> None:
    client = logged_in(make_parent("lee@example.org", "Lee", "Jones"), REMOTE_ADDR="192.0.2.1")
    for school, upn in ((schools[1], "A200000000001"), (schools[2], "A300000000001")):
        code = letter(school, upn)
        with budget(LINK_NEW_ADULT):
            assert post_code(client, code)["Location"] == notice_url(school)
    assert Link.objects.filter(source=Source.WEB).count() == 2


def test_the_account_page_keeps_to_its_budget_however_many_children(
    schools: list[School],
) -> None:
    user = make_parent("lee@example.org", "Lee", "Jones")
    client = logged_in(user, REMOTE_ADDR="192.0.2.1")
    with budget(ACCOUNT):
        assert client.get(reverse("account")).status_code == 200
    for school, upn in (
        (schools[0], "A100000000002"),
        (schools[1], "A200000000001"),
        (schools[2], "A300000000001"),
    ):
        post_code(client, letter(school, upn))
    with budget(ACCOUNT):
        page = client.get(reverse("account")).content.decode()
    for name in ("Alex Jones", "Kim Smith", "Lou Smith", "Example Academy", "School 100003"):
        assert name in page


def test_signing_in_keeps_to_its_budget() -> None:
    make_parent()
    client = Client(REMOTE_ADDR="192.0.2.1")
    with budget(SIGN_IN):
        response = client.post(
            reverse("login"), {"email": "pat.smith@example.org", "password": PASSWORD}
        )
    assert response["Location"] == "/account/"
    # Every count settled: the pair cleared, the address and the new-device cap given back.
    assert not Bucket.objects.filter(scope="login:account_ip").exists()
    assert set(
        Bucket.objects.filter(scope__in=["login:ip", "login:new_devices"]).values_list(
            "count", flat=True
        )
    ) == {0}
    assert Bucket.objects.get(scope="login:global").count == 1
    # From the device it now knows.
    client.post(reverse("logout"))
    with budget(SIGN_IN_KNOWN_DEVICE):
        response = client.post(
            reverse("login"), {"email": "pat.smith@example.org", "password": PASSWORD}
        )
    assert response["Location"] == "/account/"
