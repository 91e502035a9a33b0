"""``homelink demo``: the whole system on one machine, with synthetic data, in one command.

Migrates the database, makes (or reuses) the demo school, generates a synthetic CTF for it and
imports it through the same service the CLI and the web use, makes the office account (a superuser and the school's administrator), then
runs a task worker and the development server until Ctrl-C.

Links in confirmation emails, invitations and letters are built from ``HOMELINK_PUBLIC_URL``. Unless
the environment sets it, the demo points it at its own address (``--port``): in this process, and
in the environment of the worker and the server it starts, which read their settings afresh.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from types import FrameType
from typing import Any, NamedTuple

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection

from homelink.messaging.services import credits_add
from homelink.register.models import Member
from homelink.schools.models import School
from homelink.schools.services import school_create

DEMO_URN = "100001"
DEMO_NAME = "Example Academy"
DEMO_LA = "838"
DEMO_ESTAB = "4512"
DEMO_SMS_CREDITS = 10_000
# One account for the whole demo: the operators' admin (a superuser) and the school office's
# console (an administrator of the demo school). Its username is its email, as on the sign-in page.
ADMIN_USERNAME = "office@example.org"
# How long a child process gets to finish its current work after being asked to stop.
STOP_GRACE_SECONDS = 10
# The address the development server listens on: this machine only.
DEMO_HOST = "127.0.0.1"
# What settings.py falls back to when HOMELINK_PUBLIC_URL is not set.
DEFAULT_PUBLIC_URL = f"http://{DEMO_HOST}:8000"


def demo_public_url(port: int, environ: Mapping[str, str] | None = None) -> str:
    """The address links in emails and letters point at: ``HOMELINK_PUBLIC_URL`` when the
    environment sets it (someone serving the demo behind a proxy or on another name), else the
    demo's own server, so that a confirmation link works on whatever port the demo runs."""
    env = os.environ if environ is None else environ
    explicit = env.get("HOMELINK_PUBLIC_URL", "").strip()
    return explicit or f"http://{DEMO_HOST}:{port}"


class Children(NamedTuple):
    """What the demo starts: the worker's and the server's command lines, and their environment."""

    worker: list[str]
    server: list[str]
    env: dict[str, str]


def demo_children(port: int, public_url: str) -> Children:
    # Both run as child processes of this one: runserver's autoreloader re-executes its own
    # command line (which would re-run the whole demo), and a server that fails to bind exits
    # the process outright, which would orphan an in-process worker.
    cli = [sys.executable, "-m", "homelink.cli"]
    # The children load the settings afresh from their environment: overriding them in this
    # process is not enough, and a worker sending a confirmation email needs the same address.
    env = {**os.environ, "HOMELINK_DEV": "1", "HOMELINK_PUBLIC_URL": public_url}
    return Children(
        worker=[*cli, "worker", "--queue-name", "*", "--no-reload"],
        server=[*cli, "runserver", "--noreload", "--insecure", f"{DEMO_HOST}:{port}"],
        env=env,
    )


class Command(BaseCommand):
    help = (
        "Run the whole system with synthetic data: migrate, create the demo school, import a "
        "generated CTF, create an 'admin' superuser, then run a task worker and the web server."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--port",
            type=int,
            default=8000,
            help="web server port (8000); links in emails and letters follow it unless "
            "HOMELINK_PUBLIC_URL is set",
        )
        parser.add_argument(
            "--pupils", type=int, default=300, help="pupils in the generated CTF (300)"
        )
        parser.add_argument(
            "--reset-password",
            action="store_true",
            help="give an existing 'admin' user a new random password",
        )
        parser.add_argument(
            "--no-serve",
            action="store_true",
            help="set everything up but start neither the worker nor the server",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        pupils: int = options["pupils"]
        if pupils < 1:
            raise CommandError("--pupils must be at least 1")
        verbosity: int = options["verbosity"]
        port: int = options["port"]
        if not 1 <= port <= 65535:
            raise CommandError("--port must be between 1 and 65535")
        public_url = demo_public_url(port)
        # Before anything below builds a link: this process's own settings were read before the
        # port was known (the children get it through their environment, in _serve).
        settings.HOMELINK_PUBLIC_URL = public_url

        self._ensure_sqlite_dir()
        self._section("Database")
        # Quieter than a bare migrate: the demo's own lines are what a newcomer should read.
        call_command("migrate", interactive=False, verbosity=max(0, verbosity - 1))
        self.stdout.write(f"  {connection.vendor}: {connection.settings_dict['NAME']}")

        self._section("Demo school")
        school = self._school()
        self._import(school, pupils)
        self._sync(school)

        self._section("Administrator")
        self._superuser(reset=options["reset_password"])
        self._office(school)

        if options["no_serve"]:
            self.stdout.write(self.style.SUCCESS("\nDemo data ready (--no-serve: not serving)."))
            self.stdout.write(f"  links in emails and letters: {public_url}")
            if public_url != DEFAULT_PUBLIC_URL and not os.environ.get("HOMELINK_PUBLIC_URL"):
                # A server and worker started by hand read the settings afresh: without this,
                # their links would point at port 8000 again.
                self.stdout.write(
                    f"  start the server and the worker with HOMELINK_PUBLIC_URL={public_url}"
                )
            return
        self._serve(port, public_url)

    # -- set-up -----------------------------------------------------------------------------

    def _section(self, title: str) -> None:
        self.stdout.write(self.style.MIGRATE_HEADING(f"\n{title}"))

    def _ensure_sqlite_dir(self) -> None:
        # SQLite creates the file but not its folder, and var/ is not in a fresh clone.
        settings.VAR_DIR.mkdir(parents=True, exist_ok=True)
        if connection.vendor == "sqlite":
            name = str(connection.settings_dict["NAME"])
            if name and name != ":memory:" and not name.startswith("file:"):
                Path(name).parent.mkdir(parents=True, exist_ok=True)

    def _school(self) -> School:
        school = School.objects.filter(urn=DEMO_URN).first()
        if school is not None:
            self.stdout.write(f"  reusing {school}")
            return school
        school = school_create(urn=DEMO_URN, name=DEMO_NAME, la_code=DEMO_LA, estab=DEMO_ESTAB)
        # SMS in the demo goes to the local outbox: the credits only let staff try a send.
        credits_add(school=school, amount=DEMO_SMS_CREDITS, actor="demo")
        self.stdout.write(f"  created {school} with {DEMO_SMS_CREDITS:,} SMS credits")
        return school

    def _import(self, school: School, pupils: int) -> None:
        # Imported here so that `homelink help` and the other commands never pay for lxml and
        # the import engine.
        from homelink.mis.generate import generate_ctf
        from homelink.mis.records import MisFormatError
        from homelink.mis.rules import ImportRefused
        from homelink.mis.services import ImportBusy, import_file

        path = settings.VAR_DIR / "demo" / "demo.ctf.xml"
        groups = settings.VAR_DIR / "demo" / "demo.groups.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        stats = generate_ctf(
            path,
            pupils=pupils,
            urn=school.urn,
            la=school.la_code or DEMO_LA,
            estab=school.estab or DEMO_ESTAB,
            school_name=school.name,
            groups_out=groups,
        )
        self.stdout.write(f"  generated {path} ({pupils} pupils)")
        # The generated file is, by definition, the demo school's whole roll: re-running the demo
        # with a smaller --pupils should shrink the roll, not stop at the leavers guard that
        # protects real schools from exporting one year group.
        try:
            outcome = import_file(school=school, path=path, fmt="ctf", confirm_leavers=True)
        except (MisFormatError, ImportRefused, ImportBusy) as exc:
            raise CommandError(f"the demo import did not run: {exc}") from None
        if not outcome.applied:
            raise CommandError(f"the demo import ended {outcome.run.status}: {outcome.run.error}")
        # The non-zero counts, one line per section; the reasons and the per-person details are
        # what `homelink import --dry-run` is for.
        for section, counts in outcome.summary.items():
            if section == "reasons" or not isinstance(counts, dict):
                continue
            line = ", ".join(
                f"{what.replace('_', ' ')} {n}"
                for what, n in counts.items()
                if isinstance(n, int) and not isinstance(n, bool) and n
            )
            if line:
                self.stdout.write(f"  {section.replace('_', ' ')}: {line}")
        # A CTF has no registration groups: a school imports them from a members CSV keyed by
        # UPN, and so does the demo, so that messaging a registration group can be tried. Only
        # adding and updating: the CTF above is the roll, and the CSV names the same pupils.
        try:
            grouped = import_file(school=school, path=groups, fmt="csv", update_only=True)
        except (MisFormatError, ImportRefused, ImportBusy) as exc:
            raise CommandError(f"the demo's registration groups did not import: {exc}") from None
        if not grouped.applied:
            raise CommandError(
                f"the demo's registration groups import ended {grouped.run.status}: "
                f"{grouped.run.error}"
            )
        self.stdout.write(f"  registration groups: {stats.reg_groups} (from {groups.name})")
        students = school.members.filter(
            kind=Member.Kind.STUDENT, status=Member.Status.CURRENT
        ).count()
        adults = school.adults.count()
        self.stdout.write(f"  register: {students} current students, {adults} linked adults")

    def _sync(self, school: School) -> None:
        from homelink.sync.models import SyncSource
        from homelink.sync.services import sync_set_folder

        config = SyncSource.objects.filter(school=school).first()
        if config is None:
            config = sync_set_folder(school=school, actor_label="demo")
        self.stdout.write(
            f"  scheduled sync: {config.get_kind_display().lower()} {config.where}, "
            f"nightly at {config.at:%H:%M} (or: homelink sync run --school {school.urn})"
        )

    def _superuser(self, *, reset: bool) -> None:
        user_model = get_user_model()
        user = user_model.objects.filter(username=ADMIN_USERNAME).first()
        if user is not None and not reset:
            if not (user.is_superuser and user.is_staff and user.is_active):
                user.is_superuser = user.is_staff = user.is_active = True
                user.save(update_fields=["is_superuser", "is_staff", "is_active"])
            self.stdout.write(
                f"  user '{ADMIN_USERNAME}' exists: keeping its password "
                "(run with --reset-password for a new one)"
            )
            return
        # Printed once and never stored in clear: a fixed demo password would end up on real
        # installs that started from the demo.
        password = secrets.token_urlsafe(12)
        if user is None:
            user_model.objects.create_superuser(ADMIN_USERNAME, ADMIN_USERNAME, password)
            self.stdout.write(f"  created superuser '{ADMIN_USERNAME}'")
        else:
            user.set_password(password)
            user.is_superuser = user.is_staff = user.is_active = True
            user.save()
            self.stdout.write(f"  new password for '{ADMIN_USERNAME}'")
        self.stdout.write(f"  username: {ADMIN_USERNAME}")
        self.stdout.write(f"  password: {password}")
        self.stdout.write("  (shown only now: note it down)")

    def _office(self, school: School) -> None:
        from homelink.staff.models import Role
        from homelink.staff.testing import staff_directly

        user = get_user_model().objects.get(username=ADMIN_USERNAME)
        if user.email != ADMIN_USERNAME:
            user.email = ADMIN_USERNAME
            user.save(update_fields=["email"])
        # The demo's address has no mailbox: the account is made staff directly, as an accepted
        # invitation would leave it (on a real install, `homelink staff add` sends one).
        staff_directly(user, school, Role.ADMINISTRATOR)
        self.stdout.write(f"  '{ADMIN_USERNAME}' is an administrator of {school.name}")

    # -- serving ----------------------------------------------------------------------------

    def _serve(self, port: int, public_url: str) -> None:
        children = demo_children(port, public_url)

        self._section("Running")
        # `kill PID` (SIGTERM) should stop the children as Ctrl-C does, not orphan them. SIGINT
        # is set explicitly because a shell that starts us in the background ignores it, and the
        # children would inherit that and never stop on Ctrl-C.
        signal.signal(signal.SIGTERM, _interrupt)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        worker = subprocess.Popen(children.worker, env=children.env)
        try:
            server = subprocess.Popen(children.server, env=children.env)
        except BaseException:
            self._stop(worker)
            raise
        url = f"http://{DEMO_HOST}:{port}"
        # `homelink letters` run in another terminal reads the settings afresh, like the children.
        letters = "homelink letters"
        if public_url != DEFAULT_PUBLIC_URL and not os.environ.get("HOMELINK_PUBLIC_URL"):
            letters = f"HOMELINK_PUBLIC_URL={public_url} homelink letters"
        self.stdout.write(
            f"  worker pid {worker.pid}, web server pid {server.pid}\n"
            f"  links in emails and letters: {public_url}"
            + ("" if public_url == url else " (HOMELINK_PUBLIC_URL)")
            + "\n"
            f"  school office: {url}/login/ as '{ADMIN_USERNAME}', then the console at {url}/console/\n"
            f"  parents:       {url}/register/ (letters: the console's Letters page, or '{letters}')\n"
            f"  outbox:        {url}/outbox/ (the mail and SMS the demo kept instead of sending)\n"
            f"  operators:     {url}/admin/\n"
            "  press Ctrl-C to stop both"
        )
        code = 0
        try:
            code = server.wait()
        except KeyboardInterrupt:
            # From a terminal, SIGINT reached the whole process group: the children are stopping
            # too, and _stop only waits for them (or ends them if it reached only this process).
            self.stdout.write("\n  stopping…")
        finally:
            self._stop(server)
            self._stop(worker)
        if code not in (0, -signal.SIGINT, -signal.SIGTERM):
            raise CommandError(f"the web server exited with status {code}")
        self.stdout.write("  stopped")

    def _stop(self, proc: subprocess.Popen[bytes]) -> None:
        # A child that got the terminal's SIGINT is already stopping: give it a moment before
        # signalling again, because a second signal makes the worker abandon the task in hand.
        for ask, timeout in ((None, 2), (proc.terminate, STOP_GRACE_SECONDS), (proc.kill, None)):
            if ask is not None:
                ask()
            try:
                proc.wait(timeout=timeout)
                return
            except subprocess.TimeoutExpired:
                continue


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt
