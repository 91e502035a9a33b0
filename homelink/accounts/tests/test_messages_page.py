"""The parent's messages page: what the schools sent to the account's adults, and nothing else."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import User
from django.urls import reverse
from django.utils import timezone

from homelink.accounts.tests.conftest import logged_in, make_parent
from homelink.messaging.models import Delivery, Message
from homelink.register.models import Adult
from homelink.schools.models import School

pytestmark = pytest.mark.django_db


def message(
    school: School,
    *,
    subject: str = "",
    email_body: str = "",
    sms_text: str = "",
    send_at: dt.datetime | None = None,
) -> Message:
    return Message.objects.create(
        school=school,
        mode=Message.Mode.BOTH,
        audience_label="Parents of all students",
        subject=subject,
        email_body=email_body,
        sms_text=sms_text,
        send_at=send_at or timezone.now(),
    )


def copy(
    msg: Message,
    adult: Adult,
    *,
    channel: str = "email",
    status: str = "delivered",
    adult_ids: list[int] | None = None,
    name: str = "",
    children: str = "Sam",
) -> Delivery:
    return Delivery.objects.create(
        message=msg,
        school=msg.school,
        channel=channel,
        to="x",
        adult=adult,
        adult_ids=adult_ids if adult_ids is not None else [adult.pk],
        name=name or f"{adult.forename} {adult.surname}",
        children=children,
        status=status,
        next_attempt_at=msg.send_at,
    )


@pytest.fixture
def pat(roll: School) -> User:
    user = make_parent()
    Adult.objects.filter(school=roll, forename="Pat").update(account=user, registered=True)
    return user


def pats_adult(school: School) -> Adult:
    return Adult.objects.get(school=school, forename="Pat")


def page_of(user: User) -> str:
    response = logged_in(user).get(reverse("account_messages"))
    assert response.status_code == 200
    return response.content.decode()


def test_the_parent_reads_their_messages_rendered_for_them_newest_first(pat, roll):
    pat_adult = pats_adult(roll)
    old = message(
        roll,
        subject="Trip for {children}",
        email_body="Dear {name}, {children} goes to the zoo. {school}",
        send_at=timezone.now() - dt.timedelta(days=3),
    )
    copy(old, pat_adult)
    new = message(roll, sms_text="{school}: closed today, {name}.")
    copy(new, pat_adult, channel="sms", status="failed")
    page = page_of(pat)
    assert "Trip for Sam" in page
    assert "Dear Pat Smith, Sam goes to the zoo. Example Academy" in page
    assert "Example Academy: closed today, Pat Smith." in page
    assert "Text message: could not be delivered." in page
    assert "Email: delivered." in page
    assert page.index("closed today") < page.index("Trip for Sam")
    assert "{name}" not in page


def test_a_copy_on_a_shared_number_shows_for_everyone_it_carried(pat, roll):
    pat_adult = pats_adult(roll)
    other = Adult.objects.create(school=roll, forename="Chris", surname="Smith", name_key="x")
    msg = message(roll, sms_text="Hello {name}")
    copy(msg, other, channel="sms", adult_ids=[other.pk, pat_adult.pk], name="Chris and Pat")
    assert "Hello Chris and Pat" in page_of(pat)


def test_another_parents_messages_never_show(pat, roll):
    pat_adult = pats_adult(roll)
    other_user = make_parent(email="other@example.org", forename="Olly", surname="Other")
    other = Adult.objects.create(
        school=roll, forename="Olly", surname="Other", name_key="x", account=other_user
    )
    # An adult whose id contains Pat's adult's id as digits: never matched as Pat.
    lookalike = Adult.objects.create(
        pk=int(f"{pat_adult.pk}0{pat_adult.pk}"), school=roll, forename="L", surname="L"
    )
    mine = message(roll, sms_text="For Pat")
    copy(mine, pat_adult, channel="sms")
    theirs = message(roll, sms_text="For Olly only")
    copy(theirs, other, channel="sms")
    near = message(roll, sms_text="For the lookalike")
    copy(near, lookalike, channel="sms", adult_ids=[lookalike.pk, other.pk])
    page = page_of(pat)
    assert "For Pat" in page
    assert "For Olly only" not in page and "For the lookalike" not in page
    others = page_of(other_user)
    assert "For Olly only" in others and "For the lookalike" in others
    assert "For Pat" not in others


def test_copies_never_sent_and_messages_not_yet_due_are_not_shown(pat, roll):
    pat_adult = pats_adult(roll)
    copy(message(roll, sms_text="Cancelled one"), pat_adult, channel="sms", status="cancelled")
    copy(message(roll, sms_text="Skipped one"), pat_adult, channel="sms", status="skipped")
    later = message(roll, sms_text="Next week", send_at=timezone.now() + dt.timedelta(days=7))
    copy(later, pat_adult, channel="sms", status="queued")
    page = page_of(pat)
    for text in ("Cancelled one", "Skipped one", "Next week"):
        assert text not in page
    assert "has not sent you any messages" in page


def test_messages_from_each_school_of_the_account(pat, roll):
    second = School.objects.create(urn="100009", name="Hill Primary")
    there = Adult.objects.create(
        school=second, forename="Pat", surname="Smith", name_key="pat smith", account=pat
    )
    copy(message(second, sms_text="From {school}"), there, channel="sms")
    page = page_of(pat)
    assert "From Hill Primary" in page and "Hill Primary," in page


def test_the_account_page_links_to_the_messages_and_strangers_are_sent_to_log_in(client, pat):
    assert reverse("account_messages") in logged_in(pat).get(reverse("account")).content.decode()
    response = client.get(reverse("account_messages"))
    assert response.status_code == 302 and reverse("login") in response["Location"]


def test_an_account_with_no_adults_sees_an_empty_page(db):
    user = make_parent(email="new@example.org")
    assert "has not sent you any messages" in page_of(user)
