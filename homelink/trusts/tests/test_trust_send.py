"""Trust-wide sends (the snow day): one message to chosen schools of a trust, one copy per number
or address across them, each school's sender and credits (or the trust's pool), all or nothing."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from homelink.accounts.tests.conftest import make_parent
from homelink.audit.models import AuditEvent
from homelink.mail_testing import Mailbox
from homelink.messaging.audience import Audience
from homelink.messaging.dispatch import claim, drain, render_for
from homelink.messaging.fakes import FakeSmsGateway
from homelink.messaging.inbound import inbound_sms_receive
from homelink.messaging.management.commands.send import Command as SendCommand
from homelink.messaging.models import Delivery, Message, SmsBlock, TrustMessage
from homelink.messaging.selectors import account_messages
from homelink.messaging.services import Draft, SendError
from homelink.mis.records import Role
from homelink.mis.tests.factories import contact, pupil, run_import, staff
from homelink.register.models import Adult
from homelink.schools.models import School
from homelink.trusts.models import Trust, TrustSchool
from homelink.trusts.sending import (
    LargeTrustSend,
    NotEnoughTrustCredits,
    chosen_schools,
    trust_message_cancel,
    trust_message_preview,
    trust_message_send,
    trust_pool_change,
)

pytestmark = pytest.mark.django_db

TEXT = "{school} is closed today: {children} should stay at home."
OAK, ELM, BIRCH, FAR = "200001", "200002", "200003", "300001"


def _school(urn: str, name: str, sender: str, trust: Trust, credits: int = 100) -> School:
    school = School.objects.create(urn=urn, name=name, sms_sender=sender, sms_credits=credits)
    TrustSchool.objects.create(trust=trust, school=school)
    return school


@pytest.fixture
def snow(db: None) -> Trust:
    """The Oak Learning Trust: Oak Primary, Elm Academy and Birch School, 100 SMS credits each.
    Mary and Dan Smith have Amy at Oak and Ben at Elm (two Adult rows each, same details); Tess
    teaches at both (same email). Zoë (Elm) has opted out. Far School is in another trust."""
    trust = Trust.objects.create(name="Oak Learning Trust")
    oak = _school(OAK, "Oak Primary", "OAKPRIMARY", trust)
    elm = _school(ELM, "Elm Academy", "ELMACADEMY", trust)
    birch = _school(BIRCH, "Birch School", "BIRCH", trust)
    far = _school(FAR, "Far School", "FAR", Trust.objects.create(name="Far Trust"))
    mary = contact(1, "Mary", "Smith", email="mary@example.org", mobile="07700900001")
    dan = contact(1, "Dan", "Smith", mobile="07700900002")
    run_import(
        oak,
        [
            replace(pupil("O1", "Amy", "Smith", mary, dan, year="6"), reg_group="6A"),
            replace(
                pupil(
                    "O2",
                    "Jo",
                    "Jones",
                    contact(1, "Jill", "Jones", email="jill@example.org", mobile="07700900003"),
                    year="7",
                ),
                reg_group="7A",
            ),
            staff("OS1", "Tess", "Teach", Role.TEACHER, email="tess@example.org"),
        ],
    )
    run_import(
        elm,
        [
            replace(pupil("E1", "Ben", "Smith", mary, dan, year="7"), reg_group="7A"),
            pupil(
                "E2",
                "Lou",
                "Brown",
                contact(1, "Zo\u00eb", "Brown", email="zoe@example.org", mobile="07700900004"),
                year="8",
            ),
            pupil(
                "E3",
                "Pat",
                "Patel",
                contact(1, "Priya", "Patel", email="priya@example.org", mobile="07700900005"),
                year="7",
            ),
            staff("ES1", "Tess", "Teach", Role.TEACHER, email="tess@example.org"),
            staff("ES2", "Gus", "Gov", Role.GOVERNOR, email="gus@example.org"),
        ],
    )
    run_import(
        birch,
        [pupil("B1", "Cy", "Cole", contact(1, "Cath", "Cole", mobile="07700900006"), year="7")],
    )
    run_import(
        far,
        [pupil("F1", "Fay", "Far", contact(1, "Fred", "Far", mobile="07700900099"), year="7")],
    )
    Adult.objects.filter(school=elm, forename="Zo\u00eb").update(opted_out=True)
    return trust


def school(urn: str) -> School:
    return School.objects.get(urn=urn)


def credits(urn: str) -> int:
    return School.objects.values_list("sms_credits", flat=True).get(urn=urn)


def draft(**kw: Any) -> Draft:
    values: dict[str, Any] = {
        "mode": "sms",
        "audience": Audience(),
        "sms_text": TEXT,
        "subject": "{school} is closed",
        "email_body": "Dear {name}, {school} is closed today. {children} should stay at home.",
    }
    values.update(kw)
    return Draft(**values)


def send(trust: Trust, urns: list[str] | str, **kw: Any) -> TrustMessage:
    return trust_message_send(
        trust=trust, schools=chosen_schools(trust, urns), draft=draft(**kw), actor="test"
    )


def copies(record: TrustMessage) -> dict[str, Delivery]:
    return {
        d.to: d
        for d in Delivery.objects.filter(message__trust_message=record).select_related(
            "message__school"
        )
    }


# --- one copy per number or address across the schools -----------------------------------------


def test_a_parent_of_two_schools_gets_one_text_naming_both_children(snow: Trust) -> None:
    record = send(snow, [OAK, ELM])
    sent = copies(record)
    # Mary and Dan: one text each, though each is in both schools' registers; Jill (Oak) and
    # Priya (Elm) one each; Zoë opted out at Elm.
    assert sorted(sent) == ["+447700900001", "+447700900002", "+447700900003", "+447700900005"]
    mary = sent["+447700900001"]
    # Sent, and paid for, by the first school chosen; {school} names both, in that order.
    assert mary.message.school.urn == OAK
    assert mary.message.sms_sender == "OAKPRIMARY"
    assert mary.children == "Amy and Ben"
    assert render_for(mary.message.sms_text, mary) == (
        "Oak Primary and Elm Academy is closed today: Amy and Ben should stay at home."
    )
    assert len(mary.adult_ids) == 2
    assert [s["urn"] for s in mary.schools or []] == [OAK, ELM]
    # A copy of one school says that school.
    priya = sent["+447700900005"]
    assert priya.message.school.urn == ELM and priya.schools is None
    assert render_for(priya.message.sms_text, priya) == (
        "Elm Academy is closed today: Pat should stay at home."
    )
    # The order chosen decides who sends a shared copy.
    again = send(snow, [ELM, OAK])
    assert copies(again)["+447700900001"].message.school.urn == ELM


def test_a_parent_of_two_schools_gets_one_email_with_each_schools_stop_link(
    snow: Trust, smtp: Mailbox, settings: Any
) -> None:
    settings.DEFAULT_FROM_EMAIL = "homelink <noreply@example.org>"
    record = send(snow, [OAK, ELM], mode="email")
    assert sorted(copies(record)) == ["jill@example.org", "mary@example.org", "priya@example.org"]
    assert drain("email") == 3
    [mary] = smtp.to("mary@example.org")
    assert mary["From"] == "Oak Primary <noreply@example.org>"
    assert str(mary["Subject"]) == "Oak Primary and Elm Academy is closed"
    body = Mailbox.body(mary)
    assert "Dear Mary Smith, Oak Primary and Elm Academy is closed today. Amy and Ben" in body
    # Each school's notice and a link that stops that school's messages.
    assert body.count("Stop messages from") == 2
    assert f"/privacy/{OAK}/" in body and f"/privacy/{ELM}/" in body
    assert "Stop messages from Elm Academy:" in body
    [priya] = smtp.to("priya@example.org")
    assert priya["From"] == "Elm Academy <noreply@example.org>"
    assert "Dear Priya Patel, Elm Academy is closed today. Pat should" in Mailbox.body(priya)


def test_each_school_records_its_copies_and_the_trust_ties_them_together(snow: Trust) -> None:
    record = send(snow, [OAK, ELM])
    oak, elm = (Message.objects.get(trust_message=record, school__urn=u) for u in (OAK, ELM))
    assert (oak.sms_count, elm.sms_count) == (3, 1)
    assert oak.audience_label == "Oak Learning Trust (trust-wide): Parents of all students"
    assert (record.sms_count, record.shared_count) == (4, 2)
    by_urn = {s["urn"]: s for s in record.summary}
    assert by_urn[ELM]["through_other_schools"] == 2
    assert by_urn[ELM]["left_out"]["opted_out"] == 1
    # Each school's audit trail says it was sent, from the trust.
    events = AuditEvent.objects.filter(action="message.queued")
    assert {e.school.urn: e.detail["trust"] for e in events} == {
        OAK: "Oak Learning Trust",
        ELM: "Oak Learning Trust",
    }
    assert "07700" not in str([e.detail for e in events])


# --- credits -------------------------------------------------------------------------------------


def test_each_school_pays_for_the_copies_it_sends(snow: Trust) -> None:
    send(snow, [OAK, ELM])
    assert (credits(OAK), credits(ELM)) == (100 - 3, 100 - 1)


def test_the_trusts_pool_pays_when_it_has_one_and_gets_refunds(snow: Trust) -> None:
    Trust.objects.filter(pk=snow.pk).update(sms_credits=10)
    snow.refresh_from_db()
    later = timezone.now() + dt.timedelta(days=1)
    record = send(snow, [OAK, ELM], send_at=later)
    snow.refresh_from_db()
    assert snow.sms_credits == 10 - 4
    assert (credits(OAK), credits(ELM)) == (100, 100)
    assert record.pool and record.credits_charged == 4
    # Cancelled before it went: the credits go back to the pool, not to the schools.
    assert trust_message_cancel(record=record, actor="test") == 4
    snow.refresh_from_db()
    assert snow.sms_credits == 10
    assert (credits(OAK), credits(ELM)) == (100, 100)


def test_the_pool_is_opened_filled_and_closed(snow: Trust) -> None:
    assert trust_pool_change(trust=snow, change=50).sms_credits == 50
    with pytest.raises(SendError, match="has 50 credits: cannot remove 60"):
        trust_pool_change(trust=snow, change=-60)
    assert trust_pool_change(trust=snow, change=-50).sms_credits == 0
    assert trust_pool_change(trust=snow, change=None).sms_credits is None
    assert Trust.objects.get(pk=snow.pk).sms_credits is None


def test_a_skipped_copy_is_refunded_to_whoever_paid(snow: Trust) -> None:
    Trust.objects.filter(pk=snow.pk).update(sms_credits=10)
    snow.refresh_from_db()
    send(snow, [OAK, ELM])
    Adult.objects.filter(forename="Jill").update(opted_out=True)
    drain("sms")
    assert Delivery.objects.get(to="+447700900003").status == "skipped"
    snow.refresh_from_db()
    assert snow.sms_credits == 10 - 4 + 1
    assert credits(OAK) == 100


def test_a_school_short_of_credits_stops_the_whole_send(snow: Trust) -> None:
    School.objects.filter(urn=ELM).update(sms_credits=0)
    with pytest.raises(NotEnoughTrustCredits) as refused:
        send(snow, [OAK, ELM])
    assert "Elm Academy needs 1 and has 0" in str(refused.value)
    assert refused.value.shortfalls == [("Elm Academy", 1, 0)]
    assert not TrustMessage.objects.exists()
    assert not Message.objects.exists()
    assert not Delivery.objects.exists()
    assert credits(OAK) == 100


def test_a_pool_short_of_credits_stops_the_whole_send(snow: Trust) -> None:
    Trust.objects.filter(pk=snow.pk).update(sms_credits=3)
    snow.refresh_from_db()
    with pytest.raises(
        NotEnoughTrustCredits, match="needs 4 SMS credits and the trust's pool has 3"
    ):
        send(snow, [OAK, ELM])
    assert not Message.objects.exists()
    assert Trust.objects.get(pk=snow.pk).sms_credits == 3
    assert (credits(OAK), credits(ELM)) == (100, 100)


def test_a_share_over_a_schools_large_send_limit_needs_confirming(snow: Trust) -> None:
    School.objects.filter(urn=OAK).update(large_send_threshold=2)
    with pytest.raises(LargeTrustSend, match="Oak Primary 3 \\(its limit 2\\)"):
        send(snow, [OAK, ELM])
    assert not Message.objects.exists()
    record = trust_message_send(
        trust=snow,
        schools=chosen_schools(snow, [OAK, ELM]),
        draft=draft(),
        actor="test",
        confirmed_up_to=4,
    )
    assert record.total == 4


# --- audiences -----------------------------------------------------------------------------------


def test_a_year_group_across_the_schools(snow: Trust) -> None:
    record = send(snow, "all", audience=Audience(students="years", years=("7",)))
    # Year 7: Jo (Oak), Ben and Pat (Elm), Cy (Birch); Amy is in year 6, so Mary and Dan are
    # reached for Ben only, through Elm.
    sent = copies(record)
    assert sorted(sent) == [
        "+447700900001",
        "+447700900002",
        "+447700900003",
        "+447700900005",
        "+447700900006",
    ]
    assert sent["+447700900001"].message.school.urn == ELM
    assert sent["+447700900001"].children == "Ben"
    assert sent["+447700900006"].message.sms_sender == "BIRCH"
    assert "+447700900099" not in sent  # Far School is another trust's


def test_staff_of_two_schools_get_one_copy(snow: Trust) -> None:
    record = send(snow, [ELM, OAK], mode="email", audience=Audience(who="staff"))
    sent = copies(record)
    assert sorted(sent) == ["gus@example.org", "tess@example.org"]
    assert sent["tess@example.org"].message.school.urn == ELM
    assert [s["members"] for s in sent["tess@example.org"].schools or []] == [
        [sent["tess@example.org"].member_id],
        [school(OAK).members.get(mis_id="OS1").pk],
    ]


def test_the_opted_out_are_left_out_and_counted(snow: Trust) -> None:
    preview = trust_message_preview(
        trust=snow, schools=chosen_schools(snow, [OAK, ELM]), draft=draft(mode="email")
    )
    figures = preview.as_json()
    elm = figures["schools"][1]
    assert elm["left_out"]["opted_out"] == 1
    # Elm's parents: Mary, Dan, Zoë, Priya; Dan has no email.
    assert (elm["recipients"], elm["reached"]) == (4, 2)
    assert figures["left_out"]["opted_out"] == 1
    assert figures["left_out"]["no_details"] == 2  # Dan at both schools
    record = send(snow, [OAK, ELM], mode="email")
    assert "zoe@example.org" not in copies(record)


def test_chosen_students_and_people_are_sent_school_by_school(snow: Trust) -> None:
    with pytest.raises(SendError, match="school by school"):
        send(snow, [OAK], audience=Audience(who="individuals", adult_ids=(1,)))


# --- the trust's own schools only ----------------------------------------------------------------


def test_another_trusts_school_is_refused(snow: Trust) -> None:
    with pytest.raises(SendError, match="has no school with URN 300001"):
        chosen_schools(snow, [OAK, FAR])
    with pytest.raises(SendError, match="only to the trust's own schools"):
        trust_message_send(trust=snow, schools=[school(FAR)], draft=draft(), actor="test")
    assert not Message.objects.exists()


# --- the first-contact notice, per school ----------------------------------------------------------


def test_each_school_tells_its_own_adults_first_and_the_shared_copy_waits(
    snow: Trust, settings: Any
) -> None:
    settings.HOMELINK_FIRST_CONTACT_NOTICE = True
    Trust.objects.filter(pk=snow.pk).update(sms_credits=100)
    snow.refresh_from_db()
    record = send(snow, [OAK, ELM])
    notices = Message.objects.filter(kind=Message.Kind.NOTICE)
    assert {n.school.urn for n in notices} == {OAK, ELM}
    # Mary is told by each of her schools (by email); Dan (no email) by SMS, which the pool
    # paid, as it paid for the message.
    told = Counter(
        Delivery.objects.filter(message__in=notices).values_list("message__school__urn", "channel")
    )
    assert told == {(OAK, "email"): 2, (OAK, "sms"): 1, (ELM, "email"): 2, (ELM, "sms"): 1}
    assert all(n.credits_trust_id == snow.pk and n.trust_message == record for n in notices)
    snow.refresh_from_db()
    assert snow.sms_credits == 100 - 4 - sum(n.credits_charged for n in notices)
    assert (credits(OAK), credits(ELM)) == (100, 100)
    # Mary's shared text waits for her notices (urgent: sent first) from both schools.
    mary = Delivery.objects.get(message__trust_message=record, to="+447700900001")
    claimed = claim("sms", "w1", limit=100)
    assert mary.pk not in [d.pk for d in claimed]
    Delivery.objects.filter(message__kind=Message.Kind.NOTICE, message__school__urn=OAK).update(
        status="sent"
    )
    Delivery.objects.filter(status="sending").update(
        status="queued", next_attempt_at=timezone.now()
    )
    Delivery.objects.filter(pk=mary.pk).update(next_attempt_at=timezone.now())
    assert mary.pk not in [d.pk for d in claim("sms", "w2", limit=100)]  # Elm's not yet
    Delivery.objects.filter(message__kind=Message.Kind.NOTICE).update(status="sent")
    Delivery.objects.filter(pk=mary.pk).update(status="queued", next_attempt_at=timezone.now())
    assert mary.pk in [d.pk for d in claim("sms", "w3", limit=100)]


# --- replies -----------------------------------------------------------------------------------


def test_stop_to_a_shared_text_stops_every_school_it_was_for(snow: Trust) -> None:
    record = send(snow, [OAK, ELM])
    Delivery.objects.filter(message__trust_message=record).update(status="sent")
    inbound_sms_receive(from_number="+447700900001", to_number="", text="STOP")
    assert set(SmsBlock.objects.values_list("school__urn", flat=True)) == {OAK, ELM}
    # Elm's staff see why, without a link to Oak's message.
    elm_row = school(ELM).inbound_sms.get()
    assert elm_row.in_reply_to is None
    assert elm_row.adult is not None and elm_row.adult.school.urn == ELM


# --- the parent's own page ---------------------------------------------------------------------


def test_the_parent_sees_the_shared_copy_on_their_account(snow: Trust) -> None:
    # Mary registered with Elm's letter only: the copy Oak sent for both schools is hers too.
    user = make_parent(email="mary@example.org", forename="Mary")
    Adult.objects.filter(school=school(ELM), forename="Mary").update(account=user)
    record = send(snow, [OAK, ELM], mode="email")
    Delivery.objects.filter(message__trust_message=record).update(status="sent")
    [seen] = account_messages(user=user, now=timezone.now())
    assert seen.message.school.urn == OAK
    assert seen.school == "Oak Primary and Elm Academy"
    assert seen.email_body.startswith("Dear Mary Smith, Oak Primary and Elm Academy is closed")


# --- set-based -----------------------------------------------------------------------------------


def test_queueing_takes_the_same_queries_however_many_families(snow: Trust) -> None:
    def queries(urns: list[str]) -> int:
        with CaptureQueriesContext(connection) as captured:
            send(snow, urns)
        return len(captured)

    queries([OAK])  # the first send finds the queue empty (where its lanes start is one more look)
    few = queries([OAK, ELM, BIRCH])
    run_import(
        school(BIRCH),
        [
            pupil(
                f"X{i}", f"Kid{i}", "Many", contact(1, f"P{i}", "Many", mobile=f"07700901{i:03d}")
            )
            for i in range(30)
        ],
        update_only=True,
    )
    assert queries([OAK, ELM, BIRCH]) == few
    # A school more costs its credits' charge, nothing per family: the audiences of all the
    # schools are read by the same queries.
    assert queries([OAK, ELM]) == few - 1


# --- the command line ------------------------------------------------------------------------------


def cli(*args: str) -> dict[str, Any]:
    out = StringIO()
    call_command("send", "--trust", "Oak Learning Trust", *args, "--json", stdout=out)
    result: dict[str, Any] = json.loads(out.getvalue())
    return result


def test_the_command_line_prices_a_dry_run_per_school(snow: Trust) -> None:
    figures = cli("--schools", f"{OAK},{ELM}", "--channel", "sms", "--text", TEXT, "--dry-run")
    assert figures["status"] == "dry run" and figures["trust_message"] is None
    assert [(s["urn"], s["messages"], s["credits"], s["message"]) for s in figures["schools"]] == [
        (OAK, 3, 3, None),
        (ELM, 1, 1, None),
    ]
    assert (figures["messages"], figures["shared"], figures["copies_saved"]) == (4, 2, 2)
    assert figures["credits_from"] == "schools"
    assert not Message.objects.exists()


def test_the_command_line_sends_and_says_what_it_queued(snow: Trust) -> None:
    figures = cli("--schools", "all", "--channel", "sms", "--text", TEXT, "--audience", "year:7")
    record = TrustMessage.objects.get(pk=figures["trust_message"])
    assert figures["status"] == "queued"
    assert figures["messages"] == Delivery.objects.filter(message__trust_message=record).count()
    by_urn = {s["urn"]: s for s in figures["schools"]}
    assert list(by_urn) == [BIRCH, ELM, OAK]  # all: by name
    assert Message.objects.get(pk=by_urn[ELM]["message"]).school.urn == ELM


def test_the_command_line_prints_a_table(snow: Trust) -> None:
    out = StringIO()
    call_command(
        "send", "--trust", "Oak Learning Trust", "--schools", f"{OAK},{ELM}",
        "--channel", "email", "--subject", "Closed", "--text", "Closed", "--dry-run", stdout=out,
    )  # fmt: skip
    text = out.getvalue()
    assert "Oak Primary (200001)" in text and "Elm Academy (200002)" in text
    assert "1 opted out" in text and "dry run: nothing was sent" in text


@pytest.mark.django_db(transaction=True)
def test_command_line_mistakes_exit_non_zero_and_send_nothing(
    snow: Trust, capsys: pytest.CaptureFixture[str]
) -> None:
    for args, error in [
        (["--schools", f"{OAK},{FAR}"], "has no school with URN 300001"),
        (["--schools", OAK, "--audience", "students:O1"], "school by school"),
        ([], "--trust needs --schools"),
        (["--school", OAK, "--schools", OAK], "not allowed with argument"),
    ]:
        with pytest.raises(SystemExit) as exited:
            # As the shell runs it (argument errors, CommandError → exit status), without
            # setting Django up again.
            SendCommand().run_from_argv(
                ["homelink", "send", "--trust", "Oak Learning Trust", "--text", "Hi", *args]
            )
        assert exited.value.code != 0
        assert error in capsys.readouterr().err
    assert not Message.objects.exists()


def test_an_unknown_trust_and_short_credits_are_named(snow: Trust) -> None:
    with pytest.raises(CommandError, match="no trust named Nope"):
        call_command("send", "--trust", "Nope", "--schools", "all", "--text", "x")
    School.objects.filter(urn=ELM).update(sms_credits=0)
    with pytest.raises(CommandError, match="Elm Academy needs 1 and has 0"):
        cli("--schools", f"{OAK},{ELM}", "--channel", "sms", "--text", "Hi")
    School.objects.filter(urn=OAK).update(large_send_threshold=1, sms_credits=100)
    School.objects.filter(urn=ELM).update(sms_credits=100)
    with pytest.raises(CommandError, match="confirm the large send"):
        cli("--schools", f"{OAK},{ELM}", "--channel", "sms", "--text", "Hi")
    assert (
        cli("--schools", f"{OAK},{ELM}", "--channel", "sms", "--text", "Hi", "--yes")["messages"]
        == 4
    )


# --- delivered by a real worker --------------------------------------------------------------------


@pytest.fixture
def provider(settings: Any) -> Iterator[FakeSmsGateway]:
    with FakeSmsGateway() as fake:
        settings.HOMELINK_SMS_GATEWAY = "homelink.messaging.gateways.http.HttpGateway"
        settings.HOMELINK_HTTP_SMS = fake.http_settings()
        yield fake


@pytest.mark.django_db(transaction=True)
def test_a_worker_sends_every_copy_of_a_trust_send(
    snow: Trust, provider: FakeSmsGateway, smtp: Mailbox, settings: Any
) -> None:
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    record = send(snow, "all", mode="both")
    call_command("worker", "--batch", "--no-startup-delay", "--queue-name", "*", verbosity=0)
    rows = list(Delivery.objects.filter(message__trust_message=record).select_related("message"))
    assert {d.status for d in rows} == {"sent"}
    sms = [d for d in rows if d.channel == "sms"]
    assert len(provider.accepted) == len(sms) == 5  # Mary, Dan, Jill, Priya, Cath
    taken = {a.to: a for a in provider.accepted}
    # "all" is by name: Birch, Elm, Oak; so Elm sends what Mary's two schools share.
    assert taken["+447700900001"].sender == "ELMACADEMY"
    assert taken["+447700900001"].text == (
        "Elm Academy and Oak Primary is closed today: Ben and Amy should stay at home."
    )
    assert taken["+447700900003"].sender == "OAKPRIMARY"
    assert taken["+447700900006"].sender == "BIRCH"
    assert len(smtp.messages) == len(rows) - len(sms) == 3


def test_a_shared_copy_is_in_the_other_schools_subject_access_export(snow: Trust) -> None:
    from homelink.privacy.sar import subject_data

    send(snow, [OAK, ELM])
    elm = school(ELM)
    mary_at_elm = Adult.objects.get(school=elm, forename="Mary")
    sent = subject_data(school=elm, subject=mary_at_elm)["messages"]
    # Oak sent the one text for both schools: Elm's export has it, naming Elm's child only.
    assert [(m["to"], m["body"]) for m in sent] == [
        ("+447700900001", "Elm Academy is closed today: Ben should stay at home.")
    ]


def test_a_refund_after_the_pool_closed_goes_to_the_school(snow: Trust) -> None:
    trust_pool_change(trust=snow, change=10)
    record = send(snow, [OAK, ELM], send_at=timezone.now() + dt.timedelta(days=1))
    # Closing a pool that holds credits is refused (they would be lost); emptied, it closes.
    with pytest.raises(SendError, match="still holds 6 credits"):
        trust_pool_change(trust=snow, change=None)
    trust_pool_change(trust=snow, change=-6)
    trust_pool_change(trust=snow, change=None)
    # The send the pool paid is cancelled: its credits land with each sending school.
    assert trust_message_cancel(record=record, actor="test") == 4
    assert (credits(OAK), credits(ELM)) == (100 + 3, 100 + 1)
    assert Trust.objects.get(pk=snow.pk).sms_credits is None


def test_a_school_taken_out_of_the_trust_keeps_its_message_from_the_trusts_cancel(
    snow: Trust,
) -> None:
    from homelink.trusts.services import trust_remove_school

    record = send(snow, [OAK, ELM], send_at=timezone.now() + dt.timedelta(days=1))
    trust_remove_school(trust=snow, school=school(ELM), actor="test")
    assert trust_message_cancel(record=record, actor="test") == 3
    statuses = dict(
        Message.objects.filter(trust_message=record).values_list("school__urn", "status")
    )
    assert statuses[OAK] == Message.Status.CANCELLED
    assert statuses[ELM] != Message.Status.CANCELLED
