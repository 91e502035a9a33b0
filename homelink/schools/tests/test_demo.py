"""`homelink demo --no-serve`: everything the demo sets up, short of serving it."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from homelink.console.models import StaffMembership
from homelink.register.models import Adult, Link, Member
from homelink.schools.management.commands.demo import ADMIN_USERNAME
from homelink.schools.models import School

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _var_dir(settings, tmp_path):
    # The demo writes its generated CTF under VAR_DIR: keep it out of the work tree.
    settings.VAR_DIR = tmp_path


def run_demo(*args: str) -> str:
    out = StringIO()
    call_command("demo", "--no-serve", "--pupils", "30", *args, stdout=out)
    return out.getvalue()


def printed_password(output: str) -> str:
    match = re.search(r"^\s*password: (\S+)$", output, re.MULTILINE)
    assert match, output
    return match.group(1)


def test_demo_builds_the_register_and_an_administrator(tmp_path):
    output = run_demo()

    school = School.objects.get(urn="100001")
    assert school.name == "Example Academy"
    assert (school.la_code, school.estab) == ("838", "4512")
    assert school.sms_credits == 10_000  # staff can try a send; it goes to the local outbox
    assert (tmp_path / "demo" / "demo.ctf.xml").is_file()

    students = Member.objects.filter(
        school=school, kind=Member.Kind.STUDENT, status=Member.Status.CURRENT
    )
    assert students.count() == 30
    assert Adult.objects.filter(school=school).exists()
    assert Link.objects.filter(school=school, prime=True).exists()

    admin = get_user_model().objects.get(username=ADMIN_USERNAME)
    assert admin.is_superuser
    assert admin.is_staff
    assert admin.check_password(printed_password(output))
    # The same account runs the school office's console.
    assert StaffMembership.objects.get(user=admin, school=school).role == "administrator"


def test_a_second_run_keeps_the_school_and_the_password():
    password = printed_password(run_demo())

    output = run_demo()

    assert School.objects.filter(urn="100001").count() == 1
    current = Member.objects.filter(
        school__urn="100001", kind=Member.Kind.STUDENT, status=Member.Status.CURRENT
    )
    assert current.count() == 30
    assert "password:" not in output
    assert get_user_model().objects.get(username=ADMIN_USERNAME).check_password(password)


def test_reset_password_replaces_it():
    old = printed_password(run_demo())

    new = printed_password(run_demo("--reset-password"))

    assert new != old
    admin = get_user_model().objects.get(username=ADMIN_USERNAME)
    assert admin.check_password(new)
    assert not admin.check_password(old)
