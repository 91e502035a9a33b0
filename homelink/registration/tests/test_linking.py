"""Linking with a letter's code: the rules of product.md, "Web registration"."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.utils import timezone

from homelink.accounts.models import Parent
from homelink.mis.tests.factories import contact, pupil, run_import, staff
from homelink.register.models import Adult, LikelyDuplicate, Link, Member, PendingLink, Source
from homelink.registration.linking import (
    MAX_WEB_ADULTS,
    CodeNotAccepted,
    LinkRefused,
    link_with_code,
)
from homelink.registration.models import SecurityCode
from homelink.registration.services import code_revoke
from homelink.registration.tests.factories import letter
from homelink.schools.models import School

MUM = "07700 900001"


def parent(name: str, email: str = "", mobile: str = "") -> User:
    forename, surname = name.split()
    user = User.objects.create_user(
        username=email or name, email=email, first_name=forename, last_name=surname
    )
    now = timezone.now()
    Parent.objects.create(
        user=user,
        email_verified_at=now if email else None,
        mobile=mobile,
        mobile_verified_at=now if mobile else None,
    )
    return user


@pytest.fixture
def sam(school: School) -> Member:
    run_import(school, [pupil("A100000000001", "Sam", "Smith")])
    return Member.objects.get(mis_id="A100000000001")


@pytest.mark.django_db
def test_the_first_adult_becomes_prime_and_the_next_does_not(school: School, sam: Member) -> None:
    code = letter(school)
    first = link_with_code(user=parent("Pat Smith", "pat@example.org"), raw_code=code)
    second = link_with_code(
        user=parent("Chris Smith", "chris@example.org"), raw_code=code.lower().replace("-", " ")
    )
    assert (first.status, first.prime, second.status, second.prime) == (
        "linked",
        True,
        "linked",
        False,
    )
    links = Link.objects.filter(student=sam).order_by("pk")
    assert [(link.source, link.prime, link.prime_set_by) for link in links] == [
        ("web", True, "web"),
        ("web", False, ""),
    ]
    pat = Adult.objects.get(forename="Pat")
    assert (pat.registered, pat.source, pat.email) == (True, "web", "pat@example.org")


@pytest.mark.django_db
def test_linking_again_is_harmless(school: School, sam: Member) -> None:
    code = letter(school)
    user = parent("Pat Smith", "pat@example.org")
    link_with_code(user=user, raw_code=code)
    assert link_with_code(user=user, raw_code=code).status == "already"
    assert Link.objects.filter(student=sam).count() == 1


@pytest.mark.django_db
def test_a_fifth_adult_is_refused_with_a_clear_message(school: School, sam: Member) -> None:
    code = letter(school)
    for i in range(MAX_WEB_ADULTS):
        link_with_code(user=parent(f"Adult Number{i}", f"a{i}@example.org"), raw_code=code)
    with pytest.raises(LinkRefused, match="4 adults have already linked themselves to Sam"):
        link_with_code(user=parent("Fifth Adult", "e@example.org"), raw_code=code)
    assert Link.objects.filter(student=sam, source="web").count() == MAX_WEB_ADULTS


@pytest.mark.django_db
@pytest.mark.parametrize("how", ["unknown", "revoked", "expired"])
def test_unknown_revoked_and_expired_codes_fail_alike(
    school: School, sam: Member, how: str
) -> None:
    code = letter(school)
    if how == "unknown":
        code = "0000-0000-0000-0000"
    elif how == "revoked":
        code_revoke(code=SecurityCode.objects.get(), actor="test")
    later = (
        timezone.now() + timedelta(days=school.code_expiry_days + 1) if how == "expired" else None
    )
    with pytest.raises(CodeNotAccepted) as err:
        link_with_code(user=parent("Pat Smith", "pat@example.org"), raw_code=code, now=later)
    assert err.value.message == CodeNotAccepted.message
    assert not Link.objects.exists()


@pytest.mark.django_db
def test_the_imported_adult_with_the_verified_email_becomes_the_registered_adult(
    school: School,
) -> None:
    run_import(
        school,
        [
            pupil(
                "A100000000001",
                "Sam",
                "Smith",
                contact(1, "Mary", "Smith", email="mary@example.org", mobile=MUM),
            )
        ],
    )
    mary = Adult.objects.get(forename="Mary")
    result = link_with_code(user=parent("Mary Smith", "mary@example.org"), raw_code=letter(school))
    assert result.adult is not None
    assert result.adult.pk == mary.pk
    mary.refresh_from_db()
    assert (mary.registered, mary.account_id is not None) == (True, True)
    link = Link.objects.get(adult=mary)
    assert (link.source, link.prime) == ("web", True)
    # From now on the import leaves her details and her link alone.
    run_import(
        school,
        [
            pupil(
                "A100000000001",
                "Sam",
                "Smith",
                contact(1, "Mary", "Smith", email="other@example.org"),
            )
        ],
    )
    mary.refresh_from_db()
    assert mary.email == "mary@example.org"
    run_import(school, [pupil("A100000000001", "Sam", "Smith")])
    assert Link.objects.filter(adult=mary, source="web").exists()


@pytest.mark.django_db
def test_a_shared_email_makes_a_new_adult_and_a_likely_duplicate_for_staff(school: School) -> None:
    school.import_lower_priority = True
    school.save()
    shared = "smiths@example.org"
    run_import(
        school,
        [
            pupil(
                "A100000000001",
                "Sam",
                "Smith",
                contact(1, "Mary", "Smith", email=shared),
                contact(2, "John", "Smith", email=shared),
            )
        ],
    )
    result = link_with_code(user=parent("Mary Smith", shared), raw_code=letter(school))
    assert result.adult is not None
    assert result.adult.source == "web"
    assert Adult.objects.filter(forename="Mary").count() == 2
    assert set(LikelyDuplicate.objects.values_list("shared", flat=True)) == {"email"}
    assert LikelyDuplicate.objects.count() == 2


@pytest.mark.django_db
def test_a_student_with_an_adult_held_for_review_makes_web_links_wait_for_staff(
    school: School,
) -> None:
    run_import(
        school,
        [
            pupil(
                "A100000000001",
                "Sam",
                "Smith",
                contact(1, "Dan", "Smith", mobile=MUM, court_order=True),
            )
        ],
    )
    result = link_with_code(user=parent("Pat Smith", "pat@example.org"), raw_code=letter(school))
    assert result.status == "waiting"
    assert PendingLink.objects.filter(status="waiting").count() == 1
    assert not Link.objects.filter(source=Source.WEB).exists()


@pytest.mark.django_db
def test_an_adult_member_registers_themself_with_their_own_letter(school: School) -> None:
    run_import(school, [staff("T1", "Tess", "Teacher", email="t.mis@example.org")])
    result = link_with_code(
        user=parent("Tess Teacher", "tess@example.org"), raw_code=letter(school, "T1")
    )
    tess = Member.objects.get(mis_id="T1")
    assert (result.status, tess.registered, tess.email) == ("registered", True, "tess@example.org")


@pytest.mark.django_db(transaction=True)
def test_four_adults_at_most_even_when_six_try_at_the_same_moment(
    school: School, sam: Member
) -> None:
    code = letter(school)
    users = [parent(f"Adult Number{i}", f"a{i}@example.org") for i in range(6)]
    barrier = threading.Barrier(len(users))
    outcomes: list[str] = []

    def attempt(user: User) -> None:
        try:
            barrier.wait()
            link_with_code(user=user, raw_code=code)
            outcomes.append("linked")
        except LinkRefused:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt, args=(user,)) for user in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["linked"] * 4 + ["refused"] * 2
    assert Link.objects.filter(student=sam, source="web").count() == MAX_WEB_ADULTS
    assert Link.objects.filter(student=sam, prime=True).count() == 1


@pytest.mark.django_db
def test_an_adult_held_for_review_cannot_link_to_another_child_without_staff(
    school: School,
) -> None:
    run_import(
        school,
        [
            pupil(
                "A100000000001",
                "Sam",
                "Smith",
                contact(1, "Dan", "Smith", email="dan@example.org", court_order=True),
            ),
            pupil("A100000000002", "Alex", "Jones"),
        ],
    )
    dan = parent("Dan Smith", "dan@example.org")
    assert link_with_code(user=dan, raw_code=letter(school, "A100000000001")).status == "waiting"
    assert link_with_code(user=dan, raw_code=letter(school, "A100000000002")).status == "waiting"
    assert not Link.objects.filter(student__mis_id="A100000000002").exists()
