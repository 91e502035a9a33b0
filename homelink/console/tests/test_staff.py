"""Staff roles: the services and ``homelink staff`` (invitations themselves:
test_invitations.py)."""

from __future__ import annotations

import io
import re

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from homelink.audit.models import AuditEvent
from homelink.console.tests.conftest import make_user, member_of
from homelink.schools.models import School
from homelink.staff.models import Role, StaffInvitation, StaffMembership
from homelink.staff.services import staff_remove, staff_set_role

GOOD = "plum-orchard-velvet-42"


def staff(school: School, *args: str, stdin: str = "") -> str:
    out = io.StringIO()
    call_command(
        "staff", *args, "--school", school.urn, stdin=io.StringIO(stdin), stdout=out, stderr=out
    )
    return out.getvalue()


def test_roles_rank(school):
    admin = member_of(make_user("a@x.example"), school, Role.ADMINISTRATOR)
    sender = member_of(make_user("s@x.example"), school, Role.SENDER)
    viewer = member_of(make_user("v@x.example"), school, Role.VIEWER)
    assert admin.can(Role.SENDER) and admin.can(Role.VIEWER)
    assert sender.can(Role.VIEWER) and not sender.can(Role.ADMINISTRATOR)
    assert not viewer.can(Role.SENDER)


def test_a_school_keeps_an_administrator(school):
    only = member_of(make_user("a@x.example"), school, Role.ADMINISTRATOR)
    with pytest.raises(ValidationError, match="only administrator"):
        staff_set_role(membership=only, role="viewer", actor="cli")
    with pytest.raises(ValidationError, match="only administrator"):
        staff_remove(membership=only, actor="cli")
    second = member_of(make_user("b@x.example"), school, Role.ADMINISTRATOR)
    staff_set_role(membership=only, role="viewer", actor="cli")
    only.refresh_from_db()
    assert only.role == Role.VIEWER
    staff_remove(membership=only, actor="cli")
    assert list(StaffMembership.objects.all()) == [second]
    assert list(AuditEvent.objects.order_by("pk").values_list("action", "detail__to")) == [
        ("staff.role_changed", "viewer"),
        ("staff.removed", None),
    ]


def test_the_command_invites_and_prints_the_link(school, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        out = staff(school, "add", "--email", " Office@School.Example ", "--role", "administrator")
    assert "Invited office@school.example to be administrator" in out
    assert "they get the role when they accept" in out
    # No account and no role yet: the person makes their account when they accept.
    assert not get_user_model().objects.exists()
    assert not StaffMembership.objects.exists()
    [sent] = mail.outbox
    assert sent.to == ["office@school.example"]
    link = re.search(r"(https?://\S+/staff/invitation/\S+/)", sent.body)
    assert link is not None and link.group(1) in out
    assert "only to them" in out
    event = AuditEvent.objects.get(action="staff.invited")
    assert event.actor_label == "cli" and event.detail == {
        "role": "administrator",
        "refreshed": False,
    }


@pytest.mark.parametrize("stdin", ["", "\n", "  \n"])
def test_the_command_reads_nothing_when_nothing_is_given(school, stdin):
    staff(school, "add", "--email", "a@school.example", "--role", "viewer", stdin=stdin)
    assert StaffInvitation.objects.get().email == "a@school.example"


def test_the_command_refuses_a_password_instead_of_ignoring_it(school):
    make_user("office@school.example")
    with pytest.raises(CommandError, match="takes no password") as refused:
        staff(
            school,
            "add",
            "--email",
            "office@school.example",
            "--role",
            "viewer",
            stdin=GOOD + "\n",
        )
    assert "chooses their own when they accept" in str(refused.value)
    assert GOOD not in str(refused.value)
    assert not StaffInvitation.objects.exists()
    assert not StaffMembership.objects.exists()
    assert get_user_model().objects.get().check_password("correct horse battery staple")


def test_the_command_gives_no_role_to_an_existing_account_until_it_accepts(school):
    make_user("office@school.example")
    staff(school, "add", "--email", "office@school.example", "--role", "viewer")
    assert not StaffMembership.objects.exists()
    assert StaffInvitation.objects.get().accepted_at is None


def test_the_command_says_who_is_already_staff(school):
    member_of(make_user("a@school.example"), school, Role.VIEWER)
    with pytest.raises(CommandError, match="already on the staff here"):
        staff(school, "add", "--email", "A@school.example", "--role", "administrator")


def test_the_command_names_the_problem(school):
    with pytest.raises(CommandError, match="no school with URN 999999"):
        call_command(
            "staff", "add", "--school", "999999", "--email", "a@b.example", "--role", "viewer"
        )
    with pytest.raises(CommandError, match="invalid choice"):
        staff(school, "add", "--email", "a@b.example", "--role", "owner")
    with pytest.raises(CommandError, match="not on this school's staff"):
        staff(school, "remove", "--email", "nobody@b.example")
    with pytest.raises(CommandError, match="give the person's email address"):
        staff(school, "add", "--email", "not-an-address", "--role", "viewer")
    with pytest.raises(
        CommandError, match=re.escape("no invitation to nobody@b.example is waiting")
    ):
        staff(school, "revoke", "--email", "nobody@b.example")


def test_the_command_lists_sends_again_and_withdraws_invitations(school):
    first = staff(school, "add", "--email", "a@school.example", "--role", "sender")
    staff(school, "add", "--email", "b@school.example", "--role", "viewer")
    listing = staff(school, "invitations")
    assert re.search(r"^a@school\.example  sender  until \d{4}-\d\d-\d\d \d\d:\d\d$", listing, re.M)
    assert "b@school.example  viewer" in listing
    again = staff(school, "resend", "--email", "a@school.example")
    old_link = re.search(r"(https?://\S+/staff/invitation/\S+/)", first)
    new_link = re.search(r"(https?://\S+/staff/invitation/\S+/)", again)
    assert old_link and new_link and old_link.group(1) != new_link.group(1)
    staff(school, "revoke", "--email", "b@school.example")
    assert "b@school.example" not in staff(school, "invitations")
    StaffInvitation.objects.filter(email="a@school.example").update(expires_at=timezone.now())
    assert "a@school.example  sender  expired" in staff(school, "invitations")


def test_the_command_changes_roles_lists_and_removes(school):
    member_of(make_user("a@school.example"), school, Role.ADMINISTRATOR)
    member_of(make_user("b@school.example"), school, Role.VIEWER)
    staff(school, "set-role", "--email", "b@school.example", "--role", "sender")
    listing = staff(school, "list")
    assert "a@school.example  administrator" in listing
    assert "b@school.example  sender" in listing
    with pytest.raises(CommandError, match="only administrator"):
        staff(school, "remove", "--email", "a@school.example")
    staff(school, "remove", "--email", "b@school.example")
    assert StaffMembership.objects.count() == 1


def test_the_console_script_exits_with_the_message(school, tmp_path):
    """The real ``homelink staff`` exits non-zero with the message on errors."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from django.conf import settings

    script = Path(sys.executable).parent / "homelink"
    env = {**os.environ, "DATABASE_URL": _db_url(settings.DATABASES["default"])}
    done = subprocess.run(
        [
            script,
            "staff",
            "add",
            "--school",
            "000000",
            "--email",
            "a@b.example",
            "--role",
            "viewer",
        ],
        input="",
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "no school with URN 000000" in done.stderr


def _db_url(db: dict) -> str:
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or ""
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{user}{password}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"
