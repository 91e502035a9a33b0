"""A trust-wide send's shared copy (one number or address on two schools' registers) is recorded
under one school's message, greeting both schools' people and naming both schools' children.
That school's own staff still see only their school: its message page and CSV show their own
family's part of the copy, never the sister school's pupils. Erasing the person at the other
school takes them out of the copy it does not hold."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from homelink.console.tests.conftest import make_user, member_of
from homelink.messaging.dispatch import render_for
from homelink.messaging.models import Delivery, Message, TrustMessage
from homelink.privacy.erasure import adult_erase, erasure_preview
from homelink.register.models import Adult
from homelink.schools.models import School
from homelink.staff.models import Role
from homelink.trusts.models import Trust
from homelink.trusts.tests.test_trust_send import ELM, OAK, send, snow  # noqa: F401

pytestmark = pytest.mark.django_db

MARY = "+447700900001"


def _own_staff(urn: str) -> Client:
    """A sender of this school alone: no place at the sister school, no trust role."""
    user: Any = make_user(f"head@{urn}.example")
    member_of(user, School.objects.get(urn=urn), Role.SENDER)
    client = Client()
    client.force_login(user)
    return client


def _message(record: TrustMessage, urn: str) -> Message:
    return Message.objects.get(trust_message=record, school__urn=urn)


def _csv(client: Client, urn: str, message: Message) -> dict[str, dict[str, str]]:
    response: Any = client.get(
        reverse("console:message_csv", kwargs={"urn": urn, "message_id": message.pk})
    )
    assert response.status_code == 200
    body = b"".join(response.streaming_content).decode("utf-8-sig")
    # A number starting "+" is written "'+…" (kept as text by spreadsheets).
    return {row["to"].lstrip("'"): row for row in csv.DictReader(io.StringIO(body))}


@pytest.mark.parametrize(
    ("first", "other", "own_child", "sister_child"),
    [(ELM, OAK, "Ben", "Amy"), (OAK, ELM, "Amy", "Ben")],
)
def test_a_schools_own_staff_see_only_their_part_of_a_shared_copy(
    snow: Trust,  # noqa: F811
    first: str,
    other: str,
    own_child: str,
    sister_child: str,
) -> None:
    # Mary Smith is on both registers (Amy at Oak, Ben at Elm): the school chosen first sends,
    # and records, the one text that names both children. That is what Mary was sent.
    record = send(snow, [first, other])
    message = _message(record, first)
    shared = message.deliveries.get(to=MARY)
    assert shared.children in ("Amy and Ben", "Ben and Amy")
    client = _own_staff(first)
    assert client.get(reverse("console:messages", kwargs={"urn": other})).status_code == 404

    page = client.get(reverse("console:message", kwargs={"urn": first, "message_id": message.pk}))
    assert page.status_code == 200
    text = page.content.decode()
    # The copy's row: Mary (this school's Mary), about this school's child only.
    assert "Mary Smith" in text and own_child in text
    assert sister_child not in text

    rows = _csv(client, first, message)
    assert (rows[MARY]["name"], rows[MARY]["children"]) == ("Mary Smith", own_child)
    assert sister_child not in str(rows)
    # The stored copy is untouched: it is what went to the family.
    shared.refresh_from_db()
    assert sister_child in shared.children


def test_a_school_part_of_a_copy_shows_only_who_is_left_after_its_own_erasure(
    snow: Trust,  # noqa: F811
) -> None:
    record = send(snow, [ELM, OAK])
    message = _message(record, ELM)
    Delivery.objects.filter(message=message).update(status=Delivery.Status.DELIVERED)
    # Elm erases its Mary: Oak's Mary is still on the copy, Elm's part of it is nobody.
    adult_erase(adult=Adult.objects.get(school__urn=ELM, forename="Mary"), actor="test")
    shared = Delivery.objects.get(message=message, to=MARY)
    assert (shared.name, shared.children) == ("Mary Smith", "Amy")
    rows = _csv(_own_staff(ELM), ELM, message)
    assert (rows[MARY]["name"], rows[MARY]["children"]) == ("", "")


def test_erasing_at_the_other_school_takes_them_out_of_a_sent_shared_copy(
    snow: Trust,  # noqa: F811
) -> None:
    record = send(snow, [ELM, OAK])
    message = _message(record, ELM)
    Delivery.objects.filter(message=message).update(status=Delivery.Status.DELIVERED)
    oak_mary = Adult.objects.get(school__urn=OAK, forename="Mary")
    elm_mary = Adult.objects.get(school__urn=ELM, forename="Mary")
    shared = Delivery.objects.get(message=message, to=MARY)
    assert oak_mary.pk in shared.adult_ids

    # The confirmation counts the copy Elm holds among Oak's Mary's.
    assert erasure_preview(adult=oak_mary).copies == 1
    # Oak erases its Mary: the copy Elm holds no longer carries her id or Amy, and still
    # stands for Elm's Mary (her number and her greeting stay: Elm's record of what it sent).
    adult_erase(adult=oak_mary, actor="test")
    shared.refresh_from_db()
    assert shared.adult_ids == [elm_mary.pk]
    assert (shared.to, shared.name, shared.children) == (MARY, "Mary Smith", "Ben")
    by_urn = {entry["urn"]: entry for entry in shared.schools or []}
    assert by_urn[OAK]["adults"] == [] and by_urn[ELM]["adults"] == [elm_mary.pk]
    assert "Amy" not in str(shared.schools)

    # Elm erases its Mary too: nobody is left on the copy, and it keeps only its counts.
    adult_erase(adult=elm_mary, actor="test")
    shared.refresh_from_db()
    assert (shared.to, shared.name, shared.children, shared.adult_ids) == ("", "", "", [])
    assert shared.status == Delivery.Status.DELIVERED
    assert Delivery.objects.filter(message__trust_message=record).count() == 4


def test_erasing_at_the_other_school_before_a_scheduled_shared_copy_goes(
    snow: Trust,  # noqa: F811
) -> None:
    record = send(snow, [ELM, OAK])
    message = _message(record, ELM)
    adult_erase(adult=Adult.objects.get(school__urn=OAK, forename="Mary"), actor="test")
    shared = Delivery.objects.get(message=message, to=MARY)
    # Still queued for Elm's Mary, and it now says only what is Elm's: Oak, which knows nobody
    # at this number any more, is not named, and Amy is not either.
    assert shared.status == Delivery.Status.QUEUED
    assert [entry["urn"] for entry in shared.schools or []] == [ELM]
    assert render_for(message.sms_text, shared) == (
        "Elm Academy is closed today: Ben should stay at home."
    )
