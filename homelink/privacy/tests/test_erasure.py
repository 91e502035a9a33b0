"""Erasure without resurrection (issue 13 point 5): the service, ``homelink privacy erase``, the
console's pages, and re-imports of the same MIS file (in-tree SIMS-shaped fixture here; the real
SIMS sample in test_erasure_corpus.py)."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from homelink.accounts.models import Parent
from homelink.audit.models import AuditEvent
from homelink.messaging.audience import Audience
from homelink.messaging.models import Delivery, InboundSms, Message, SmsBlock
from homelink.mis.models import ImportRun
from homelink.mis.tests.test_cli import export, homelink
from homelink.mis.tombstones import ERASED
from homelink.privacy.erasure import (
    ErasureRefused,
    adult_erase,
    erasure_preview,
    erasure_records,
    tombstone_lift,
)
from homelink.privacy.models import NoticeReceipt, PrivacyNotice, Tombstone
from homelink.register.models import Adult, Link, Member, PendingLink, Source
from homelink.register.services import adult_create, link_add
from homelink.schools.models import School
from homelink.staff.models import Role, StaffMembership
from homelink.staff.testing import confirm_email_directly

pytestmark = pytest.mark.django_db

DATA = Path(__file__).resolve().parents[2] / "mis" / "tests" / "data"
#: Two pupils (Alfie Marchbank: Kerry 1, Gareth 2, Dennis 3, Brenda 4; Poppy Fairweather:
#: Hannah 1, Stuart 2, Irene 3), SIMS-shaped, moving into the `school` fixture.
TRANSFER = DATA / "ctf_transfer_contacts_out_of_order.xml"
KERRY_EMAIL = "kerry19marchbank@example.org"
KERRY_MOBILE = "+447700900220"


def _import(school: School, path: Path, *extra: str) -> dict[str, Any]:
    return json.loads(homelink("import", "--school", school.urn, str(path), "--json", *extra))


def _adult_ids(school: School) -> dict[str, int]:
    return {
        link["forename"]: link["adult_id"]
        for member in export(school.urn)["members"]
        for link in member["links"]
    }


def _message_to(adult: Adult, *, status: str = Delivery.Status.DELIVERED) -> Message:
    now = timezone.now()
    message = Message.objects.create(
        school=adult.school,
        mode=Message.Mode.BOTH,
        audience=Audience().to_json(),
        subject="Trip",
        email_body="Dear {name}",
        sms_text="Trip on Friday",
        send_at=now,
        email_count=1,
        sms_count=1,
    )
    for channel, to in (("email", adult.email), ("sms", adult.mobile)):
        Delivery.objects.create(
            message=message,
            school=adult.school,
            channel=channel,
            to=to,
            adult=adult,
            adult_ids=[adult.pk],
            name=f"{adult.forename} {adult.surname}",
            children="Alfie",
            parts=1 if channel == "sms" else 0,
            status=status,
            reason=f"550 {to} mailbox full" if channel == "email" else "",
            next_attempt_at=now,
        )
    return message


@pytest.fixture
def imported(school: School) -> School:
    school.import_lower_priority = True
    school.save()
    summary = _import(school, TRANSFER)
    assert summary["status"] == "applied"
    return school


def _kerry(school: School) -> Adult:
    return Adult.objects.get(school=school, forename="Kerry")


# --- the service ----------------------------------------------------------------------------------


def test_erasure_removes_the_person_and_keeps_the_message_counts(imported: School) -> None:
    kerry = _kerry(imported)
    assert (kerry.email, kerry.mobile) == (KERRY_EMAIL, KERRY_MOBILE)
    message = _message_to(kerry)
    reply = InboundSms.objects.create(
        school=imported, from_number=KERRY_MOBILE, text="Yes he can go", in_reply_to=message
    )
    SmsBlock.objects.create(school=imported, number=KERRY_MOBILE, keyword="STOP")
    notice = PrivacyNotice.objects.create(school=imported, version=1, text="Our notice")
    NoticeReceipt.objects.create(school=imported, notice=notice, adult=kerry, how="email")
    alfie = Member.objects.get(school=imported, mis_id="K838329919001")
    PendingLink.objects.create(
        school=imported,
        student=Member.objects.get(mis_id="A838329919002"),
        adult=kerry,
    )
    links_before = Link.objects.filter(student=alfie).count()

    preview = erasure_preview(adult=kerry)
    assert (preview.links, preview.pending_links, preview.receipts) == (1, 1, 1)
    assert (preview.copies, preview.replies) == (2, 1)
    assert preview.unreachable == []  # Gareth, Dennis and Brenda still reach Alfie
    assert not preview.account.has_account

    result = adult_erase(adult=kerry, actor="cli")

    assert not Adult.objects.filter(pk=kerry.pk).exists()
    assert Link.objects.filter(student=alfie).count() == links_before - 1
    assert not PendingLink.objects.filter(adult_id=kerry.pk).exists()
    assert not NoticeReceipt.objects.exists()
    # The message still counts its two copies and their statuses; the person is gone from them.
    message.refresh_from_db()
    assert (message.email_count, message.sms_count) == (1, 1)
    copies = list(Delivery.objects.filter(message=message).values("to", "name", "status", "reason"))
    assert [c["status"] for c in copies] == ["delivered", "delivered"]
    assert all(c["to"] == "" and c["name"] == "" and c["reason"] == "" for c in copies)
    reply.refresh_from_db()
    assert (reply.from_number, reply.text) == ("", "")
    # The number asked never to be texted again: that request stands.
    assert SmsBlock.objects.filter(number=KERRY_MOBILE).exists()
    # A tombstone for each way the MIS may name her, none readable.
    stones = Tombstone.objects.filter(school=imported)
    assert sorted(stones.values_list("basis", flat=True)) == [
        "name_contact",
        "name_contact",
        "name_student",
        "name_student",
    ]
    assert len({s.erasure for s in stones}) == 1 and result.tombstones == 4
    dumped = json.dumps(list(stones.values("key", "basis", "erasure")))
    for value in ("kerry", "Marchbank", "900220", "K838329919001"):
        assert value.lower() not in dumped.lower()
    # Audited with counts, never values.
    event = AuditEvent.objects.get(school=imported, action="adult.erased")
    assert event.object_id == str(kerry.pk)
    assert event.detail["links"] == 1
    assert event.detail["message_copies_blanked"] == 2
    assert event.detail["tombstones"] == 4
    assert "kerry" not in json.dumps(event.detail).lower()
    assert "900220" not in json.dumps(event.detail)


def test_the_import_history_no_longer_quotes_the_erased_person(school: School) -> None:
    # Lower priorities off: the preview lists Gareth, Dennis and Brenda as skipped, by name.
    _import(school, TRANSFER)
    runs = ImportRun.objects.filter(school=school)
    assert "Brenda Pollard" in json.dumps([r.summary for r in runs])
    brenda = adult_create(
        school=school,
        forename="Brenda",
        surname="Pollard",
        mobile="07700900215",
        actor="test",
    )
    adult_erase(adult=brenda, actor="cli")
    text = json.dumps([(r.summary, r.data_issues) for r in runs.all()])
    assert "Brenda Pollard" not in text
    assert "Gareth Marchbank" in text  # nobody else's lines are touched
    assert AuditEvent.objects.get(action="adult.erased").detail["import_runs_redacted"] == 1


def test_a_queued_copy_for_them_alone_is_skipped_and_its_credits_refunded(
    imported: School,
) -> None:
    kerry = _kerry(imported)
    message = _message_to(kerry, status=Delivery.Status.QUEUED)
    Message.objects.filter(pk=message.pk).update(credits_charged=1)
    credits = School.objects.get(pk=imported.pk).sms_credits
    adult_erase(adult=kerry, actor="cli")
    statuses = set(Delivery.objects.filter(message=message).values_list("status", "to"))
    assert statuses == {("skipped", "")}
    message.refresh_from_db()
    assert message.credits_refunded == 1
    assert School.objects.get(pk=imported.pk).sms_credits == credits + 1


def test_erasing_the_only_reachable_adult_is_refused_without_confirmation(school: School) -> None:
    # Lower priorities off: Kerry is Alfie's only linked adult.
    _import(school, TRANSFER)
    kerry = _kerry(school)
    preview = erasure_preview(adult=kerry)
    assert [s.forename for s in preview.unreachable] == ["Alfie"]
    with pytest.raises(ErasureRefused, match="1 student"):
        adult_erase(adult=kerry, actor="cli")
    assert Adult.objects.filter(pk=kerry.pk).exists()
    assert not Tombstone.objects.exists()
    assert not AuditEvent.objects.filter(action="adult.erased").exists()
    adult_erase(adult=kerry, actor="cli", confirm_unreachable=True)
    assert not Adult.objects.filter(pk=kerry.pk).exists()
    event = AuditEvent.objects.get(action="adult.erased")
    assert event.detail["students_left_unreachable"] == 1


def test_an_adult_who_cannot_receive_anything_leaves_nobody_less_reachable(school: School) -> None:
    _import(school, TRANSFER)
    kerry = _kerry(school)
    kerry.opted_out = True
    kerry.save()
    assert erasure_preview(adult=kerry).unreachable == []


# --- the parent's account ---------------------------------------------------------------------------


def _registered(adult: Adult, email: str) -> Any:
    user = get_user_model().objects.create_user(username=email, email=email, password="x")
    Parent.objects.create(user=user, email_verified_at=timezone.now())
    Adult.objects.filter(pk=adult.pk).update(account=user, registered=True)
    adult.refresh_from_db()
    return user


def test_the_account_goes_when_it_was_only_this_parent_here(imported: School) -> None:
    kerry = _kerry(imported)
    user = _registered(kerry, "kerry@example.org")
    assert erasure_preview(adult=kerry).account.delete
    result = adult_erase(adult=kerry, actor="cli")
    assert result.account_deleted
    assert not get_user_model().objects.filter(pk=user.pk).exists()
    assert not Parent.objects.filter(user_id=user.pk).exists()


def test_the_account_stays_when_it_is_a_parent_at_another_school(imported: School) -> None:
    other = School.objects.create(urn="100009", name="Other School")
    kerry = _kerry(imported)
    user = _registered(kerry, "kerry@example.org")
    elsewhere = adult_create(school=other, forename="Kerry", surname="Marchbank", actor="test")
    Adult.objects.filter(pk=elsewhere.pk).update(account=user, registered=True)
    fate = erasure_preview(adult=kerry).account
    assert fate.has_account and not fate.delete and "another school" in fate.why
    adult_erase(adult=kerry, actor="cli")
    assert get_user_model().objects.filter(pk=user.pk).exists()
    assert Adult.objects.filter(pk=elsewhere.pk, account=user).exists()
    # The other school's controller keeps its own record, untouched.
    assert not Tombstone.objects.filter(school=other).exists()


def test_the_account_stays_when_it_is_a_member_of_staff(imported: School) -> None:
    kerry = _kerry(imported)
    user = _registered(kerry, "kerry@example.org")
    confirm_email_directly(user)
    StaffMembership.objects.create(user=user, school=imported, role=Role.VIEWER)
    assert not erasure_preview(adult=kerry).account.delete
    adult_erase(adult=kerry, actor="cli")
    assert get_user_model().objects.filter(pk=user.pk).exists()


# --- no resurrection ---------------------------------------------------------------------------------


def test_a_reimport_of_the_same_file_does_not_bring_them_back(imported: School) -> None:
    ids = _adult_ids(imported)
    out = homelink(
        "privacy", "erase", "--school", imported.urn, "--adult", str(ids["Kerry"]), "--yes"
    )
    assert "Erased adult" in out
    assert "Kerry" not in _adult_ids(imported)

    preview = _import(imported, TRANSFER, "--dry-run")
    skipped = [d for d in preview["details"]["skip"] if d.get("reason") == ERASED]
    assert len(skipped) == 1
    assert skipped[0]["who"].startswith("a contact of Alfie Marchbank (K838329919001)")
    assert "Kerry" not in json.dumps(preview)  # the preview kept with the history names nobody
    assert preview["reasons"][f"adult skip: {ERASED}"] == 1

    applied = _import(imported, TRANSFER)
    assert applied["adults"]["created"] == 0
    assert applied["links"]["created"] == 0
    assert not Adult.objects.filter(school=imported, forename="Kerry").exists()
    assert "Kerry" not in _adult_ids(imported)  # homelink export no longer lists her


def test_a_new_email_or_mobile_in_the_mis_does_not_bring_them_back(
    imported: School, tmp_path: Path
) -> None:
    adult_erase(adult=_kerry(imported), actor="cli")
    changed = tmp_path / "changed.xml"
    text = TRANSFER.read_text(encoding="utf-8")
    text = text.replace("kerry19Marchbank@example.org", "kerry.new@example.org")
    text = text.replace("07700900220", "07700900299")
    changed.write_text(text, encoding="utf-8")
    summary = _import(imported, changed)
    assert summary["reasons"][f"adult skip: {ERASED}"] == 1
    assert not Adult.objects.filter(school=imported, forename="Kerry").exists()


def test_the_same_person_under_a_new_sibling_is_skipped_by_their_email(
    imported: School, tmp_path: Path
) -> None:
    adult_erase(adult=_kerry(imported), actor="cli")
    sibling = tmp_path / "sibling.xml"
    text = TRANSFER.read_text(encoding="utf-8").replace("K838329919001", "Z838329919009")
    sibling.write_text(text, encoding="utf-8")
    summary = _import(imported, sibling)
    assert summary["reasons"][f"adult skip: {ERASED}"] == 1
    assert not Adult.objects.filter(school=imported, forename="Kerry").exists()


def test_lifting_the_tombstone_lets_the_next_import_bring_them_back(imported: School) -> None:
    adult_erase(adult=_kerry(imported), actor="cli")
    [record] = erasure_records(imported)
    assert record.lifted_at is None
    assert tombstone_lift(school=imported, erasure=record.erasure, actor="cli") == 3
    assert AuditEvent.objects.filter(action="tombstone.lifted").count() == 1
    with pytest.raises(Exception, match="no such erasure"):
        tombstone_lift(school=imported, erasure=record.erasure, actor="cli")
    summary = _import(imported, TRANSFER)
    assert summary["adults"]["created"] == 1
    assert Adult.objects.filter(school=imported, forename="Kerry").exists()


def test_tombstones_are_the_schools_own(imported: School) -> None:
    other = School.objects.create(urn="100009", name="Other School", la_code="838", estab="4512")
    adult_erase(adult=_kerry(imported), actor="cli")
    summary = json.loads(
        homelink("import", "--school", other.urn, str(TRANSFER), "--json", "--force")
    )
    assert ERASED not in json.dumps(summary)
    [record] = erasure_records(imported)
    with pytest.raises(Exception, match="no such erasure"):
        tombstone_lift(school=other, erasure=record.erasure, actor="cli")


# --- the command ---------------------------------------------------------------------------------


def test_the_command_without_yes_refuses_off_a_terminal(imported: School) -> None:
    kerry = _kerry(imported)
    with pytest.raises(CommandError, match="not a terminal"):
        homelink("privacy", "erase", "--school", imported.urn, "--adult", str(kerry.pk))
    assert Adult.objects.filter(pk=kerry.pk).exists()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_command_asks_on_a_terminal(imported: School, monkeypatch: Any) -> None:
    kerry = _kerry(imported)
    monkeypatch.setattr(sys, "stdin", _Terminal("no\n"))
    with pytest.raises(CommandError, match="nothing erased"):
        homelink("privacy", "erase", "--school", imported.urn, "--adult", str(kerry.pk))
    assert Adult.objects.filter(pk=kerry.pk).exists()
    monkeypatch.setattr(sys, "stdin", _Terminal("erase\n"))
    out = homelink("privacy", "erase", "--school", imported.urn, "--adult", str(kerry.pk))
    assert "links to students: 1" in out
    assert "addresses on message copies" in out
    assert "Erased adult" in out
    assert not Adult.objects.filter(pk=kerry.pk).exists()


def test_the_command_prints_the_students_left_unreachable_and_needs_yes(
    school: School, monkeypatch: Any
) -> None:
    _import(school, TRANSFER)
    kerry = _kerry(school)
    monkeypatch.setattr(sys, "stdin", _Terminal("erase\n"))
    out = io.StringIO()
    from django.core.management import call_command

    with pytest.raises(CommandError, match="--yes"):
        call_command(
            "privacy", "erase", "--school", school.urn, "--adult", str(kerry.pk), stdout=out
        )
    assert "Alfie Marchbank (K838329919001)" in out.getvalue()
    assert Adult.objects.filter(pk=kerry.pk).exists()
    homelink("privacy", "erase", "--school", school.urn, "--adult", str(kerry.pk), "--yes")
    assert not Adult.objects.filter(pk=kerry.pk).exists()


def test_the_command_refuses_another_schools_adult(imported: School) -> None:
    other = School.objects.create(urn="100009", name="Other School")
    kerry = _kerry(imported)
    with pytest.raises(CommandError, match="no adult"):
        homelink("privacy", "erase", "--school", other.urn, "--adult", str(kerry.pk), "--yes")
    assert Adult.objects.filter(pk=kerry.pk).exists()


# --- the console --------------------------------------------------------------------------------------


def _staff(school: School, email: str, role: str) -> Client:
    user = get_user_model().objects.create_user(username=email, email=email, password="x")
    confirm_email_directly(user)
    StaffMembership.objects.create(user=user, school=school, role=role)
    client = Client()
    client.force_login(user)
    return client


def test_the_console_erases_after_naming_the_students_left_unreachable(school: School) -> None:
    _import(school, TRANSFER)
    kerry = _kerry(school)
    office = _staff(school, "office@example.org", Role.ADMINISTRATOR)
    alfie = Member.objects.get(mis_id="K838329919001")
    page = office.get(reverse("console:member", kwargs={"urn": school.urn, "member_id": alfie.pk}))
    url = reverse("console:adult_erase", kwargs={"urn": school.urn, "adult_id": kerry.pk})
    assert url in page.content.decode()

    shown = office.get(url)
    assert shown.status_code == 200
    text = shown.content.decode()
    assert "Students left with no reachable adult" in text
    assert "Alfie Marchbank" in text

    refused = office.post(url, {"asked": "on"})
    assert refused.status_code == 400
    assert "Tick the box to erase them anyway" in refused.content.decode()
    assert Adult.objects.filter(pk=kerry.pk).exists()

    done = office.post(url, {"asked": "on", "unreachable_ok": "on"})
    assert done.status_code == 302
    assert done["Location"] == reverse("console:erasures", kwargs={"urn": school.urn})
    assert not Adult.objects.filter(pk=kerry.pk).exists()
    event = AuditEvent.objects.get(action="adult.erased")
    assert event.actor_label.startswith("user:")

    listed = office.get(done["Location"]).content.decode()
    assert "name and student" in listed and "Lift" in listed
    [record] = erasure_records(school)
    lift = reverse("console:erasure_lift", kwargs={"urn": school.urn})
    unconfirmed = office.post(lift, {"erasure": record.erasure})
    assert unconfirmed.status_code == 400  # not confirmed: nothing lifted
    assert not Tombstone.objects.filter(lifted_at__isnull=False).exists()
    office.post(lift, {"erasure": record.erasure, "confirm": "on"})
    assert Tombstone.objects.filter(lifted_at__isnull=True).count() == 0
    assert "lifted" in office.get(done["Location"]).content.decode()
    bad = office.post(lift, {"erasure": "nonsense", "confirm": "on"})
    assert bad.status_code == 400 and "No such erasure" in bad.content.decode()


def test_only_administrators_erase(school: School) -> None:
    _import(school, TRANSFER)
    kerry = _kerry(school)
    url = reverse("console:adult_erase", kwargs={"urn": school.urn, "adult_id": kerry.pk})
    for role in (Role.VIEWER, Role.SENDER):
        client = _staff(school, f"{role}@example.org", role)
        assert client.get(url).status_code == 403
        assert client.post(url, {"asked": "on", "unreachable_ok": "on"}).status_code == 403
        erasures = reverse("console:erasures", kwargs={"urn": school.urn})
        assert client.get(erasures).status_code == 403
    assert Adult.objects.filter(pk=kerry.pk).exists()


def test_a_manual_adult_without_details_gets_no_tombstone_and_says_so(school: School) -> None:
    alone = adult_create(school=school, forename="", surname="Nameless", actor="test")
    student = Member.objects.create(school=school, kind="student", mis_id="X1", surname="S")
    link_add(student=student, adult=alone, source=Source.MANUAL, actor="test")
    # A surname alone still names them under the student.
    assert erasure_preview(adult=alone).bases == ["name and student"]
    Link.objects.filter(adult=alone).delete()
    assert erasure_preview(adult=alone).bases == []
    office = _staff(school, "office@example.org", Role.ADMINISTRATOR)
    url = reverse("console:adult_erase", kwargs={"urn": school.urn, "adult_id": alone.pk})
    assert "Nothing identifies them for a tombstone" in office.get(url).content.decode()
