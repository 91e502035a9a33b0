"""Who did it, for every audited service: a label ("cli", "admin", "migration") or the
signed-in user, whose id the audit trail keeps."""

from __future__ import annotations

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser

Actor = str | AbstractBaseUser | AnonymousUser


def actor_parts(actor: Actor) -> tuple[str, int | None]:
    """(label, user id) for :func:`~homelink.audit.services.audit_record`."""
    if isinstance(actor, str):
        return actor, None
    return f"user:{actor.pk}", actor.pk
