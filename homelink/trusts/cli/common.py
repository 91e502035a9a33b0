"""What the ``homelink trust`` subcommands share: finding a trust and schools by what the
operator typed, a refusal in words, and printing an invitation's link as ``homelink staff add``
does."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError
from django.utils import timezone

from homelink.schools.models import School
from homelink.schools.selectors import school_by_urn_or_error
from homelink.staff.management.commands.staff import LINK_NOTE
from homelink.trusts.models import Trust
from homelink.trusts.selectors import trust_by_name


def trust_or_error(name: str) -> Trust:
    """The trust with this name (in any case), or a CommandError naming the trusts there are."""
    trust = trust_by_name(name)
    if trust is None:
        known = ", ".join(Trust.objects.order_by("name").values_list("name", flat=True)[:10])
        raise CommandError(
            f"no trust called {name.strip()!r} (trusts: {known or 'none yet'}); add one with "
            "'homelink trust add --name NAME'"
        )
    return trust


def schools_or_error(urns: str) -> list[School]:
    """The schools of a comma-separated list of URNs, each once, in the order given."""
    schools: list[School] = []
    for urn in (u.strip() for u in urns.split(",")):
        if not urn:
            continue
        school = school_by_urn_or_error(urn)
        if school.pk in {s.pk for s in schools}:
            raise CommandError(f"URN {urn} is given twice")
        schools.append(school)
    return schools


def refusal(error: ValidationError) -> CommandError:
    return CommandError("; ".join(error.messages))


def print_link(stdout: Any, done: str, url: str, expires_at: dt.datetime) -> None:
    """As ``homelink staff add`` prints an invitation: what was done, then the link."""
    stdout.write(done)
    stdout.write(
        "The invitation is emailed to them. Its link, which works once until "
        f"{timezone.localtime(expires_at):%Y-%m-%d %H:%M}:"
    )
    stdout.write(f"  {url}")
    stdout.write(LINK_NOTE)
