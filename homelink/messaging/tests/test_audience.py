"""Who a message reaches: the audience rules, the exclusions and the one-copy rules."""

from __future__ import annotations

from typing import Any

import pytest

from homelink.messaging.audience import Audience, AudienceError, resolve
from homelink.messaging.models import SmsBlock
from homelink.mis.tests.factories import adult, contact, pupil, run_import
from homelink.register.models import Adult, Member
from homelink.schools.models import School

pytestmark = pytest.mark.django_db


def copies(school: School, audience: Audience, mode: str) -> list[tuple[str, str, str, str]]:
    resolved = resolve(school, audience, mode)
    return sorted((c.channel, c.to, c.name, c.children) for c in resolved.copies)


def test_a_parent_of_three_children_gets_one_message_naming_all_three(family: School) -> None:
    assert copies(family, Audience(parents="prime"), "email") == [
        ("email", "jill@example.org", "Jill Jones", "Jo"),
        ("email", "mary@example.org", "Mary Smith", "Amy, Ben and Cara"),
    ]


def test_all_parents_and_the_channel_each_can_take(family: School) -> None:
    assert copies(family, Audience(), "sms") == [
        ("sms", "+447700900001", "Mary Smith", "Amy, Ben and Cara"),
        ("sms", "+447700900002", "Dan Smith", "Amy, Ben and Cara"),
        ("sms", "+447700900003", "Jill Jones", "Jo"),
    ]
    # Email, else SMS: Dan has no address, so he gets a text; the others get email only.
    assert [c[:2] for c in copies(family, Audience(), "email_else_sms")] == [
        ("email", "gwen@example.org"),
        ("email", "jill@example.org"),
        ("email", "mary@example.org"),
        ("sms", "+447700900002"),
    ]
    both = copies(family, Audience(), "both")
    assert len(both) == 6


def test_parental_responsibility_and_year_groups(family: School) -> None:
    pr = copies(family, Audience(parents="responsibility"), "sms")
    assert [c[2] for c in pr] == ["Mary Smith", "Jill Jones"]
    year8 = copies(family, Audience(students="years", years=("8",)), "email")
    assert year8 == [
        ("email", "gwen@example.org", "Gwen Smith", "Ben"),
        ("email", "mary@example.org", "Mary Smith", "Ben"),
    ]
    chosen = Member.objects.get(school=family, mis_id="B1").pk
    assert [
        c[1] for c in copies(family, Audience(students="chosen", student_ids=(chosen,)), "sms")
    ] == ["+447700900003"]


def test_opted_out_held_and_channel_off_are_never_included(family: School) -> None:
    Adult.objects.filter(forename="Mary").update(opted_out=True)
    Adult.objects.filter(forename="Jill").update(held=True)
    Adult.objects.filter(forename="Dan").update(sms_off=True)
    assert copies(family, Audience(), "sms") == []
    assert [c[1] for c in copies(family, Audience(), "email")] == ["gwen@example.org"]


def test_a_number_that_texted_stop_gets_no_sms(family: School) -> None:
    SmsBlock.objects.create(school=family, number="+447700900001", keyword="STOP")
    assert [c[1] for c in copies(family, Audience(parents="prime"), "sms")] == ["+447700900003"]
    # Email, else SMS: Mary still gets email.
    assert ("email", "mary@example.org") in [
        c[:2] for c in copies(family, Audience(parents="prime"), "email_else_sms")
    ]


def test_one_number_shared_by_two_adults_gets_one_copy_greeting_both(family: School) -> None:
    Adult.objects.filter(forename="Dan").update(mobile="+447700900001")
    assert copies(family, Audience(), "sms") == [
        ("sms", "+447700900001", "Mary Smith and Dan Smith", "Amy, Ben and Cara"),
        ("sms", "+447700900003", "Jill Jones", "Jo"),
    ]
    shared = resolve(family, Audience(), "sms").copies[0]
    assert shared.adult_ids == [adult(family, "Mary").pk, adult(family, "Dan").pk]


def test_a_teacher_who_is_also_a_parent_gets_one_copy(family: School) -> None:
    resolved = resolve(family, Audience(parents="prime", roles=("teacher",)), "email")
    to = sorted(c.to for c in resolved.copies)
    assert to == ["jill@example.org", "mary@example.org"]
    mary = next(c for c in resolved.copies if c.to == "mary@example.org")
    assert mary.name == "Mary Smith and Tess Teach"


def test_staff_by_role_and_individuals(family: School) -> None:
    assert copies(family, Audience(who="staff", roles=("governor",)), "email") == [
        ("email", "gus@example.org", "Gus Gov", "")
    ]
    assert len(copies(family, Audience(who="staff"), "email")) == 2
    gwen = adult(family, "Gwen")
    resolved = resolve(family, Audience(who="individuals", adult_ids=(gwen.pk,)), "sms")
    assert resolved.copies == []
    assert [(u.name, u.why) for u in resolved.unreachable] == [
        ("Gwen Smith", "no mobile that can take this SMS")
    ]
    Adult.objects.filter(pk=gwen.pk).update(opted_out=True)
    resolved = resolve(family, Audience(who="individuals", adult_ids=(gwen.pk,)), "email")
    assert resolved.copies == []
    assert [(u.name, u.why) for u in resolved.unreachable] == [("Gwen Smith", "opted out")]


def test_the_unreachable_list(family: School) -> None:
    resolved = resolve(family, Audience(students="years", years=("7",)), "sms")
    assert [(u.name, u.why) for u in resolved.unreachable] == [("Kit Kay", "no linked adult")]
    Adult.objects.filter(forename="Jill").update(mobile="")
    resolved = resolve(family, Audience(students="years", years=("7",)), "sms")
    assert [(u.name, u.why) for u in resolved.unreachable] == [
        ("Jo Jones", "no adult with a mobile that takes SMS"),
        ("Kit Kay", "no linked adult"),
    ]


def test_other_schools_are_never_reached(family: School) -> None:
    other = School.objects.create(urn="100002", name="Other")
    run_import(
        other, [pupil("Z1", "Zed", "Zee", contact(1, "Zoe", "Zee", email="zoe@example.org"))]
    )
    assert [c[1] for c in copies(family, Audience(), "email")] == [
        "gwen@example.org",
        "jill@example.org",
        "mary@example.org",
    ]


def test_a_bad_audience_is_refused() -> None:
    with pytest.raises(AudienceError):
        Audience(students="years")
    with pytest.raises(AudienceError):
        Audience(who="individuals")
    with pytest.raises(AudienceError):
        Audience(who="staff", roles=("student",))


def test_chosen_people_cost_the_same_queries_however_many(
    family: School, django_assert_max_num_queries: Any
) -> None:
    """Each chosen parent's children come from one query for all of them, not one each."""
    adults = tuple(Adult.objects.filter(school=family).values_list("pk", flat=True))
    with django_assert_max_num_queries(4):
        resolved = resolve(family, Audience(who="individuals", adult_ids=adults), "email")
    mary = next(c for c in resolved.copies if c.to == "mary@example.org")
    assert mary.children == "Amy, Ben and Cara"
