"""``homelink trust list [--json]``: every trust, its schools, its staff by role and the
invitations waiting, and its pool of SMS credits."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import CommandParser

from homelink.staff.models import Role
from homelink.trusts.selectors import TrustSummary, trust_summaries

HELP = "List every trust with its schools and its staff counts."


def add_arguments(parser: CommandParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON list on stdout")


def _as_json(summary: TrustSummary) -> dict[str, Any]:
    return {
        "name": summary.trust.name,
        "schools": [{"urn": s.urn, "name": s.name} for s in summary.schools],
        "staff": summary.staff,
        "invitations_waiting": summary.invitations,
        "sms_credits": summary.trust.sms_credits,
    }


def _staff_words(summary: TrustSummary) -> str:
    parts = []
    for role in Role:
        n = summary.staff.get(role.value, 0)
        parts.append(f"{n} {role.label.lower()}{'s' if n != 1 else ''}")
    return ", ".join(parts)


def run(options: dict[str, Any], stdout: Any) -> None:
    summaries = trust_summaries()
    if options["json"]:
        stdout.write(json.dumps([_as_json(s) for s in summaries], ensure_ascii=False))
        return
    if not summaries:
        stdout.write("No trusts yet: add one with 'homelink trust add --name NAME'.")
        return
    for summary in summaries:
        pool = summary.trust.sms_credits
        stdout.write(summary.trust.name)
        stdout.write(f"  staff        {_staff_words(summary)}")
        stdout.write(f"  invitations  {summary.invitations} waiting")
        stdout.write(
            "  SMS credits  "
            + (f"{pool} in the trust's pool" if pool is not None else "each school's own")
        )
        if summary.schools:
            stdout.write(f"  schools      {len(summary.schools)}")
            for school in summary.schools:
                stdout.write(f"    {school.urn}  {school.name}")
        else:
            stdout.write("  schools      none")
