"""Strict separation between schools, and between trusts, and viewers who cannot change anything.

These tests walk EVERY pattern of the console's URL namespace, found by introspecting the URL
resolver, so a page added later is covered without editing them. A pattern with a parameter
this file cannot fill fails loudly: scope the new record through a helper in
``homelink.console.permissions`` and add it to the worlds below.

Trusts: trust A has school A and its sister school C, trust B has school B. A trust's staff
hold their role at the trust's schools only while the schools are in it; a school's own staff
see only their school; a trust's pages (``trust_view``) answer 404 to anyone not on that
trust's staff.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from django.db import transaction
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from homelink.audit.actions import ACCESS_ACTIONS
from homelink.audit.models import AuditEvent
from homelink.console.permissions import TRUST_URL_PARAMETERS, URL_PARAMETERS
from homelink.console.tests.conftest import World, build_world, make_user, member_of
from homelink.messaging.models import Delivery, InboundSms, Message, SmsBlock, Template
from homelink.register.models import Adult, LikelyDuplicate, Link, Member, PendingLink
from homelink.schools.models import School
from homelink.staff.models import Role, StaffInvitation, StaffMembership
from homelink.staff.testing import confirm_email_directly
from homelink.trusts.invitations import trust_invite
from homelink.trusts.models import Trust, TrustInvitation, TrustMembership, TrustSchool
from homelink.trusts.selectors import role_at_least
from homelink.trusts.services import trust_add, trust_remove_school

#: Pages that are not about one school or one trust: the list of the user's schools and trusts,
#: and the page a trust invitation's link opens, for someone who may have no account yet (its
#: secret token names one invitation: homelink/trusts/tests/test_trust_access.py).
NOT_SCHOOL_PAGES = {"home", "trust_invitation"}

#: Everything any console form might send: a POST that got through would change something.
POST_DATA = {"prime": "1", "opted_out": "1", "asked": "on", "decision": "approve", "confirm": "on"}


@dataclass(frozen=True)
class Pattern:
    name: str
    route: str
    params: tuple[str, ...]
    callback: Any


def console_patterns() -> list[Pattern]:
    """Every named pattern in the ``console`` namespace of the URLconf in use."""
    root = get_resolver()
    if "console" not in root.namespace_dict:
        pytest.fail("the console's URLs are not mounted (no 'console' namespace)")
    _prefix, resolver = root.namespace_dict["console"]
    found: list[Pattern] = []

    def walk(patterns: list[Any], route: str, params: tuple[str, ...]) -> None:
        for p in patterns:
            here = route + str(p.pattern)
            names = params + tuple(p.pattern.converters)
            if isinstance(p, URLResolver):
                walk(p.url_patterns, here, names)
            elif isinstance(p, URLPattern):
                if not p.name:
                    pytest.fail(f"console pattern {here!r} has no name: name it to test it")
                found.append(Pattern(p.name, here, names, p.callback))

    walk(resolver.url_patterns, "", ())
    assert len(found) >= 4, "the walk found too few console pages: is the resolver right?"
    return found


def is_trust_page(page: Pattern) -> bool:
    return bool(getattr(page.callback, "console_trust_view", False))


def school_pages() -> list[Pattern]:
    pages = [
        p for p in console_patterns() if p.name not in NOT_SCHOOL_PAGES and not is_trust_page(p)
    ]
    for page in pages:
        if "urn" not in page.params:
            pytest.fail(f"console page {page.name!r} ({page.route}) is not under a school's URN")
    return pages


def trust_pages() -> list[Pattern]:
    """Every page wrapped in trust_view: the overview and staff pages, and the trust-wide import
    and send pages when they are installed."""
    pages = [p for p in console_patterns() if is_trust_page(p)]
    for page in pages:
        if "trust_id" not in page.params:
            pytest.fail(f"trust page {page.name!r} ({page.route}) is not under a trust's id")
    return pages


def values_of(world: World) -> dict[str, Any]:
    return {
        "urn": world.school.urn,
        "member_id": world.student.pk,
        "adult_id": world.adult.pk,
        "link_id": world.link.pk,
        "pending_id": world.pending.pk,
        "run_id": world.run.pk,
        "code_id": world.code.pk,
        "duplicate_id": world.duplicate.pk,
        "staff_id": world.staff.pk,
        "invitation_id": world.invitation.pk,
        "message_id": world.message.pk,
        "template_id": world.template.pk,
    }


@dataclass
class TrustWorld:
    """One trust with one of everything its pages fetch by id."""

    trust: Trust
    worlds: list[World]
    staff: TrustMembership  # a trust viewer
    invitation: TrustInvitation  # waiting to be accepted


def trust_member(user: Any, trust: Trust, role: str) -> TrustMembership:
    """A trust role as an accepted invitation leaves it (the account's email confirmed)."""
    confirm_email_directly(user)
    return TrustMembership.objects.create(user=user, trust=trust, role=role)


def build_trust(name: str, worlds: list[World]) -> TrustWorld:
    trust = trust_add(name=name, schools=[w.school for w in worlds], actor="test")
    prefix = name.split()[0].lower()
    staff = trust_member(make_user(f"viewer@{prefix}.trust.example"), trust, Role.VIEWER)
    invitation = trust_invite(
        trust=trust, email=f"invited@{prefix}.trust.example", role=Role.SENDER, actor="test"
    ).invitation
    return TrustWorld(trust=trust, worlds=worlds, staff=staff, invitation=invitation)


def trust_values(trust: TrustWorld) -> dict[str, Any]:
    return {
        "trust_id": trust.trust.pk,
        "trust_staff_id": trust.staff.pk,
        "trust_invitation_id": trust.invitation.pk,
        "urn": trust.worlds[0].school.urn,
    }


@pytest.fixture
def world_c(db: None) -> World:
    """School A's sister school in trust A."""
    sister = School.objects.create(urn="100003", name="Sister Academy", la_code="838", estab="4513")
    return build_world(sister, "C")


@pytest.fixture
def trust_a(world_a: World, world_c: World) -> TrustWorld:
    return build_trust("Alpha Trust", [world_a, world_c])


@pytest.fixture
def trust_b(world_b: World) -> TrustWorld:
    return build_trust("Beta Trust", [world_b])


@pytest.fixture
def trust_a_admin(trust_a: TrustWorld) -> Any:
    user = make_user("central@alpha.trust.example")
    trust_member(user, trust_a.trust, Role.ADMINISTRATOR)
    return user


def url_for(page: Pattern, values: dict[str, Any]) -> str:
    unknown = [p for p in page.params if p not in values]
    if unknown:
        pytest.fail(
            f"console page {page.name!r} ({page.route}) has parameter(s) {unknown} this test "
            "cannot fill: fetch the record through a school-scoped helper in "
            "homelink.console.permissions and give the worlds in this test one of it"
        )
    return reverse(f"console:{page.name}", kwargs={p: values[p] for p in page.params})


#: The register: what no viewer or sender may change from any page.
REGISTER: list[Any] = [
    School,
    Member,
    Adult,
    Link,
    PendingLink,
    LikelyDuplicate,
    StaffMembership,
    StaffInvitation,
    Trust,
    TrustSchool,
    TrustMembership,
    TrustInvitation,
]
#: And the rest a console page could change: messages (a sender's to change), the audit trail.
EVERYTHING: list[Any] = [*REGISTER, AuditEvent, Message, Delivery, Template, InboundSms, SmsBlock]


def snapshot(models: list[Any] = EVERYTHING) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table a console page could change, in every school."""
    return {m.__name__: list(m.objects.order_by("pk").values_list()) for m in models}


def without_exports(rows: dict[str, list[tuple[Any, ...]]]) -> dict[str, list[tuple[Any, ...]]]:
    """A snapshot less the audit trail's records of access: reading personal data (a CSV, a
    member's page) is recorded, which is not a change to anything."""
    action = [f.name for f in AuditEvent._meta.concrete_fields].index("action")
    kept = [
        row
        for row in rows["AuditEvent"]
        if not str(row[action]).endswith("_exported") and row[action] not in ACCESS_ACTIONS
    ]
    return {**rows, "AuditEvent": kept}


def gets_as(page: Pattern) -> str:
    """The role a page's GET needs (staff_view's ``min_role``)."""
    return str(getattr(page.callback, "console_min_role", Role.VIEWER))


def posts_as(page: Pattern) -> str:
    """The role a page's POST needs (staff_view's ``post_role``)."""
    return str(getattr(page.callback, "console_post_role", Role.ADMINISTRATOR))


def test_the_worlds_fill_every_parameter_staff_view_knows(world_a) -> None:
    # If permissions.URL_PARAMETERS grows, values_of() here must grow with it.
    assert set(values_of(world_a)) == set(URL_PARAMETERS)


def test_the_trust_worlds_fill_every_parameter_trust_view_knows(trust_b) -> None:
    # If permissions.TRUST_URL_PARAMETERS grows, trust_values() here must grow with it.
    assert set(trust_values(trust_b)) == set(TRUST_URL_PARAMETERS)


def test_every_school_page_is_a_staff_view() -> None:
    for page in school_pages():
        assert getattr(page.callback, "console_staff_view", False), (
            f"console page {page.name!r} is not wrapped in staff_view: it would not check the "
            "school or the role"
        )


def test_every_console_page_is_a_staff_view_or_a_trust_view() -> None:
    """Nothing but the home and the invitation's link escapes both wrappers; no page is both."""
    trust = trust_pages()
    assert {"trust_overview", "trust_staff"} <= {p.name for p in trust}
    for page in console_patterns():
        staff = bool(getattr(page.callback, "console_staff_view", False))
        if page.name in NOT_SCHOOL_PAGES:
            assert not staff and not is_trust_page(page), page.name
        else:
            assert staff != is_trust_page(page), f"{page.name}: staff_view xor trust_view"


def test_another_schools_urn_is_404_for_every_page(client, world_a, world_b, admin_a):
    """An administrator of A asks for pages of B, with B's ids: 404, never 403, whatever the
    method; B's register is untouched."""
    client.force_login(admin_a)
    before = snapshot()
    walked = 0
    for page in school_pages():
        url = url_for(page, values_of(world_b))
        for method in ("get", "post"):
            response = getattr(client, method)(url, POST_DATA if method == "post" else None)
            assert response.status_code == 404, f"{method.upper()} {url} ({page.name})"
            walked += 1
    assert snapshot() == before
    assert walked == 2 * len(school_pages())


@pytest.fixture
def trust_admin(world_a, world_b):
    """Administrator at both schools: the case where only the ids, not the URN, are wrong."""
    user = make_user("trust@both.example")
    member_of(user, world_a.school, Role.ADMINISTRATOR)
    member_of(user, world_b.school, Role.ADMINISTRATOR)
    return user


def test_another_schools_ids_under_your_urn_are_404_for_every_page(
    client, world_a, world_b, trust_admin
):
    """Under A's URN, each id in turn replaced by B's (the rest A's own): 404 for GET and POST,
    even for a user who may see both schools."""
    client.force_login(trust_admin)
    own, foreign = values_of(world_a), values_of(world_b)
    before = snapshot()
    walked = 0
    for page in school_pages():
        for param in page.params:
            if param == "urn":
                continue
            values = {**own, param: foreign[param]}
            url = url_for(page, values)
            for method in ("get", "post"):
                response = getattr(client, method)(url, POST_DATA if method == "post" else None)
                assert response.status_code == 404, (
                    f"{method.upper()} {url} ({page.name}, {param} of the other school)"
                )
                walked += 1
    assert snapshot() == before
    assert walked > 0


def test_ids_of_another_student_of_your_school_are_404(client, world_a, admin_a):
    """A link, adult or waiting link fetched under a member it does not belong to is 404 too:
    the screen for one student never acts on another's links."""
    client.force_login(admin_a)
    other = Member.objects.get(school=world_a.school, mis_id="A00000000002")
    own = values_of(world_a)
    before = snapshot()
    for page in school_pages():
        if "member_id" not in page.params or len(page.params) < 3:
            continue
        url = url_for(page, {**own, "member_id": other.pk})
        for method in ("get", "post"):
            response = getattr(client, method)(url, POST_DATA if method == "post" else None)
            assert response.status_code == 404, f"{method.upper()} {url} ({page.name})"
    assert snapshot() == before


@pytest.mark.parametrize(
    ("held", "role"),
    [
        ("school", Role.VIEWER),
        ("school", Role.SENDER),
        ("trust", Role.VIEWER),
        ("trust", Role.SENDER),
    ],
)
def test_viewers_and_senders_cannot_change_the_register_on_any_page(
    client, world_a, admin_a, held, role
):
    """Walk every page with the school's own ids as a viewer (and a sender: sending is not
    changing the register), of the school's own staff or of its trust's: every POST is
    refused and nothing changes, except a sender's on the message pages, which is answered
    and leaves the register as it was. An administrator's same POST is accepted, so the
    refusal is the role's doing, not a broken URL."""
    user = make_user(f"{role}.{held}@a.example")
    if held == "school":
        member_of(user, world_a.school, role)
    else:
        trust = trust_add(name="Solo Trust", schools=[world_a.school], actor="test")
        trust_member(user, trust, role)
    own = values_of(world_a)
    pages = school_pages()

    client.force_login(user)
    before = snapshot()
    register = snapshot(REGISTER)
    senders_pages = 0
    for page in pages:
        url = url_for(page, own)
        # Each POST a sender may make is undone before the next page, as for the administrator.
        savepoint = transaction.savepoint()
        response = client.post(url, POST_DATA)
        if posts_as(page) == Role.VIEWER:
            # A search: POSTed to keep names out of URLs, open to every role, changes nothing.
            assert response.status_code == 302, f"POST {url} ({page.name}) as {role}"
            assert without_exports(snapshot()) == without_exports(before), (
                f"POST {url} ({page.name}) changed something"
            )
        elif role_at_least(role, posts_as(page)):
            assert response.status_code not in (403, 404), f"POST {url} ({page.name}) as {role}"
            assert snapshot(REGISTER) == register, f"POST {url} ({page.name}) changed the register"
            senders_pages += 1
        else:
            assert response.status_code in (403, 404), f"POST {url} ({page.name}) as {role}"
            assert without_exports(snapshot()) == without_exports(before), (
                f"POST {url} ({page.name}) as {role} changed something"
            )
        transaction.savepoint_rollback(savepoint)
        response = client.get(url)
        # Pages for administrators only (the audit trail) refuse even a look.
        expected = (200, 405) if role_at_least(role, gets_as(page)) else (403,)
        assert response.status_code in expected, f"GET {url} ({page.name}) as {role}"
    assert without_exports(snapshot()) == without_exports(before)
    if role == Role.SENDER:
        assert senders_pages >= 5, "the message pages should take a sender's POST"
    else:
        assert senders_pages == 0

    client.force_login(admin_a)
    before = snapshot()
    accepted = 0
    for page in pages:
        url = url_for(page, own)
        # Each administrator's POST is undone before the next, so every page starts from the
        # same register the viewer saw.
        savepoint = transaction.savepoint()
        response = client.post(url, POST_DATA)
        changed = snapshot() != before
        transaction.savepoint_rollback(savepoint)
        assert response.status_code not in (403, 404), f"POST {url} ({page.name}) as admin"
        if posts_as(page) == Role.VIEWER:
            assert not changed, f"POST {url} ({page.name}) is a search: it changed something"
            continue
        # 400: a form page that needs more than the common POST data (names, a file…) answers
        # an invalid form; the point here is that the administrator was not refused.
        if getattr(page.callback, "console_post_needs", ""):
            continue  # answered (not 403/404); its POST needs a file or a run in a given state
        if response.status_code not in (400, 405):
            assert changed, f"POST {url} ({page.name}) as admin changed nothing"
            accepted += 1
    assert accepted >= 1


def test_anonymous_visitors_are_sent_to_sign_in_on_every_page(client, world_a):
    trust = build_trust("Solo Trust", [world_a])
    before = snapshot()
    for page in console_patterns():
        if page.name in NOT_SCHOOL_PAGES - {"home"}:
            continue  # the invitation's link: for someone who may have no account yet
        url = url_for(page, {**values_of(world_a), **trust_values(trust)})
        for method in ("get", "post"):
            response = getattr(client, method)(url, POST_DATA if method == "post" else None)
            assert response.status_code == 302, f"{method.upper()} {url}"
            assert response["Location"].startswith(reverse("login")), response["Location"]
    assert snapshot() == before


def test_a_parent_signed_in_gets_404_on_every_school_page(client, world_a):
    """Someone with an account but no place on the staff (a parent) learns nothing, of the
    school or of its trust."""
    trust = build_trust("Solo Trust", [world_a])
    parent = make_user("parent@home.example")
    Adult.objects.filter(pk=world_a.adult.pk).update(account=parent, registered=True)
    client.force_login(parent)
    for page in school_pages() + trust_pages():
        url = url_for(page, {**values_of(world_a), **trust_values(trust)})
        for method in ("get", "post"):
            response = getattr(client, method)(url, POST_DATA if method == "post" else None)
            assert response.status_code == 404, f"{method.upper()} {url}"


def test_a_superuser_without_a_membership_gets_404(client, world_a):
    """Operators manage schools through the admin; the console is for a school's own staff."""
    from django.contrib.auth import get_user_model

    operator = get_user_model().objects.create_superuser("op", "op@example.org", "x" * 20)
    client.force_login(operator)
    response = client.get(reverse("console:dashboard", kwargs={"urn": world_a.school.urn}))
    assert response.status_code == 404


# --- Trusts -------------------------------------------------------------------------------------


def walk_404(client: Any, pages: list[Pattern], values: dict[str, Any]) -> int:
    """GET and POST every page with these values: each must answer 404."""
    walked = 0
    for page in pages:
        url = url_for(page, values)
        for method in ("get", "post"):
            response = getattr(client, method)(url, POST_DATA if method == "post" else None)
            assert response.status_code == 404, f"{method.upper()} {url} ({page.name})"
            walked += 1
    return walked


def test_a_trust_users_every_page_of_another_trust_and_its_schools_is_404(
    client, trust_a, trust_b, trust_a_admin
):
    """A trust administrator of A asks for every page of trust B's school, with B's ids, and
    every page of trust B itself: 404, never 403, whatever the method; nothing changes."""
    client.force_login(trust_a_admin)
    # The same user's own trust and schools answer: the 404s are the separation's doing.
    assert client.get(reverse("console:trust_overview", args=[trust_a.trust.pk])).status_code == 200
    for world in trust_a.worlds:
        assert client.get(reverse("console:dashboard", args=[world.school.urn])).status_code == 200
    before = snapshot()
    walked = walk_404(client, school_pages(), values_of(trust_b.worlds[0]))
    walked += walk_404(client, trust_pages(), trust_values(trust_b))
    assert snapshot() == before
    assert walked == 2 * (len(school_pages()) + len(trust_pages()))


def test_another_trusts_ids_under_your_trust_are_404_for_every_trust_page(client, trust_a, trust_b):
    """Under trust A's id, each other id in turn replaced by trust B's: 404, even for a user on
    both trusts' staff."""
    both = make_user("central@both.trust.example")
    trust_member(both, trust_a.trust, Role.ADMINISTRATOR)
    TrustMembership.objects.create(user=both, trust=trust_b.trust, role=Role.ADMINISTRATOR)
    client.force_login(both)
    own, foreign = trust_values(trust_a), trust_values(trust_b)
    before = snapshot()
    walked = 0
    for page in trust_pages():
        for param in page.params:
            if param == "trust_id":
                continue
            walked += walk_404(client, [page], {**own, param: foreign[param]})
    assert snapshot() == before
    assert walked > 0


def test_a_schools_own_staff_get_404_on_sister_schools_and_on_the_trust(client, trust_a, admin_a):
    """School A's administrator, in trust A, against every page of sister school C and every
    page of trust A: 404. A school's own staff see only their school."""
    client.force_login(admin_a)
    assert (
        client.get(reverse("console:dashboard", args=[trust_a.worlds[0].school.urn])).status_code
        == 200
    )
    before = snapshot()
    sister = trust_a.worlds[1]
    walk_404(client, school_pages(), values_of(sister))
    walk_404(client, trust_pages(), trust_values(trust_a))
    assert snapshot() == before


def test_a_school_taken_out_of_the_trust_is_404_to_the_trusts_staff_at_once(
    client, trust_a, trust_a_admin
):
    """The trust administrator's next request after the school leaves the trust: every page of
    it is 404 (the session and the login are the same), the sister school still answers, and
    the overview no longer lists it."""
    client.force_login(trust_a_admin)
    leaving, staying = trust_a.worlds
    dashboard = reverse("console:dashboard", args=[leaving.school.urn])
    overview = reverse("console:trust_overview", args=[trust_a.trust.pk])
    assert client.get(dashboard).status_code == 200
    assert leaving.school.name in client.get(overview).content.decode()
    trust_remove_school(trust=trust_a.trust, school=leaving.school, actor="test")
    before = snapshot()
    walk_404(client, school_pages(), values_of(leaving))
    assert snapshot() == before
    assert client.get(reverse("console:dashboard", args=[staying.school.urn])).status_code == 200
    assert leaving.school.name not in client.get(overview).content.decode()


@pytest.mark.parametrize("role", [Role.VIEWER, Role.SENDER])
def test_trust_viewers_and_senders_cannot_change_anything_on_the_trusts_pages(
    client, trust_a, trust_a_admin, role
):
    """Every trust page as a trust viewer (and sender): a look is allowed where the page says,
    a POST refused with 403 and nothing changes, unless the page takes that role's POST (a
    trust-wide send takes a sender's). The administrator's same POST is not refused."""
    user = make_user(f"trust.{role}@alpha.example")
    trust_member(user, trust_a.trust, role)
    values = trust_values(trust_a)
    client.force_login(user)
    before = snapshot()
    for page in trust_pages():
        url = url_for(page, values)
        expected = (200, 405) if role_at_least(role, gets_as(page)) else (403,)
        assert client.get(url).status_code in expected, f"GET {url} ({page.name}) as {role}"
        if role_at_least(role, posts_as(page)):
            continue  # theirs to post (the trust-wide send's pages test their own POSTs)
        response = client.post(url, POST_DATA)
        assert response.status_code == 403, f"POST {url} ({page.name}) as {role}"
        assert without_exports(snapshot()) == without_exports(before), f"POST {url} changed"
    client.force_login(trust_a_admin)
    for page in trust_pages():
        url = url_for(page, values)
        savepoint = transaction.savepoint()
        response = client.post(url, POST_DATA)
        transaction.savepoint_rollback(savepoint)
        assert response.status_code not in (403, 404), f"POST {url} ({page.name}) as admin"


#: Every URL outside the console, and why it cannot show one school's data to another school's
#: staff. A new page anywhere on the site fails the test below until it is either a console page
#: (and so walked above) or listed here with its reason.
NOT_SCHOOL_SCOPED = {
    "admin": "Django admin: superusers only (site operators, who manage every school)",
    "admin_login": "sends operators to the site's sign-in page",
    "healthz": "says 'ok'",
    "outbox": "the local development outbox: 404 unless HOMELINK_SHOW_OUTBOX",
    "console_otp": "the signed-in staff member's own authenticator",
    "register": "a parent signing up",
    "login": "signing in",
    "logout": "signing out",
    "password_reset": "Django's reset flow for the signed-in person",
    "password_reset_done": "Django's reset flow",
    "password_reset_confirm": "Django's reset flow",
    "password_reset_complete": "Django's reset flow",
    "account": "the parent's own account, by request.user",
    "confirm_email": "a signed token for one account",
    "resend_confirmation": "the parent's own account",
    "link_code": "the parent's own account; a code names its school",
    "details": "the parent's own account",
    "verify_mobile": "the parent's own account",
    "preferences": "the parent's own account",
    "unlink": "only the account's own links (another's id answers 404: accounts tests)",
    "opt_out": "the parent's own account",
    "delete_account": "the parent's own account",
    "privacy": "the privacy notice",
    "privacy_notice": "a school's current privacy notice: public by nature, no personal data",
    "privacy_stop": "a stop link's unguessable token names one person and shows only their "
    "school's name and notice (privacy/tests/test_notices.py)",
    "school_logo": "a school's logo, only to its staff and to parents linked to it; 404 to "
    "anyone else (schools/tests/test_school_identity.py)",
    "home": "the front page: what homelink is and where to go; the same for everyone (a signed-in "
    "user sees links to their own account and console)",
    "staff_invitation": "an invitation's link: the secret token names one invitation, whose "
    "school's name and role it shows to whoever holds the link (test_invitations.py)",
    "account_messages": "the messages sent to the parent's own adults, by request.user",
    "hooks": "SMS providers' receipts and inbound texts: signed or secret-checked, no pages",
    "email_events": "the configured email provider's events (django-anymail): basic-auth secret, no pages",
}


def test_every_page_of_the_site_is_either_walked_here_or_known_not_to_be_school_data() -> None:
    unknown: list[str] = []

    def walk(patterns: list[Any], route: str, namespace: str) -> None:
        for p in patterns:
            here = route + str(p.pattern)
            if isinstance(p, URLResolver):
                space = p.namespace or namespace
                if space == "console" or space in NOT_SCHOOL_SCOPED:
                    continue  # walked above, or known and listed
                walk(p.url_patterns, here, space)
            elif isinstance(p, URLPattern) and (p.name or "") not in NOT_SCHOOL_SCOPED:
                unknown.append(f"{here} (name {p.name!r})")

    walk(get_resolver().url_patterns, "", "")
    assert not unknown, (
        "pages outside the console that no separation test covers; make them console pages or "
        f"add them to NOT_SCHOOL_SCOPED with the reason: {unknown}"
    )
