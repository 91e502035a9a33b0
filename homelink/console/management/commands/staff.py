"""``homelink staff``: give people roles at a school (the operator's way to make a school's
first administrator; administrators manage the rest)."""

from __future__ import annotations

import sys
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from homelink.console.models import Role, StaffMembership
from homelink.console.services import staff_add, staff_remove, staff_set_role
from homelink.schools.selectors import school_by_urn_or_error

ROLES = [r.value for r in Role]


class Command(BaseCommand):
    help = "Add staff to a school, change their role, remove them, or list them."
    # Tests hand in the password through call_command(..., stdin=...), as createsuperuser does.
    stealth_options = ("stdin",)

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        add = sub.add_parser(
            "add",
            help="give a person a role at a school; a new account's password is read from "
            "standard input (one line)",
        )
        add.add_argument("--school", required=True, help="the school's URN")
        add.add_argument("--email", required=True, help="the person's email (their login)")
        add.add_argument("--role", required=True, choices=ROLES)
        role = sub.add_parser("set-role", help="change a person's role at a school")
        role.add_argument("--school", required=True, help="the school's URN")
        role.add_argument("--email", required=True)
        role.add_argument("--role", required=True, choices=ROLES)
        remove = sub.add_parser("remove", help="end a person's role at a school")
        remove.add_argument("--school", required=True, help="the school's URN")
        remove.add_argument("--email", required=True)
        listing = sub.add_parser("list", help="list a school's staff")
        listing.add_argument("--school", required=True, help="the school's URN")

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdin = options.get("stdin") or sys.stdin
        school = school_by_urn_or_error(options["school"])
        action = options["action"]
        try:
            if action == "add":
                email = options["email"].strip()
                password = None
                if not self._account_exists(email):
                    password = self._read_password()
                membership = staff_add(
                    school=school,
                    email=email,
                    role=options["role"],
                    password=password,
                    actor="cli",
                )
                made = "new account" if password else "existing account"
                self.stdout.write(
                    self.style.SUCCESS(f"{email} is now {membership.role} at {school} ({made})")
                )
            elif action == "set-role":
                membership = self._membership(school.pk, options["email"])
                staff_set_role(membership=membership, role=options["role"], actor="cli")
                self.stdout.write(
                    self.style.SUCCESS(f"{options['email']} is now {options['role']} at {school}")
                )
            elif action == "remove":
                membership = self._membership(school.pk, options["email"])
                staff_remove(membership=membership, actor="cli")
                self.stdout.write(
                    self.style.SUCCESS(f"{options['email']} is no longer staff at {school}")
                )
            else:
                for m in StaffMembership.objects.filter(school=school).select_related("user"):
                    self.stdout.write(f"{m.user.email or m.user.get_username()}  {m.role}")
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None

    @staticmethod
    def _account_exists(email: str) -> bool:
        users = get_user_model().objects
        return (
            users.filter(email__iexact=email).exists()
            or users.filter(username__iexact=email).exists()
        )

    def _read_password(self) -> str:
        # One line from standard input, never an argument: arguments end up in shell history
        # and in the process list.
        stdin = self.stdin
        if stdin.isatty():
            self.stderr.write("Password for the new account (one line): ", ending="")
            self.stderr.flush()
        line = stdin.readline()
        password = line.rstrip("\r\n")
        if not password:
            raise CommandError(
                "a new account needs a password: give it on standard input, one line"
            )
        return password

    @staticmethod
    def _membership(school_id: int, email: str) -> StaffMembership:
        membership = (
            StaffMembership.objects.filter(school_id=school_id, user__email__iexact=email.strip())
            .select_related("school", "user")
            .first()
        )
        if membership is None:
            raise CommandError(f"{email} is not on this school's staff")
        return membership
