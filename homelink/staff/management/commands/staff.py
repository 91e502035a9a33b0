"""``homelink staff``: invite people to a school's staff (the operator's way to make a school's
first administrator; administrators invite the rest from the Staff page), change their role,
remove them, and look after invitations waiting to be accepted."""

from __future__ import annotations

import io
import os
import select
import sys
from typing import IO, Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from homelink.schools.models import School
from homelink.schools.selectors import school_by_urn_or_error
from homelink.staff.invitations import (
    INVITATION_TTL,
    invitation_resend,
    invitation_revoke,
    open_invitation_for,
    open_invitations,
    staff_invite,
)
from homelink.staff.models import Role, StaffMembership
from homelink.staff.services import staff_remove, staff_set_role

ROLES = [r.value for r in Role]

REFUSE_STDIN = (
    "homelink staff add takes no password: the person chooses their own when they accept the "
    "invitation emailed to them (nobody else ever knows it). Nothing was done: run the command "
    "again without giving a password on standard input."
)

LINK_NOTE = (
    "If mail is not set up yet, give the link to the person yourself, and only to them: "
    "whoever opens it can take the role."
)


def given_on_stdin(stream: IO[str]) -> bool:
    """Whether something was typed or piped in on standard input (never waiting for a person
    at a terminal, nor for a pipe that stays open and empty)."""
    if stream.isatty():
        return False
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        # A StringIO, as call_command(stdin=...) gives; or nothing readable at all.
        try:
            return bool(stream.read().strip())
        except (OSError, ValueError):
            return False
    try:
        ready, _, _ = select.select([fd], [], [], 0.2)
    except (OSError, ValueError):
        return False
    return bool(ready) and bool(os.read(fd, 4096).strip())


class Command(BaseCommand):
    help = (
        "Invite people to a school's staff, change their role, remove them, list them, and "
        "list, send again or withdraw invitations. A role is given only when the person "
        "accepts the emailed invitation."
    )
    # Tests hand standard input in through call_command(..., stdin=...), as createsuperuser does.
    stealth_options = ("stdin",)

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        add = sub.add_parser(
            "add",
            help="invite a person to a role at a school: they are emailed a link, and get the "
            "role when they accept (choosing their password there, or signing in if they "
            "already use homelink). The link is printed too: " + LINK_NOTE + " Takes no "
            f"password. The link works for {INVITATION_TTL.days} days.",
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
        waiting = sub.add_parser(
            "invitations", help="list a school's invitations waiting to be accepted"
        )
        waiting.add_argument("--school", required=True, help="the school's URN")
        resend = sub.add_parser(
            "resend",
            help="email a waiting invitation again with a new link (the old one stops "
            "working), and print the link. " + LINK_NOTE,
        )
        resend.add_argument("--school", required=True, help="the school's URN")
        resend.add_argument("--email", required=True)
        revoke = sub.add_parser(
            "revoke", help="withdraw a waiting invitation: its link stops working"
        )
        revoke.add_argument("--school", required=True, help="the school's URN")
        revoke.add_argument("--email", required=True)

    def handle(self, *args: Any, **options: Any) -> None:
        stdin = options.get("stdin") or sys.stdin
        action = options["action"]
        # Before anything else: a password typed for the old `staff add` must not be ignored.
        if action == "add" and given_on_stdin(stdin):
            raise CommandError(REFUSE_STDIN)
        school = school_by_urn_or_error(options["school"])
        try:
            if action == "add":
                invited = staff_invite(
                    school=school, email=options["email"], role=options["role"], actor="cli"
                )
                self._print_link(
                    f"Invited {invited.invitation.email} to be {invited.invitation.role} at "
                    f"{school}: they get the role when they accept.",
                    invited.url,
                    invited.invitation.expires_at,
                )
            elif action == "resend":
                invitation = self._invitation(school, options["email"])
                invited = invitation_resend(invitation=invitation, actor="cli")
                self._print_link(
                    f"Sent the invitation to {invitation.email} again; the earlier link no "
                    "longer works.",
                    invited.url,
                    invited.invitation.expires_at,
                )
            elif action == "revoke":
                invitation = self._invitation(school, options["email"])
                invitation_revoke(invitation=invitation, actor="cli")
                self.stdout.write(
                    self.style.SUCCESS(f"Withdrew the invitation to {invitation.email}.")
                )
            elif action == "invitations":
                now = timezone.now()
                for waiting in open_invitations(school):
                    until = (
                        "expired"
                        if waiting.expires_at <= now
                        else f"until {timezone.localtime(waiting.expires_at):%Y-%m-%d %H:%M}"
                    )
                    self.stdout.write(f"{waiting.email}  {waiting.role}  {until}")
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

    def _print_link(self, done: str, url: str, expires_at: Any) -> None:
        self.stdout.write(self.style.SUCCESS(done))
        self.stdout.write(
            f"The invitation is emailed to them. Its link, which works once until "
            f"{timezone.localtime(expires_at):%Y-%m-%d %H:%M}:"
        )
        self.stdout.write(f"  {url}")
        self.stdout.write(LINK_NOTE)

    @staticmethod
    def _invitation(school: School, email: str) -> Any:
        invitation = open_invitation_for(school, email)
        if invitation is None:
            raise CommandError(f"no invitation to {email.strip()} is waiting at this school")
        return invitation

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
