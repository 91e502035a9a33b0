"""``homelink send``: the same send as the console, for scripts."""

from __future__ import annotations

import json
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from homelink.messaging.models import Delivery, Message
from homelink.schools.models import School

pytestmark = pytest.mark.django_db


def send(*args: str) -> dict[str, Any]:
    out = StringIO()
    call_command("send", "--school", "100001", *args, "--json", stdout=out)
    result: dict[str, Any] = json.loads(out.getvalue())
    return result


def test_a_dry_run_prints_the_figures_and_sends_nothing(family: School) -> None:
    figures = send(
        "--audience", "year:7", "--channel", "sms", "--text", "Closed \u2013 sorry", "--dry-run"
    )
    assert figures == {
        "recipients": 4,  # Gwen has no mobile: she is counted, and gets nothing by SMS
        "reached": 3,
        "left_out": {
            "opted_out": 0,
            "held": 0,
            "left": 0,
            "no_details": 1,
            "channel_off": 0,
            "stop": 0,
        },
        "messages": 3,
        "sms": 3,
        "email": 0,
        "sms_parts": {"min": 1, "max": 1},
        "encoding": "UCS-2",
        "ucs2_characters": ["\u2013"],
        "credits": 3,
        "credits_available": 1000,
        "unreachable": 1,
        "needs_confirmation": False,
        "message": None,
        "status": "dry run",
    }
    assert not Message.objects.exists()


def test_a_send_queues_the_message(family: School) -> None:
    figures = send(
        "--audience", "prime", "--channel", "email", "--subject", "Closed", "--text", "Dear {name}"
    )
    message = Message.objects.get(pk=figures["message"])
    assert figures["status"] == "queued"
    assert sorted(Delivery.objects.filter(message=message).values_list("to", flat=True)) == [
        "jill@example.org",
        "mary@example.org",
    ]


def test_staff_by_role_and_chosen_students(family: School) -> None:
    assert (
        send(
            "--audience",
            "staff:governor",
            "--channel",
            "email",
            "--subject",
            "S",
            "--text",
            "T",
            "--dry-run",
        )["messages"]
        == 1
    )
    assert (
        send("--audience", "students:B1", "--channel", "sms", "--text", "T", "--dry-run")["sms"]
        == 1
    )


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--audience", "year"], "Choose at least one"),
        (["--audience", "everybody"], "not an audience"),
        (["--audience", "students:NOPE"], "no student with MIS id NOPE"),
        (["--text", "Hi {nmae}"], "Unknown merge field"),
        (["--at", "tomorrow"], "give a time like"),
    ],
)
def test_mistakes_are_named_and_nothing_is_sent(
    family: School, args: list[str], error: str
) -> None:
    values = {"--text": "Hello", "--channel": "sms"}
    values.update(dict(zip(args[::2], args[1::2], strict=True)))
    with pytest.raises(CommandError, match=error):
        call_command("send", "--school", "100001", *[x for kv in values.items() for x in kv])
    assert not Message.objects.exists()


def test_credits_and_the_large_send_confirmation(family: School) -> None:
    School.objects.filter(pk=family.pk).update(sms_credits=1, large_send_threshold=2)
    with pytest.raises(CommandError, match="confirm the large send"):
        call_command("send", "--school", "100001", "--channel", "sms", "--text", "Hi")
    with pytest.raises(CommandError, match="needs 3 SMS credits and the school has 1"):
        call_command("send", "--school", "100001", "--channel", "sms", "--text", "Hi", "--yes")
    assert not Message.objects.exists()


def test_an_unknown_school_is_named(family: School) -> None:
    with pytest.raises(CommandError, match="999999"):
        call_command("send", "--school", "999999", "--text", "x")


def test_a_scheduled_send_says_so(family: School) -> None:
    figures = send(
        "--audience", "prime", "--channel", "sms", "--text", "Hi", "--at", "2099-01-01T07:00"
    )
    assert figures["status"] == "scheduled"
    assert Message.objects.get(pk=figures["message"]).scheduled


def test_the_printed_figures_say_who_is_left_out_and_why(family: School) -> None:
    from homelink.register.models import Adult

    Adult.objects.filter(forename="Mary").update(opted_out=True)
    out = StringIO()
    call_command(
        "send", "--school", "100001", "--audience", "year:7", "--channel", "sms",
        "--text", "Closed", "--dry-run", stdout=out,
    )  # fmt: skip
    assert "recipients:   4 (2 reached, 2 left out: 1 opted out, 1 no mobile)" in out.getvalue()
