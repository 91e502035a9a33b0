"""``homelink trust``: add, add-school, remove-school, list (and --json), invite, as an operator
types them; a refusal is a clear message and a non-zero exit, with nothing changed."""

from __future__ import annotations

import io
import json
import re
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from homelink.schools.models import School
from homelink.staff.models import Role
from homelink.staff.testing import confirm_email_directly
from homelink.trusts.management.commands import trust as command
from homelink.trusts.models import Trust, TrustInvitation, TrustMembership
from homelink.trusts.selectors import trust_of, trust_schools
from homelink.trusts.services import trust_add
from homelink.trusts.tests.factories import make_user as _make_user


def make_user(email: str) -> Any:
    """A staff account (typed Any: the project's user model, not AbstractBaseUser)."""
    return _make_user(email)


PUBLIC = "https://homelink.example.org"


@pytest.fixture(autouse=True)
def _public_url(settings: Any) -> None:
    settings.HOMELINK_PUBLIC_URL = PUBLIC


@pytest.fixture
def schools(db: None) -> list[School]:
    return [
        School.objects.create(urn="300001", name="Oak Primary", la_code="838", estab="3001"),
        School.objects.create(urn="300002", name="Ash Academy", la_code="838", estab="3002"),
        School.objects.create(urn="300003", name="Elm High", la_code="838", estab="3003"),
    ]


def trust(*args: str) -> str:
    out = io.StringIO()
    call_command("trust", *args, stdout=out)
    return out.getvalue()


def test_add_with_schools_then_add_and_remove_one(schools) -> None:
    oak, ash, elm = schools
    said = trust("add", "--name", "Forest Trust", "--schools", "300001, 300002")
    assert "Made the trust Forest Trust with 2 school(s): Oak Primary (300001), Ash Academy" in said
    forest = Trust.objects.get(name="Forest Trust")
    assert set(trust_schools(forest)) == {oak, ash}

    said = trust("add-school", "--trust", "forest trust", "--school", "300003")
    assert said.strip() == "Elm High (300003) is now in Forest Trust."
    assert trust_of(elm) == forest

    said = trust("remove-school", "--trust", "Forest Trust", "--school", "300001")
    assert "Oak Primary (300001) is no longer in Forest Trust" in said
    assert trust_of(oak) is None


def test_add_without_schools_says_how_to_add_them(db) -> None:
    said = trust("add", "--name", "Empty Trust")
    assert "Made the trust Empty Trust." in said
    assert 'homelink trust add-school --trust "Empty Trust" --school URN' in said


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("add", "--name", "New", "--schools", "300001,999999"), "no school with URN 999999"),
        (("add", "--name", "New", "--schools", "300002,300002"), "URN 300002 is given twice"),
        (("add", "--name", "Forest Trust"), "already a trust called Forest Trust"),
        (("add", "--name", "New", "--schools", "300001"), "already in the trust Forest Trust"),
        (("add-school", "--trust", "Nope", "--school", "300002"), "no trust called 'Nope'"),
        (("add-school", "--trust", "Forest Trust", "--school", "1"), "no school with URN 1"),
        (("remove-school", "--trust", "Forest Trust", "--school", "300002"), "is not in Forest"),
    ],
)
def test_refusals_say_why_and_change_nothing(schools, args: tuple[str, ...], says: str) -> None:
    trust("add", "--name", "Forest Trust", "--schools", "300001")
    with pytest.raises(CommandError, match=re.escape(says)):
        trust(*args)
    assert list(Trust.objects.values_list("name", flat=True)) == ["Forest Trust"]
    assert [s.urn for s in trust_schools(Trust.objects.get())] == ["300001"]


def test_list_shows_each_trust_its_schools_and_staff_counts(schools) -> None:
    oak, ash, _ = schools
    trust("add", "--name", "Forest Trust", "--schools", "300001,300002")
    trust("add", "--name", "Empty Trust")
    forest = Trust.objects.get(name="Forest Trust")
    forest.sms_credits = 5000
    forest.save(update_fields=["sms_credits"])

    for email, role in (("a@f.example", Role.ADMINISTRATOR), ("v@f.example", Role.VIEWER)):
        user = make_user(email)
        confirm_email_directly(user)
        TrustMembership.objects.create(user=user, trust=forest, role=role)
    trust("invite", "--trust", "Forest Trust", "--email", "new@f.example", "--role", "sender")

    text = trust("list")
    assert text.splitlines() == [
        "Empty Trust",
        "  staff        0 administrators, 0 senders, 0 viewers",
        "  invitations  0 waiting",
        "  SMS credits  each school's own",
        "  schools      none",
        "Forest Trust",
        "  staff        1 administrator, 0 senders, 1 viewer",
        "  invitations  1 waiting",
        "  SMS credits  5000 in the trust's pool",
        "  schools      2",
        "    300002  Ash Academy",
        "    300001  Oak Primary",
    ]
    data = json.loads(trust("list", "--json"))
    assert data == [
        {
            "name": "Empty Trust",
            "schools": [],
            "staff": {"administrator": 0, "sender": 0, "viewer": 0},
            "invitations_waiting": 0,
            "sms_credits": None,
        },
        {
            "name": "Forest Trust",
            "schools": [
                {"urn": ash.urn, "name": "Ash Academy"},
                {"urn": oak.urn, "name": "Oak Primary"},
            ],
            "staff": {"administrator": 1, "sender": 0, "viewer": 1},
            "invitations_waiting": 1,
            "sms_credits": 5000,
        },
    ]


def test_list_with_no_trusts(db) -> None:
    assert "No trusts yet" in trust("list")
    assert json.loads(trust("list", "--json")) == []


def test_invite_prints_the_link_as_staff_add_does_and_emails_it(
    schools, mailoutbox, django_capture_on_commit_callbacks
) -> None:
    trust("add", "--name", "Forest Trust", "--schools", "300001,300002")
    with django_capture_on_commit_callbacks(execute=True):
        said = trust(
            "invite",
            "--trust",
            "Forest Trust",
            "--email",
            " Head@Forest.Example ",
            "--role",
            "administrator",
        )
    lines = said.splitlines()
    assert lines[0] == (
        "Invited head@forest.example to be trust administrator of Forest Trust: they get the "
        "role when they accept."
    )
    assert lines[1].startswith("The invitation is emailed to them. Its link, which works once")
    link = lines[2].strip()
    assert re.fullmatch(re.escape(PUBLIC) + r"/console/trust/invitation/[A-Za-z0-9_-]{43}/", link)
    assert "give the link to the person yourself, and only to them" in lines[3]
    invitation = TrustInvitation.objects.get()
    assert (invitation.email, invitation.role) == ("head@forest.example", "administrator")
    # Only the hash is kept; the emailed link is the printed one.
    assert link.split("/")[-2] not in invitation.token_hash
    [email] = mailoutbox
    assert email.to == ["head@forest.example"]
    assert link in email.body
    assert "Forest Trust" in email.subject
    assert "Ash Academy, Oak Primary" in email.body


def test_invite_refuses_a_bad_address_or_role(schools) -> None:
    trust("add", "--name", "Forest Trust")
    with pytest.raises(CommandError, match="give the person's email address"):
        trust("invite", "--trust", "Forest Trust", "--email", "not an address", "--role", "viewer")
    with pytest.raises(CommandError, match="invalid choice: 'owner'"):
        trust("invite", "--trust", "Forest Trust", "--email", "a@b.example", "--role", "owner")
    assert not TrustInvitation.objects.exists()


def test_the_subcommands_are_listed_and_import_is_among_them(db) -> None:
    assert command.SUBCOMMANDS == (
        "add",
        "add-school",
        "remove-school",
        "list",
        "invite",
        "credits",
        "import",
    )
    assert command.module_path("import") == "homelink.trusts.cli.importing"
    assert command.module_path("add-school") == "homelink.trusts.cli.add_school"
    assert command.load("list") is not None


def test_a_subcommand_whose_module_is_absent_says_so_and_the_rest_work(db, monkeypatch) -> None:
    """Modules are imported by name: one not in the install (``import`` before the trust-wide
    import lands) is listed, refused in words when run, and stops nothing else."""
    monkeypatch.setattr(command, "MODULES", {**command.MODULES, "import": "not_written_yet"})
    with pytest.raises(CommandError, match="homelink trust import is not available"):
        trust("import")
    assert "No trusts yet" in trust("list")


def test_the_trusts_pool_is_opened_filled_shown_and_closed(db: None) -> None:
    trust = trust_add(name="Pool Trust", actor="test")

    def credits(*args: str) -> str:
        out = io.StringIO()
        call_command("trust", "credits", "--trust", "Pool Trust", *args, stdout=out)
        return out.getvalue().strip()

    assert credits() == "Pool Trust has no pool: each school's own credits pay for its texts."
    assert credits("+500") == "Pool Trust's pool: 500 SMS credits."
    assert credits("-200") == "Pool Trust's pool: 300 SMS credits."
    with pytest.raises(CommandError, match="cannot remove 400"):
        credits("-400")
    with pytest.raises(CommandError, match="give \\+N, -N or off"):
        credits("lots")
    trust.refresh_from_db()
    assert trust.sms_credits == 300
    # Closing a pool that still holds credits would lose them.
    with pytest.raises(CommandError, match="still holds 300 credits"):
        credits("off")
    credits("-300")
    assert credits("off").endswith("has no pool: each school's own credits pay for its texts.")
