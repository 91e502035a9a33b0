"""The preview says who a message leaves out, and why, each name leading to the record; its
figures agree (people = reached + left out; messages = copies once shared numbers have one),
and finding the left out costs no query per person (issue 10, item 5)."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from homelink.console.tests.compose import draft, new_url, preview
from homelink.messaging.models import Message, SmsBlock
from homelink.mis.tests.factories import build_roll
from homelink.register.models import Adult, Member, Source
from homelink.register.services import adult_create, link_add
from homelink.schools.models import School


def left_out_roll(school: School) -> School:
    """The message roll (mis/tests/factories.build_roll) where year 7's SMS leaves someone out for each
    reason: Mary opted out, Dan turned SMS off, Jill's number texted STOP, Nina (Kit's) has no
    mobile; Rita and Sam (Kit's too) share one mobile and are the only ones reached."""
    build_roll(school)
    Adult.objects.filter(school=school, forename="Mary").update(opted_out=True)
    Adult.objects.filter(school=school, forename="Dan").update(sms_off=True)
    SmsBlock.objects.create(school=school, number="+447700900003", keyword="STOP")
    kit = Member.objects.get(school=school, mis_id="C1")
    for forename, mobile in (("Nina", ""), ("Rita", "07700 900031"), ("Sam", "07700 900031")):
        adult = adult_create(
            school=school, forename=forename, surname="Kay", mobile=mobile, actor="test"
        )
        link_add(student=kit, adult=adult, source=Source.MANUAL, actor="test")
    return school


@pytest.fixture
def sender(client, sender_a):
    client.force_login(sender_a)
    return client


def dd(page: str, term: str) -> str:
    found = re.search(rf"<dt>{re.escape(term)}</dt><dd>([^<]*)</dd>", page)
    assert found is not None, f"no figure {term!r}"
    return found.group(1)


def group(page: str, title: str) -> str:
    """One reason's list on the preview, as HTML."""
    found = re.search(rf"<summary>{re.escape(title)}: \d+</summary>(.*?)</details>", page, re.S)
    assert found is not None, f"no group {title!r}"
    return found.group(1)


def member_url(school: School, mis_id: str) -> str:
    member = Member.objects.get(school=school, mis_id=mis_id)
    return reverse("console:member", kwargs={"urn": school.urn, "member_id": member.pk})


def test_the_preview_lists_who_is_left_out_by_reason_with_a_link_to_each(sender, school):
    roll = left_out_roll(school)
    page, _ = preview(sender, roll)
    assert [dd(page, t) for t in ("People", "Reached", "Left out", "Messages in all")] == [
        "6",
        "2",
        "4",
        "1",
    ]
    assert dd(page, "Students nobody reaches") == "2"  # Amy (and Ben's year is 8) and Jo
    assert "6 people in this audience: 2 reached and 4 left out" in page
    assert "so there is 1 message fewer than one per person reached" in page
    assert "SMS to 07700 900031, one copy for Rita Kay and Sam Kay" in page
    titles = re.findall(r"<summary>([^<]+)</summary>", page)
    assert titles == ["Opted out: 1", "No mobile: 1", "Turned SMS off: 1", "Texted STOP: 1"]
    amy, jo, kit = (member_url(roll, m) for m in ("A1", "B1", "C1"))
    assert f'<a href="{amy}">Mary Smith</a>' in group(page, "Opted out")
    assert f'<a href="{amy}">Dan Smith</a>' in group(page, "Turned SMS off")
    assert f'<a href="{jo}">Jill Jones</a>' in group(page, "Texted STOP")
    assert f'<a href="{kit}">Nina Kay</a>' in group(page, "No mobile")
    # No internal codes on the page.
    assert "no_details" not in page and "channel_off" not in page and "opted_out" not in page
    assert not Message.objects.exists()


def test_email_words_its_groups_for_email_and_staff_lead_to_their_own_record(sender, school):
    roll = left_out_roll(school)
    Member.objects.filter(school=roll, mis_id="S1").update(opted_out=True)
    page, _ = preview(
        sender, roll, mode="email", subject="Closed", email_body="Closed.", also_roles=["teacher"]
    )
    assert "<summary>No email address: 4</summary>" in page  # Dan, Nina, Rita and Sam
    assert f'<a href="{member_url(roll, "S1")}">Tess Teach</a> <span class="muted">· staff' in (
        group(page, "Opted out")
    )
    people, reached, left = (int(dd(page, t)) for t in ("People", "Reached", "Left out"))
    assert people == reached + left


def test_everyone_reached_says_nobody_is_left_out(sender, school):
    roll = build_roll(school)
    page, _ = preview(sender, roll, years=["8"])
    assert "Nobody: everyone in this audience gets it." in page
    assert dd(page, "Left out") == "0"


def test_the_printable_list_still_lists_the_students_nobody_reaches(sender, school):
    roll = left_out_roll(school)
    page, _ = preview(sender, roll)
    link = re.search(r'href="([^"]*/messages/unreachable/\?[^"]+)"', page)
    assert link is not None
    printable = sender.get(link.group(1).replace("&amp;", "&")).content.decode()
    assert "<h1>Nobody reachable: 2</h1>" in printable
    assert "Amy Smith" in printable and "Jo Jones" in printable


def test_the_preview_costs_no_query_per_person_left_out(sender, school):
    roll = left_out_roll(school)

    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            response = sender.post(new_url(roll), draft())
        assert response.status_code == 200
        return len(ctx.captured_queries)

    few = queries()
    kit = Member.objects.get(school=roll, mis_id="C1")
    for n in range(25):
        adult = adult_create(school=roll, forename=f"Extra{n}", surname="Kay", actor="test")
        link_add(student=kit, adult=adult, source=Source.MANUAL, actor="test")
        Adult.objects.filter(pk=adult.pk).update(opted_out=n % 2 == 0, held=n % 2 == 1)
    assert queries() == few
    page = sender.post(new_url(roll), draft()).content.decode()
    assert dd(page, "Left out") == str(4 + 25)


def test_a_long_group_names_its_first_hundred_and_counts_the_rest(sender, school):
    """A send to a whole school can leave thousands out: each reason lists at most 100 names,
    then says how many more (the printable list has everyone)."""
    roll = left_out_roll(school)
    kit = Member.objects.get(school=roll, mis_id="C1")
    for n in range(105):
        adult = adult_create(school=roll, forename=f"Extra{n:03d}", surname="Kay", actor="test")
        link_add(student=kit, adult=adult, source=Source.MANUAL, actor="test")
    Adult.objects.filter(school=roll, forename__startswith="Extra").update(opted_out=True)
    page = sender.post(new_url(roll), draft()).content.decode()
    opted_out = group(page, "Opted out")
    assert "<summary>Opted out: 106</summary>" in page
    assert opted_out.count("<li>") == 100
    assert "and 6 more" in opted_out
