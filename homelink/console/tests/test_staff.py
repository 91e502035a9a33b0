"""Staff accounts and roles: the services and ``homelink staff``."""

from __future__ import annotations

import io
import json

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError

from homelink.audit.models import AuditEvent
from homelink.console.models import Role, StaffMembership
from homelink.console.services import staff_add, staff_remove, staff_set_role
from homelink.console.tests.conftest import make_user, member_of
from homelink.schools.models import School

GOOD = "plum-orchard-velvet-42"


def staff(school: School, *args: str, stdin: str = "") -> str:
    out = io.StringIO()
    call_command(
        "staff", *args, "--school", school.urn, stdin=io.StringIO(stdin), stdout=out, stderr=out
    )
    return out.getvalue()


def test_adding_a_new_person_makes_their_account_and_membership(school):
    membership = staff_add(
        school=school,
        email=" Office@School.Example ",
        role="administrator",
        password=GOOD,
        actor="cli",
    )
    user = membership.user
    assert user.email == "office@school.example"
    assert user.check_password(GOOD)
    assert membership.role == Role.ADMINISTRATOR
    event = AuditEvent.objects.get(action="staff.added")
    assert event.detail == {"role": "administrator", "user_id": user.pk, "new_account": True}
    assert "office@" not in json.dumps(event.detail)


def test_an_existing_account_keeps_its_password_and_gains_a_school(school, school_b):
    user = make_user("head@trust.example")
    staff_add(school=school, email="head@trust.example", role="viewer", actor="cli")
    staff_add(
        school=school_b,
        email="HEAD@trust.example",
        role="sender",
        password="new-pass-123!",
        actor="cli",
    )
    user.refresh_from_db()
    assert user.check_password("correct horse battery staple")
    assert dict(StaffMembership.objects.filter(user=user).values_list("school__urn", "role")) == {
        school.urn: "viewer",
        school_b.urn: "sender",
    }


@pytest.mark.parametrize("password", [None, "", "password", "12345678901", "office@school"])
def test_a_new_account_needs_a_strong_password(school, password):
    with pytest.raises(ValidationError):
        staff_add(
            school=school,
            email="office@school.example",
            role="viewer",
            password=password,
            actor="cli",
        )
    assert not get_user_model().objects.exists()


def test_a_person_is_added_to_a_school_once(school):
    staff_add(school=school, email="a@school.example", role="viewer", password=GOOD, actor="cli")
    with pytest.raises(ValidationError, match="already viewer"):
        staff_add(school=school, email="a@school.example", role="administrator", actor="cli")


def test_roles_are_checked(school):
    with pytest.raises(ValidationError, match="not a role"):
        staff_add(school=school, email="a@school.example", role="owner", password=GOOD, actor="cli")


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


def test_the_command_adds_the_first_administrator_with_a_password_from_stdin(school):
    out = staff(
        school,
        "add",
        "--email",
        "office@school.example",
        "--role",
        "administrator",
        stdin=GOOD + "\n",
    )
    assert "is now administrator" in out
    user = get_user_model().objects.get(email="office@school.example")
    assert user.check_password(GOOD)
    assert GOOD not in out


def test_the_command_adds_an_existing_account_without_a_password(school):
    make_user("office@school.example")
    staff(school, "add", "--email", "office@school.example", "--role", "viewer")
    assert StaffMembership.objects.get().role == "viewer"


@pytest.mark.parametrize(
    ("stdin", "message"),
    [("", "needs a password"), ("\n", "needs a password"), ("password\n", "too common")],
)
def test_the_command_refuses_a_missing_or_weak_password(school, stdin, message):
    with pytest.raises(CommandError, match=message):
        staff(school, "add", "--email", "office@school.example", "--role", "viewer", stdin=stdin)
    assert not get_user_model().objects.exists()


def test_the_command_names_the_problem(school):
    with pytest.raises(CommandError, match="no school with URN 999999"):
        call_command(
            "staff", "add", "--school", "999999", "--email", "a@b.example", "--role", "viewer"
        )
    with pytest.raises(CommandError, match="invalid choice"):
        staff(school, "add", "--email", "a@b.example", "--role", "owner")
    with pytest.raises(CommandError, match="not on this school's staff"):
        staff(school, "remove", "--email", "nobody@b.example")


def test_the_command_changes_roles_lists_and_removes(school):
    staff(school, "add", "--email", "a@school.example", "--role", "administrator", stdin=GOOD)
    staff(school, "add", "--email", "b@school.example", "--role", "viewer", stdin=GOOD)
    staff(school, "set-role", "--email", "b@school.example", "--role", "sender")
    listing = staff(school, "list")
    assert "a@school.example  administrator" in listing
    assert "b@school.example  sender" in listing
    with pytest.raises(CommandError, match="only administrator"):
        staff(school, "remove", "--email", "a@school.example")
    staff(school, "remove", "--email", "b@school.example")
    assert StaffMembership.objects.count() == 1


def test_the_console_script_reads_the_password_from_standard_input(school, tmp_path):
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
