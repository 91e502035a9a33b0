from __future__ import annotations

from django.core.management.base import CommandError

from homelink.schools.models import School


def school_by_urn_or_error(urn: str) -> School:
    """For commands: the school, or a CommandError that says which schools exist."""
    try:
        return School.objects.get(urn=urn.strip())
    except School.DoesNotExist:
        known = ", ".join(School.objects.values_list("urn", flat=True)[:10]) or "none yet"
        raise CommandError(
            f"no school with URN {urn} (schools: {known}); add it with 'homelink school add'"
        ) from None
