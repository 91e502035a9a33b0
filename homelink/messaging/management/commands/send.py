"""``homelink send``: send (or, with ``--dry-run``, price) a message from a script."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from homelink.messaging.audience import Audience, AudienceError
from homelink.messaging.models import Message
from homelink.messaging.services import Draft, Preview, message_preview, message_send
from homelink.register.models import Member
from homelink.schools.models import School
from homelink.schools.selectors import school_by_urn_or_error

AUDIENCE_HELP = (
    "parents (all parents, the default), prime, responsibility (parents with parental "
    "responsibility), year:7,8, group:7A,7B, students:MISID,MISID (their parents), "
    "staff or staff:teacher,governor, adults:ID,ID (chosen parents by register id), "
    "members:MISID,MISID (chosen adult members)"
)
CHANNELS = {"sms": "sms", "email": "email", "both": "both", "email-else-sms": "email_else_sms"}


def _list(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def parse_audience(school: School, spec: str, parents: str) -> Audience:
    """``--audience`` and ``--parents`` as an :class:`Audience` (mis ids looked up in the
    school, so another school's students can never be named)."""
    kind, _, rest = spec.partition(":")
    try:
        if kind in ("parents", "all"):
            return Audience(parents=parents)
        if kind in ("prime", "responsibility"):
            return Audience(parents=kind)
        if kind == "year":
            return Audience(parents=parents, students="years", years=_list(rest))
        if kind == "group":
            return Audience(parents=parents, students="groups", groups=_list(rest))
        if kind == "students":
            ids = _mis_ids(school, _list(rest), Member.Kind.STUDENT)
            return Audience(parents=parents, students="chosen", student_ids=ids)
        if kind == "staff":
            return Audience(who="staff", roles=_list(rest))
        if kind == "adults":
            return Audience(who="individuals", adult_ids=tuple(int(i) for i in _list(rest)))
        if kind == "members":
            ids = _mis_ids(school, _list(rest), Member.Kind.ADULT)
            return Audience(who="individuals", member_ids=ids)
    except (AudienceError, ValueError) as error:
        raise CommandError(f"--audience {spec}: {error}") from None
    raise CommandError(f"--audience {spec}: not an audience; use {AUDIENCE_HELP}")


def _mis_ids(school: School, mis_ids: tuple[str, ...], kind: str) -> tuple[int, ...]:
    found = dict(
        Member.objects.filter(school=school, kind=kind, mis_id__in=mis_ids).values_list(
            "mis_id", "pk"
        )
    )
    missing = [m for m in mis_ids if m not in found]
    if missing:
        raise CommandError(f"{school.name} has no {kind} with MIS id {', '.join(missing)}")
    return tuple(found[m] for m in mis_ids)


def _when(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise CommandError(f"--at {value}: give a time like 2026-12-01T07:00") from None
    return timezone.make_aware(when) if timezone.is_naive(when) else when


def _state(message: Message | None) -> str:
    if message is None:
        return "dry run"
    return "scheduled" if message.scheduled else "queued"


def _errors(error: ValidationError) -> str:
    if hasattr(error, "message_dict"):
        return "; ".join(f"{k}: {' '.join(v)}" for k, v in error.message_dict.items())
    return " ".join(error.messages)


class Command(BaseCommand):
    help = "Send a message to an audience of a school's register, or price it with --dry-run."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--school", required=True, metavar="URN")
        parser.add_argument("--audience", default="parents", help=AUDIENCE_HELP)
        parser.add_argument(
            "--parents",
            choices=["all", "prime", "responsibility"],
            default="all",
            help="which parents of the students (default all linked parents)",
        )
        parser.add_argument("--channel", choices=sorted(CHANNELS), default="email-else-sms")
        parser.add_argument("--text", required=True, help="the SMS text (and email body)")
        parser.add_argument("--subject", default="", help="the email's subject")
        parser.add_argument("--email-body", default="", help="the email body, if not --text")
        parser.add_argument("--urgent", action="store_true", help="ahead of bulk sends queued")
        parser.add_argument("--at", metavar="TIME", help="schedule it (ISO time, school's zone)")
        parser.add_argument(
            "--yes", action="store_true", help="confirm a send over the large-send threshold"
        )
        parser.add_argument("--dry-run", action="store_true", help="price it, send nothing")
        parser.add_argument("--json", action="store_true", help="print the figures as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        school = school_by_urn_or_error(options["school"])
        draft = Draft(
            mode=CHANNELS[options["channel"]],
            audience=parse_audience(school, options["audience"], options["parents"]),
            subject=options["subject"],
            email_body=options["email_body"] or options["text"],
            sms_text=options["text"],
            urgent=options["urgent"],
            send_at=_when(options["at"]),
        )
        try:
            preview = message_preview(school=school, draft=draft)
            message = None
            if not options["dry_run"]:
                message = message_send(
                    school=school,
                    draft=draft,
                    actor="cli",
                    confirmed_large=options["yes"],
                    via="cli",
                )
        except ValidationError as error:
            raise CommandError(_errors(error)) from None
        self._report(preview, message, json_out=options["json"])

    def _report(self, preview: Preview, message: Message | None, *, json_out: bool) -> None:
        figures = preview.as_json()
        figures["message"] = message.pk if message else None
        figures["status"] = _state(message)
        if json_out:
            self.stdout.write(json.dumps(figures))
            return
        lines = [
            f"recipients:   {figures['recipients']:,} ({figures['reached']:,} reached, "
            f"{figures['recipients'] - figures['reached']:,} left out"
            + (": " if preview.resolved.left_out else "")
            + ", ".join(
                f"{len(g.people):,} {g.title.lower()}" for g in preview.resolved.left_out_groups()
            )
            + ")",
            f"messages:     {figures['messages']:,} ({figures['email']:,} email, {figures['sms']:,} SMS)",
            f"SMS parts:    {preview.parts_min} to {preview.parts_max} each, {preview.text_size.encoding}"
            + (
                f" (forced by {' '.join(preview.text_size.ucs2_chars)})"
                if preview.text_size.ucs2_chars
                else ""
            ),
            f"credits:      {preview.credits:,} of {preview.credits_available:,}",
            f"unreachable:  {figures['unreachable']:,} (students with nobody reachable)",
        ]
        if message is None:
            lines.append("dry run: nothing was sent")
        else:
            lines.append(f"message {message.pk}: {_state(message)}")
        self.stdout.write("\n".join(lines))
