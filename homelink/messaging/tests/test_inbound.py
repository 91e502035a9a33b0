"""Inbound texts: STOP-style keywords, START, and replies shown to staff."""

from __future__ import annotations

import pytest

from homelink.messaging.inbound import inbound_sms_receive, keyword_of
from homelink.messaging.models import Channel, Delivery, InboundSms, SmsBlock
from homelink.messaging.tests.sms_helpers import (
    NUMBER,
    delivery,
    message,
    other_school,
    parent,
    student,
)
from homelink.schools.models import School

pytestmark = pytest.mark.django_db

GATEWAY_NUMBER = "+447700900999"


def receive(text: str, from_number: str = NUMBER, gateway_id: str = "") -> InboundSms | None:
    return inbound_sms_receive(
        from_number=from_number, to_number=GATEWAY_NUMBER, text=text, gateway_id=gateway_id
    )


@pytest.mark.parametrize("word", ["STOP", "STOPALL", "UNSUBSCRIBE", "END", "QUIT", "CANCEL"])
def test_each_stop_word_blocks_the_number(school: School, word: str) -> None:
    delivery(school)
    row = receive(word, gateway_id="SMin1")
    assert row is not None
    assert (row.action, row.school, row.from_number) == ("stop", school, NUMBER)
    block = SmsBlock.objects.get()
    assert (block.school, block.number, block.keyword) == (school, NUMBER, word)


@pytest.mark.parametrize(
    "text", ["stop", "  Stop  ", "STOP.", "Stop!", "STOP-", "\nstop\n", "sToP", "'stop'"]
)
def test_keywords_ignore_case_whitespace_and_punctuation(school: School, text: str) -> None:
    delivery(school)
    row = receive(text)
    assert row is not None
    assert row.action == "stop"
    assert SmsBlock.objects.filter(school=school, number=NUMBER).exists()


@pytest.mark.parametrize(
    "text",
    ["stopped by the office", "Please stop", "St op", "STOP2", "stop please", "Cancel lunch club?"],
)
def test_a_keyword_must_be_the_first_word(school: School, text: str) -> None:
    delivery(school)
    row = receive(text)
    assert row is not None
    assert row.action == ""
    assert not SmsBlock.objects.exists()


def test_stop_is_idempotent(school: School) -> None:
    delivery(school)
    receive("STOP")
    receive("stop")
    assert SmsBlock.objects.count() == 1
    assert InboundSms.objects.filter(action="stop").count() == 2


def test_start_removes_the_block(school: School) -> None:
    delivery(school)
    receive("STOP")
    row = receive("Start")
    assert row is not None
    assert row.action == "start"
    assert not SmsBlock.objects.exists()


def test_a_number_written_nationally_is_the_same_number(school: School) -> None:
    delivery(school)
    receive("STOP", from_number="07700 900001")
    assert SmsBlock.objects.get().number == NUMBER


def test_stop_blocks_every_school_that_texted_the_number(school: School) -> None:
    second = other_school()
    delivery(school)
    delivery(second)
    row = receive("STOP", gateway_id="SMin1")
    assert row is not None
    assert row.school == second  # the latest school's row carries the gateway's id
    assert set(SmsBlock.objects.values_list("school_id", flat=True)) == {school.pk, second.pk}
    assert InboundSms.objects.count() == 2
    assert InboundSms.objects.get(gateway_id="SMin1").school == second
    receive("START")
    assert not SmsBlock.objects.exists()


def test_a_reply_is_stored_on_the_latest_school_linked_to_the_message(school: School) -> None:
    second = other_school()
    adult, child = parent(second), student(second)
    delivery(school)
    older = message(second, text="Trip letters due")
    latest = message(second, text="Sports day moved")
    delivery(second, msg=older)
    delivery(second, msg=latest, adult=adult, member=child)
    delivery(second, to="+447700900002")  # someone else
    row = receive("Thanks, Sam will be there", gateway_id="SMin2")
    assert row is not None
    assert (row.school, row.action, row.in_reply_to) == (second, "", latest)
    assert (row.adult, row.member) == (adult, child)
    assert (row.text, row.to_number, row.gateway_id) == (
        "Thanks, Sam will be there",
        GATEWAY_NUMBER,
        "SMin2",
    )
    assert not SmsBlock.objects.exists()


def test_an_unknown_number_stores_nothing(school: School) -> None:
    delivery(school, to="+447700900002")
    assert receive("STOP") is None
    assert receive("hello") is None
    assert receive("hello", from_number="not a number") is None
    assert not InboundSms.objects.exists()
    assert not SmsBlock.objects.exists()


def test_copies_that_never_left_do_not_count(school: School) -> None:
    delivery(school, status=Delivery.Status.QUEUED)
    delivery(school, status=Delivery.Status.SKIPPED)
    delivery(school, channel=Channel.EMAIL, to=NUMBER)
    assert receive("hello") is None
    assert not InboundSms.objects.exists()


def test_a_retried_webhook_stores_nothing_new(school: School) -> None:
    delivery(school)
    first = receive("Thanks", gateway_id="SMin3")
    again = receive("Thanks", gateway_id="SMin3")
    assert first is not None
    assert again == first
    assert InboundSms.objects.count() == 1
    receive("STOP", gateway_id="SMin4")
    receive("STOP", gateway_id="SMin4")
    assert InboundSms.objects.filter(action="stop").count() == 1
    # A START retried after the number stopped again must not undo the later STOP.
    receive("START", gateway_id="SMin5")
    receive("STOP", gateway_id="SMin6")
    receive("START", gateway_id="SMin5")
    assert SmsBlock.objects.exists()


def test_keyword_of() -> None:
    assert keyword_of("  unsubscribe.  ") == "UNSUBSCRIBE"
    assert keyword_of("unsubscribe me") == ""
    assert keyword_of("") == ""
    assert keyword_of("   ") == ""
