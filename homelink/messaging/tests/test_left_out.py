"""Who a message leaves out, and why: every person the audience names is either reached or left
out for one reason, and the messages are the copies left once shared numbers and addresses have
one copy each (issue 10, item 5)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from homelink.messaging.audience import (
    Audience,
    LeftOutReason,
    Resolved,
    channels_for,
    resolve,
)
from homelink.messaging.models import Message, SmsBlock
from homelink.mis.tests.factories import adult
from homelink.register.models import Adult, Member, Source
from homelink.register.services import adult_create, link_add
from homelink.schools.models import School

pytestmark = pytest.mark.django_db

Mode = Message.Mode


def add_adult(school: School, student_mis_id: str, forename: str, **details: str) -> Adult:
    """A manual adult linked to one student."""
    new = adult_create(school=school, forename=forename, surname="Kay", actor="test", **details)
    student = Member.objects.get(school=school, mis_id=student_mis_id)
    link_add(student=student, adult=new, source=Source.MANUAL, actor="test")
    return new


@pytest.fixture
def every_reason(family: School) -> School:
    """The family school (fixture in conftest.py) with one parent left out for each reason an
    SMS can be: Mary's number texted STOP, Dan turned SMS off, Gwen has no mobile, Jill is held,
    Olly opted out; Rita and Sam (Kit's) share one mobile and are the only ones reached."""
    SmsBlock.objects.create(school=family, number="+447700900001", keyword="STOP")
    Adult.objects.filter(pk=adult(family, "Dan").pk).update(sms_off=True)
    Adult.objects.filter(pk=adult(family, "Jill").pk).update(held=True)
    olly = add_adult(family, "C1", "Olly", mobile="07700 900020")
    Adult.objects.filter(pk=olly.pk).update(opted_out=True)
    add_adult(family, "C1", "Rita", mobile="07700 900021")
    add_adult(family, "C1", "Sam", mobile="07700 900021")
    return family


def by_reason(resolved: Resolved) -> dict[str, list[str]]:
    return {g.reason.value: [p.name for p in g.people] for g in resolved.left_out_groups()}


def assert_counts_agree(resolved: Resolved, mode: str) -> None:
    """People = reached + left out (by reason); messages = one per person reached and channel,
    less one for each extra person a shared copy stands for."""
    counts = resolved.left_out_counts()
    assert resolved.people == resolved.reached + sum(counts.values())
    assert sum(counts.values()) == len(resolved.left_out)
    in_copies = {id(p) for c in resolved.copies for p in c.people}
    left = {id(p) for p, _ in resolved.left_out}
    assert not in_copies & left, "someone both reached and left out"
    assert len(in_copies) == resolved.reached
    pairs = sum(
        len(channels_for(p, mode))
        for p in {id(p): p for c in resolved.copies for p in c.people}.values()
    )
    assert len(resolved.copies) == pairs - resolved.copies_saved


def test_each_person_left_out_is_grouped_by_their_reason(every_reason: School) -> None:
    resolved = resolve(every_reason, Audience(), Mode.SMS)
    assert by_reason(resolved) == {
        "opted_out": ["Olly Kay"],
        "held": ["Jill Jones"],
        "no_details": ["Gwen Smith"],
        "channel_off": ["Dan Smith"],
        "stop": ["Mary Smith"],
    }
    assert (resolved.people, resolved.reached, len(resolved.copies)) == (7, 2, 1)
    # Rita and Sam share a mobile: one copy greets both.
    assert [c.name for c in resolved.shared] == ["Rita Kay and Sam Kay"]
    assert resolved.copies_saved == 1
    assert_counts_agree(resolved, Mode.SMS)


def test_the_groups_are_worded_for_the_channel_chosen(every_reason: School) -> None:
    sms = {g.reason: g.title for g in resolve(every_reason, Audience(), Mode.SMS).left_out_groups()}
    assert sms[LeftOutReason.NO_DETAILS] == "No mobile"
    assert sms[LeftOutReason.CHANNEL_OFF] == "Turned SMS off"
    assert sms[LeftOutReason.STOP] == "Texted STOP"
    Adult.objects.filter(forename="Jill").update(held=False, email_off=True)
    email = resolve(every_reason, Audience(), Mode.EMAIL)
    assert by_reason(email) == {
        "opted_out": ["Olly Kay"],
        "no_details": ["Dan Smith", "Rita Kay", "Sam Kay"],
        "channel_off": ["Jill Jones"],
    }
    titles = [g.title for g in email.left_out_groups()]
    assert titles == ["Opted out", "No email address", "Turned email off"]
    assert_counts_agree(email, Mode.EMAIL)


@pytest.mark.parametrize("mode", Mode.values)
def test_the_counts_add_up_on_every_channel(every_reason: School, mode: str) -> None:
    for audience in (
        Audience(),
        Audience(parents="prime", roles=("teacher",)),
        Audience(who="staff"),
        Audience(students="years", years=("7",)),
    ):
        assert_counts_agree(resolve(every_reason, audience, mode), mode)


def test_email_else_sms_leaves_out_only_those_neither_reaches(every_reason: School) -> None:
    resolved = resolve(every_reason, Audience(), Mode.EMAIL_ELSE_SMS)
    # Mary's number texted STOP but she has an address; Gwen has no mobile but has one too.
    assert by_reason(resolved) == {
        "opted_out": ["Olly Kay"],
        "held": ["Jill Jones"],
        # Dan has no address and turned SMS off: the thing he did is the reason, not the gap.
        "channel_off": ["Dan Smith"],
    }
    assert resolved.reached == 4
    assert_counts_agree(resolved, Mode.EMAIL_ELSE_SMS)


def test_both_channels_count_a_copy_per_channel_and_one_per_shared_address(family: School) -> None:
    # Tess the teacher shares Mary's address: Mary gets one email for both, and her own SMS.
    resolved = resolve(family, Audience(parents="prime", roles=("teacher",)), Mode.BOTH)
    assert resolved.people == 3  # Mary, Jill and Tess
    assert resolved.left_out == []
    assert len(resolved.copies) == 4  # Mary's email (shared with Tess) and SMS; Jill's two
    assert resolved.copies_saved == 1
    assert_counts_agree(resolved, Mode.BOTH)


def test_staff_and_chosen_people_left_out_lead_to_their_record(family: School) -> None:
    Member.objects.filter(school=family, forename="Gus").update(opted_out=True)
    staff = resolve(family, Audience(who="staff"), Mode.EMAIL)
    gus = Member.objects.get(school=family, forename="Gus")
    assert [(p.name, r, p.record_id) for p, r in staff.left_out] == [
        ("Gus Gov", LeftOutReason.OPTED_OUT, gus.pk)
    ]
    assert [(u.name, u.why) for u in staff.unreachable] == [("Gus Gov", "opted out")]
    assert_counts_agree(staff, Mode.EMAIL)

    jill = adult(family, "Jill")
    Adult.objects.filter(pk=jill.pk).update(held=True)
    chosen = resolve(family, Audience(who="individuals", adult_ids=(jill.pk,)), Mode.SMS)
    jo = Member.objects.get(school=family, mis_id="B1")
    assert [(p.name, r, p.record_id) for p, r in chosen.left_out] == [
        ("Jill Jones", LeftOutReason.HELD, jo.pk)
    ]
    assert (chosen.people, chosen.reached) == (1, 0)


def test_a_student_whose_adults_are_all_held_or_opted_out_says_so(every_reason: School) -> None:
    resolved = resolve(every_reason, Audience(students="years", years=("7",)), Mode.SMS)
    assert [(u.name, u.why) for u in resolved.unreachable] == [
        ("Jo Jones", "every linked adult opted out or held for review"),
        ("Amy Smith", "no adult with a mobile that takes SMS"),
    ]


def test_finding_who_is_left_out_costs_no_query_per_person(every_reason: School) -> None:
    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            resolve(every_reason, Audience(roles=("teacher",)), Mode.SMS)
        return len(ctx.captured_queries)

    few = queries()
    for n in range(30):
        left = add_adult(every_reason, "C1", f"Extra{n}", mobile=f"07700 9001{n:02d}")
        Adult.objects.filter(pk=left.pk).update(opted_out=n % 2 == 0, sms_off=n % 2 == 1)
    Member.objects.filter(school=every_reason, forename="Tess").update(opted_out=True)
    assert queries() == few <= 4
    resolved = resolve(every_reason, Audience(roles=("teacher",)), Mode.SMS)
    assert len(resolved.left_out) == 5 + 30 + 1
