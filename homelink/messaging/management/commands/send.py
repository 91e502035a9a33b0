"""``homelink send``: send (or, with ``--dry-run``, price) a message from a script: to one
school's audience (``--school URN``), or to the same audience at chosen schools of a trust
(``--trust NAME --schools URN,URN|all``: :mod:`homelink.trusts.sending`)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from homelink.messaging.audience import Audience, AudienceError
from homelink.messaging.models import Message, TrustMessage
from homelink.messaging.services import Draft, Preview, message_preview, message_send
from homelink.register.models import Member
from homelink.schools.models import School
from homelink.schools.selectors import school_by_urn_or_error
from homelink.trusts.models import Trust
from homelink.trusts.sending import (
    TrustPreview,
    chosen_schools,
    trust_message_preview,
    trust_message_send,
)

AUDIENCE_HELP = (
    "parents (all parents, the default), prime, responsibility (parents with parental "
    "responsibility), year:7,8, group:7A,7B, students:MISID,MISID (their parents), "
    "staff or staff:teacher,governor, adults:ID,ID (chosen parents by register id), "
    "members:MISID,MISID (chosen adult members)"
)
CHANNELS = {"sms": "sms", "email": "email", "both": "both", "email-else-sms": "email_else_sms"}


def _list(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def parse_audience(school: School | None, spec: str, parents: str) -> Audience:
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
        if kind == "students" and school is not None:
            ids = _mis_ids(school, _list(rest), Member.Kind.STUDENT)
            return Audience(parents=parents, students="chosen", student_ids=ids)
        if kind == "staff":
            return Audience(who="staff", roles=_list(rest))
        if kind == "adults" and school is not None:
            return Audience(who="individuals", adult_ids=tuple(int(i) for i in _list(rest)))
        if kind == "members" and school is not None:
            ids = _mis_ids(school, _list(rest), Member.Kind.ADULT)
            return Audience(who="individuals", member_ids=ids)
    except (AudienceError, ValueError) as error:
        raise CommandError(f"--audience {spec}: {error}") from None
    raise CommandError(f"--audience {spec}: not an audience; use {AUDIENCE_HELP}")


def parse_trust_audience(spec: str, parents: str) -> Audience:
    """``--audience`` for a trust-wide send: the groups every school has (parents of all
    students, of year or registration groups; staff by role). MIS ids and register ids belong to
    one school, so ``students:``, ``adults:`` and ``members:`` are refused."""
    kind = spec.partition(":")[0]
    if kind in ("students", "adults", "members"):
        raise CommandError(
            f"--audience {spec}: a trust-wide send goes to parents, prime, responsibility, "
            "year:…, group:… or staff; chosen students and people are sent to school by school "
            "(--school URN)"
        )
    # No school is needed for the kinds left: none of them looks ids up.
    return parse_audience(None, spec, parents)


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
    help = (
        "Send a message to an audience of a school's register (--school), or of chosen schools "
        "of a trust (--trust, --schools), or price it with --dry-run."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        where = parser.add_mutually_exclusive_group(required=True)
        where.add_argument("--school", metavar="URN", help="the school to send to")
        where.add_argument(
            "--trust",
            metavar="NAME",
            help="a trust-wide send to the schools --schools names (one copy per number or "
            "address across them)",
        )
        parser.add_argument(
            "--schools",
            metavar="URN,URN|all",
            help="with --trust: the trust's schools to send to, in the order that says which "
            "school sends a copy families of several schools share (the first); or all",
        )
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
        if options["trust"] is not None:
            self._trust(options)
            return
        if options["schools"]:
            raise CommandError("--schools goes with --trust NAME; for one school use --school URN")
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

    # --- a trust-wide send -------------------------------------------------------------------

    def _trust(self, options: dict[str, Any]) -> None:
        trust = _trust_or_error(options["trust"])
        if not options["schools"]:
            raise CommandError(
                "--trust needs --schools: the trust's schools as URN,URN (in the order that says "
                "which school sends a copy shared by families of several) or all"
            )
        draft = Draft(
            mode=CHANNELS[options["channel"]],
            audience=parse_trust_audience(options["audience"], options["parents"]),
            subject=options["subject"],
            email_body=options["email_body"] or options["text"],
            sms_text=options["text"],
            urgent=options["urgent"],
            send_at=_when(options["at"]),
        )
        try:
            schools = chosen_schools(trust, options["schools"])
            preview = trust_message_preview(trust=trust, schools=schools, draft=draft)
            record = None
            if not options["dry_run"]:
                record = trust_message_send(
                    trust=trust,
                    schools=schools,
                    draft=draft,
                    actor="cli",
                    confirmed_large=options["yes"],
                    via="cli",
                )
        except ValidationError as error:
            raise CommandError(_errors(error)) from None
        self._trust_report(preview, record, json_out=options["json"])

    def _trust_report(
        self, preview: TrustPreview, record: TrustMessage | None, *, json_out: bool
    ) -> None:
        figures = preview.as_json()
        messages = (
            dict(record.messages.filter(kind=Message.Kind.SCHOOL).values_list("school__urn", "pk"))
            if record is not None
            else {}
        )
        for school in figures["schools"]:
            school["message"] = messages.get(school["urn"])
        figures["trust_message"] = record.pk if record else None
        figures["status"] = (
            "dry run" if record is None else "scheduled" if record.scheduled else "queued"
        )
        if json_out:
            self.stdout.write(json.dumps(figures))
            return
        pays = (
            f"the trust's pool ({preview.pool:,} credits)"
            if preview.pool is not None
            else "each school's own credits"
        )
        lines = [
            f"trust:        {preview.trust.name}: {len(preview.shares)} "
            f"school{'s' if len(preview.shares) != 1 else ''}, SMS paid from {pays}",
            f"{'school':<32} {'people':>7} {'reached':>7} {'left out':>8} {'messages':>8} "
            f"{'email':>6} {'SMS':>6} {'credits':>7} {'shared':>6}",
        ]
        for share in preview.shares:
            left = share.resolved.people - share.resolved.reached
            name = f"{share.school.name} ({share.school.urn})"
            lines.append(
                f"{name[:32]:<32} {share.resolved.people:>7,} {share.resolved.reached:>7,} "
                f"{left:>8,} {share.total:>8,} {share.email_count:>6,} {share.sms_count:>6,} "
                f"{share.credits:>7,} {share.shared:>6,}"
            )
        left_out = {k: v for k, v in figures["left_out"].items() if v}
        lines += [
            f"recipients:   {figures['recipients']:,} ({figures['reached']:,} reached, "
            f"{figures['recipients'] - figures['reached']:,} left out"
            + (": " if left_out else "")
            + ", ".join(f"{n:,} {reason.replace('_', ' ')}" for reason, n in left_out.items())
            + ")",
            f"messages:     {figures['messages']:,} ({figures['email']:,} email, "
            f"{figures['sms']:,} SMS); {figures['shared']:,} shared by families of several "
            f"schools, {figures['copies_saved']:,} fewer than school by school",
            f"SMS parts:    {preview.parts_min} to {preview.parts_max} each, "
            f"{preview.text_size.encoding}",
            f"credits:      {preview.credits:,}"
            + (f" of the trust's {preview.pool:,}" if preview.pool is not None else ""),
            f"unreachable:  {figures['unreachable']:,} (students with nobody reachable)",
        ]
        for who, needed, available in preview.shortfalls():
            lines.append(f"short:        {who} needs {needed:,} credits and has {available:,}")
        if record is None:
            lines.append("dry run: nothing was sent")
        else:
            lines.append(f"trust message {record.pk}: {figures['status']}")
        self.stdout.write("\n".join(lines))


def _trust_or_error(name: str) -> Trust:
    found = (
        Trust.objects.filter(name=name.strip()).first()
        or Trust.objects.filter(name__iexact=name.strip()).first()
    )
    if found is None:
        known = ", ".join(Trust.objects.values_list("name", flat=True)[:10]) or "none yet"
        raise CommandError(f"no trust named {name} (trusts: {known})")
    return found
