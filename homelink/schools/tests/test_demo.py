"""`homelink demo --no-serve`: everything the demo sets up, short of serving it."""

from __future__ import annotations

import re
import subprocess
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.management import call_command
from django.core.management.base import CommandError
from pypdf import PdfReader

from homelink.accounts.services import account_register
from homelink.messaging.audience import Audience, resolve
from homelink.messaging.selectors import audience_choices
from homelink.register.models import Adult, Link, Member
from homelink.schools.management.commands import demo
from homelink.schools.management.commands.demo import ADMIN_USERNAME
from homelink.schools.models import School
from homelink.staff.models import StaffMembership

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


# --- the demo on another port -------------------------------------------------------------------


@pytest.fixture
def no_public_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """An environment that does not set HOMELINK_PUBLIC_URL, as on a fresh clone (set first so
    that monkeypatch restores whatever the test run had)."""
    monkeypatch.setenv("HOMELINK_PUBLIC_URL", "unset")
    monkeypatch.delenv("HOMELINK_PUBLIC_URL")


class FakeProcess:
    """Stands in for the worker and the server: records how it was started, exits at once."""

    started: list[FakeProcess] = []

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        self.args, self.env, self.pid = args, env or {}, 4000 + len(self.started)
        self.started.append(self)

    def wait(self, timeout: float | None = None) -> int:
        return 0

    def terminate(self) -> None: ...

    def kill(self) -> None: ...


def letters_text(urn: str, tmp_path: Path) -> str:
    out = tmp_path / "letters.pdf"
    call_command("letters", "--school", urn, "--out", str(out), stdout=StringIO())
    return " ".join(" ".join(p.extract_text().split()) for p in PdfReader(out).pages)


def test_the_demo_on_another_port_puts_that_port_in_emails_and_letters(
    no_public_url: None, settings, tmp_path, django_capture_on_commit_callbacks
) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"

    output = run_demo("--port", "8101")

    assert "links in emails and letters: http://127.0.0.1:8101" in output
    # A server started by hand after --no-serve needs telling, or its links say 8000 again.
    assert "HOMELINK_PUBLIC_URL=http://127.0.0.1:8101" in output
    # The letters a school office prints from the demo, and a parent's confirmation email.
    assert "http://127.0.0.1:8101/register/" in letters_text("100001", tmp_path)
    with django_capture_on_commit_callbacks(execute=True):
        account_register(
            email="pat@example.org", forename="Pat", surname="Smith", password="a long passphrase 9"
        )
    [email] = mail.outbox
    assert "http://127.0.0.1:8101/account/confirm/" in email.body
    assert ":8000" not in email.body


def test_the_worker_and_the_server_inherit_the_demo_address(
    no_public_url: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Serve without serving: the children are recorded, not started, and the demo's signal
    # handlers are not left on the test process.
    monkeypatch.setattr(FakeProcess, "started", [])
    monkeypatch.setattr(demo.subprocess, "Popen", FakeProcess)
    monkeypatch.setattr(demo.signal, "signal", lambda *args: None)
    out = StringIO()

    call_command("demo", "--pupils", "5", "--port", "8101", stdout=out)

    worker, server = FakeProcess.started
    assert worker.args[-4:] == ["worker", "--queue-name", "*", "--no-reload"]
    assert server.args[-1] == "127.0.0.1:8101"
    for child in (worker, server):
        assert child.env["HOMELINK_PUBLIC_URL"] == "http://127.0.0.1:8101"
        assert child.env["HOMELINK_DEV"] == "1"
    assert "school office: http://127.0.0.1:8101/login/" in out.getvalue()
    # Letters printed from another terminal need the address too.
    assert "HOMELINK_PUBLIC_URL=http://127.0.0.1:8101 homelink letters" in out.getvalue()


def test_a_child_reads_the_address_from_the_environment_it_is_given(no_public_url: None) -> None:
    # What a real worker or server would see: a fresh process loading the settings.
    children = demo.demo_children(8101, demo.demo_public_url(8101))
    probe = "from django.conf import settings; print(settings.HOMELINK_PUBLIC_URL)"
    result = subprocess.run(
        [*children.worker[:3], "shell", "-c", probe],
        env=children.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    # The last line: Django's shell may first say what it imported.
    assert result.stdout.strip().splitlines()[-1] == "http://127.0.0.1:8101"


def test_an_address_set_in_the_environment_is_kept(
    monkeypatch: pytest.MonkeyPatch, settings
) -> None:
    # Someone showing the demo through a proxy or a tunnel says where parents reach it.
    monkeypatch.setenv("HOMELINK_PUBLIC_URL", "https://demo.example.org")

    output = run_demo("--port", "8101")

    assert settings.HOMELINK_PUBLIC_URL == "https://demo.example.org"
    assert "links in emails and letters: https://demo.example.org" in output
    assert demo.demo_children(8101, demo.demo_public_url(8101)).env["HOMELINK_PUBLIC_URL"] == (
        "https://demo.example.org"
    )


def test_the_default_port_keeps_the_default_address(no_public_url: None, settings) -> None:
    output = run_demo()

    assert settings.HOMELINK_PUBLIC_URL == "http://127.0.0.1:8000"
    assert "HOMELINK_PUBLIC_URL=" not in output  # nothing to do by hand


def test_a_port_out_of_range_is_refused() -> None:
    with pytest.raises(CommandError, match="--port"):
        run_demo("--port", "70000")


# --- registration groups ------------------------------------------------------------------------


def test_the_demo_school_has_registration_groups_to_message() -> None:
    run_demo()

    school = School.objects.get(urn="100001")
    students = Member.objects.filter(
        school=school, kind=Member.Kind.STUDENT, status=Member.Status.CURRENT
    )
    assert not students.filter(reg_group="").exists()
    years, groups = audience_choices(school)
    # More groups than years (two a year, where a year of this small roll has two pupils).
    assert len(groups) > len(years) > 1
    # A group is a smaller audience than its year: messaging one group can be tried.
    group = groups[0]
    in_group = resolve(school, Audience(students="groups", groups=(group,)), "email")
    in_school = resolve(school, Audience(), "email")
    assert 0 < in_group.students < in_school.students
    # Running the demo again (the CTF has no groups) keeps them.
    run_demo()
    assert not students.filter(reg_group="").exists()
