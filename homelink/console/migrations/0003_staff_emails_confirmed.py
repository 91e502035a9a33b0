"""Existing staff under the rule that only an account with a confirmed email holds a role.

- An account with a membership and no ``accounts.Parent`` row was made by ``homelink staff add``
  or the Staff page for that address (a sign-up at /register/ always makes the row, in the same
  transaction as the account), or by an operator: its email counts as confirmed from now on. So
  does one whose row came later than its account (the row a visit to /account/ makes).
- A membership held by a sign-up whose email was never confirmed is the hole this closes: it is
  removed and becomes an invitation to the same address and role, already expired and never
  sent (nobody holds its link). The school's administrator (Staff page, "Send again") or the
  operator (``homelink staff resend``) sends it; whoever owns the mailbox then accepts it.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from django.db import migrations
from django.utils import timezone


def forwards(apps: Any, schema_editor: Any) -> None:
    Membership = apps.get_model("console", "StaffMembership")
    Invitation = apps.get_model("console", "StaffInvitation")
    Parent = apps.get_model("accounts", "Parent")
    AuditEvent = apps.get_model("audit", "AuditEvent")
    now = timezone.now()

    staff_ids = set(Membership.objects.values_list("user_id", flat=True))
    rows = Parent.objects.filter(user_id__in=staff_ids).values_list(
        "user_id", "email_verified_at", "created_at", "user__date_joined"
    )
    parents = {uid: verified for uid, verified, _, _ in rows}
    Parent.objects.bulk_create(
        [Parent(user_id=uid, email_verified_at=now) for uid in sorted(staff_ids - set(parents))]
    )
    # A sign-up makes its row with the account; a row made a minute or more later came from a
    # page the staff member opened, and says nothing against their address.
    visited = [
        uid
        for uid, verified, created, joined in rows
        if verified is None and created - joined >= timedelta(minutes=1)
    ]
    Parent.objects.filter(user_id__in=visited).update(email_verified_at=now)
    unconfirmed = [
        uid for uid, verified in parents.items() if verified is None and uid not in visited
    ]
    removed: dict[str, int] = {}
    for membership in Membership.objects.filter(user_id__in=unconfirmed).select_related(
        "user", "school"
    ):
        removed[membership.school.urn] = removed.get(membership.school.urn, 0) + 1
        email = (membership.user.email or membership.user.username).strip().lower()
        invitation = Invitation.objects.filter(
            school_id=membership.school_id,
            email=email,
            accepted_at__isnull=True,
            revoked_at__isnull=True,
        ).first() or Invitation.objects.create(
            school_id=membership.school_id,
            email=email,
            role=membership.role,
            token_hash=secrets.token_hex(32),
            sent_at=now,
            expires_at=now,
        )
        AuditEvent.objects.create(
            school_id=membership.school_id,
            actor_label="migration",
            action="staff.removed",
            object_type="staffmembership",
            object_id=str(membership.pk),
            detail={
                "role": membership.role,
                "user_id": membership.user_id,
                "reason": "email_not_confirmed",
                "invitation_id": invitation.pk,
            },
        )
        membership.delete()
    for urn, count in sorted(removed.items()):
        # Said where the operator upgrading reads it: these schools have invitations to send.
        print(
            f"\n  school {urn}: {count} role(s) held by an unconfirmed sign-up became "
            "invitations: send them with `homelink staff invitations/resend` if they are wanted."
        )


class Migration(migrations.Migration):
    dependencies = [
        ("console", "0002_staffinvitation"),
        ("accounts", "0002_parent_pending_details"),
        ("audit", "0001_initial"),
    ]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
