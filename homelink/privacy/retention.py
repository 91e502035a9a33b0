"""Retention: what a school no longer needs is removed, by the school's own rule (issue 13
point 6; UK GDPR article 5(1)(e), storage limitation).

Each school has a :class:`~homelink.privacy.models.RetentionPolicy` (defaults: leavers' register
rows and links 12 months after they left; message bodies with their delivery rows, and replies,
24 months after they were written; the audit trail 6 years, which a school may lengthen but
never shorten). :func:`retention_purge` applies it:
from ``homelink privacy retention`` and, once a day per school, from the worker
(:mod:`homelink.privacy.tasks`, :func:`retention_run_due`). Each purge records its counts on the
policy (``last_purge_at``, ``last_purge``) and in the audit trail: counts, never who.

Nothing of a current student is ever removed: only members marked left (by a whole-roll import)
more than ``leavers_months`` ago go, with their own links and letters, and an adult goes only
when every student they were linked to is such a leaver (an adult still linked to a current
student, or waiting to be, keeps every link to that student). The import history forgets the
names, addresses and numbers of the people it removes, and MIS files uploaded in the console and
left waiting (a preview never applied or discarded) are deleted after :data:`UPLOADS_KEPT`.
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from homelink.audit.models import AuditEvent
from homelink.audit.services import audit_purge_before, audit_record
from homelink.messaging.models import Delivery, InboundSms, Message, Status
from homelink.mis.tasks import imports_abandon
from homelink.mis.uploads import uploads_forget, uploads_unneeded
from homelink.privacy.erasure import redact_import_history
from homelink.privacy.models import RetentionPolicy
from homelink.register.models import Adult, Link, Member, PendingLink
from homelink.schools.models import School
from homelink.staff.actor import Actor, actor_parts
from homelink.sync.taken import taken_files, taken_forget

#: The scheduled purge runs at most this often per school (a day, give or take the sweep).
PURGE_EVERY = dt.timedelta(hours=23)

#: The audit trail is append-only, administrators included: a school may keep it longer than
#: the 6 years the README states, never shorter (a short period would be a way round).
AUDIT_YEARS_MIN = 6
#: The limits a school may set: at least a month of leavers and messages, at most what any
#: school keeps.
LIMITS = {
    "leavers_months": (1, 120),
    "messages_months": (1, 120),
    "audit_years": (AUDIT_YEARS_MIN, 20),
}
#: An uploaded MIS file left waiting (a preview never applied or discarded) is deleted this
#: long after it was uploaded, or after the messages period if that is shorter.
UPLOADS_KEPT = dt.timedelta(days=30)

#: What a purge counts, in the order it is shown, with a label for people.
KINDS = {
    "leavers": "members who left (register rows, with their letters)",
    "leaver_links": "links to those members",
    "leaver_contacts": "adults linked only to those members",
    "messages": "messages (bodies)",
    "message_copies": "delivery rows of those messages",
    "replies": "replies texted to the school",
    "audit_events": "audit trail events",
    "uploads": "uploaded MIS files left waiting (never applied or discarded)",
    "sync_files": "MIS files a drop folder gave (its done/ and failed/), unfinished uploads "
    "left in it, and work folders of syncs that stopped",
}


def months_before(moment: dt.datetime, months: int) -> dt.datetime:
    """The same time ``months`` calendar months earlier (the 31st becomes the month's last day)."""
    year, month0 = divmod(moment.year * 12 + moment.month - 1 - months, 12)
    day = min(moment.day, calendar.monthrange(year, month0 + 1)[1])
    return moment.replace(year=year, month=month0 + 1, day=day)


def retention_policy(school: School) -> RetentionPolicy:
    """The school's policy: the saved one, or the defaults (unsaved) if it never changed them."""
    policy = RetentionPolicy.objects.filter(school=school).first()
    return policy if policy is not None else RetentionPolicy(school=school)


def retention_policy_set(
    *, school: School, leavers_months: int, messages_months: int, audit_years: int, actor: Actor
) -> RetentionPolicy:
    """Change the school's retention periods (administrators); audited with the new values."""
    values = {
        "leavers_months": leavers_months,
        "messages_months": messages_months,
        "audit_years": audit_years,
    }
    for name, value in values.items():
        low, high = LIMITS[name]
        if name == "audit_years" and value < low:
            raise ValidationError(
                f"the audit trail is kept at least {low} years: a school may keep it longer, "
                "never shorter"
            )
        if not low <= value <= high:
            raise ValidationError(f"{name.replace('_', ' ')} must be from {low} to {high}")
    label, actor_id = actor_parts(actor)
    with transaction.atomic():
        policy, _ = RetentionPolicy.objects.select_for_update().get_or_create(school=school)
        changed = [name for name, value in values.items() if getattr(policy, name) != value]
        if not changed:
            return policy
        for name in changed:
            setattr(policy, name, values[name])
        policy.save(update_fields=changed)
        audit_record(
            school=school,
            actor_label=label,
            actor_id=actor_id,
            action="retention.changed",
            obj=policy,
            # Periods, not personal data.
            detail={name: values[name] for name in changed},
        )
    return policy


@dataclass(frozen=True)
class Cutoffs:
    leavers: dt.datetime
    messages: dt.datetime
    audit: dt.datetime
    uploads: dt.datetime

    def as_detail(self) -> dict[str, str]:
        return {k: v.date().isoformat() for k, v in vars(self).items()}


def cutoffs(policy: RetentionPolicy, now: dt.datetime) -> Cutoffs:
    messages = months_before(now, policy.messages_months)
    return Cutoffs(
        leavers=months_before(now, policy.leavers_months),
        messages=messages,
        # A period saved before the floor existed is read as the floor.
        audit=months_before(now, max(policy.audit_years, AUDIT_YEARS_MIN) * 12),
        uploads=max(now - UPLOADS_KEPT, messages),
    )


def _due(school: School, cut: Cutoffs) -> dict[str, QuerySet[Any]]:
    """What the policy says should go, as querysets (nothing is read yet)."""
    leavers = Member.objects.filter(
        school=school, status=Member.Status.LEFT, left_at__isnull=False, left_at__lt=cut.leavers
    )
    # An adult stays while anyone but a purged leaver is (or is waiting to be) linked to them.
    other_links = Link.objects.filter(adult=OuterRef("pk")).exclude(student__in=leavers)
    other_waiting = PendingLink.objects.filter(
        adult=OuterRef("pk"), status=PendingLink.Status.WAITING
    ).exclude(student__in=leavers)
    leaver_contacts = (
        Adult.objects.filter(
            school=school, pk__in=Link.objects.filter(student__in=leavers).values("adult_id")
        )
        .exclude(Exists(other_links))
        .exclude(Exists(other_waiting))
    )
    messages = Message.objects.filter(school=school, created_at__lt=cut.messages).exclude(
        # A copy still on its way is never pulled from under a worker.
        Exists(
            Delivery.objects.filter(
                message=OuterRef("pk"), status__in=(Status.QUEUED, Status.SENDING)
            )
        )
    )
    return {
        "leavers": leavers,
        "leaver_links": Link.objects.filter(school=school, student__in=leavers),
        "leaver_contacts": leaver_contacts,
        "messages": messages,
        "message_copies": Delivery.objects.filter(message__in=messages),
        "replies": InboundSms.objects.filter(school=school, received_at__lt=cut.messages),
        "audit_events": AuditEvent.objects.filter(school=school, at__lt=cut.audit),
    }


def retention_preview(school: School, *, now: dt.datetime | None = None) -> dict[str, int]:
    """What a purge now would remove, by kind (counts only); reads only."""
    now = now or timezone.now()
    cut = cutoffs(retention_policy(school), now)
    due = _due(school, cut)
    counts = {kind: due[kind].count() for kind in due}
    counts["uploads"] = len(uploads_unneeded(school.pk, waiting_before=cut.uploads))
    counts["sync_files"] = len(taken_files(school.pk, before=cut.uploads))
    return {kind: counts[kind] for kind in KINDS}


def _purge_audit(school: School, cutoff: dt.datetime) -> int:
    # The one place the purge removes audit events: through the audit app's own purge, the
    # only way out of the append-only trail.
    return audit_purge_before(school=school, cutoff=cutoff)


def retention_purge(
    *, school: School, actor: Actor, now: dt.datetime | None = None, scheduled: bool = False
) -> dict[str, int]:
    """Remove what the school's policy says it no longer needs, in one transaction; returns
    the counts by kind. A scheduled purge that removed nothing leaves no audit event (the
    policy's ``last_purge_at`` still says it ran)."""
    now = now or timezone.now()
    label, actor_id = actor_parts(actor)
    with transaction.atomic():
        policy, _ = RetentionPolicy.objects.select_for_update().get_or_create(school=school)
        cut = cutoffs(policy, now)
        due = _due(school, cut)
        counts = {kind: due[kind].count() for kind in due}
        # Adults first (their ids depend on the leavers still being there), then the leavers
        # with their links, letters and waiting links; copies go with their messages.
        people = ("forename", "surname", "email", "mobile")
        contacts = list(Adult.objects.filter(pk__in=due["leaver_contacts"]).only(*people))
        leavers = list(Member.objects.filter(pk__in=due["leavers"]).only(*people))
        # The import history named them (who was created, linked, the data issues).
        redacted = (
            redact_import_history(school, [*contacts, *leavers]) if contacts or leavers else 0
        )
        Adult.objects.filter(pk__in=[a.pk for a in contacts]).delete()
        due["leaver_links"].delete()
        Member.objects.filter(pk__in=[m.pk for m in leavers]).delete()
        Message.objects.filter(pk__in=list(due["messages"].values_list("pk", flat=True))).delete()
        due["replies"].delete()
        counts["audit_events"] = _purge_audit(school, cut.audit)
        # An import whose process stopped would hold its stored file for ever: it is recorded
        # as abandoned, and the file goes now.
        imports_abandon(school_id=school.pk)
        counts["uploads"] = uploads_forget(
            school.pk, uploads_unneeded(school.pk, waiting_before=cut.uploads)
        )
        counts["sync_files"] = taken_forget(taken_files(school.pk, before=cut.uploads))
        counts = {kind: counts[kind] for kind in KINDS}
        policy.last_purge_at = now
        policy.last_purge = counts
        policy.save(update_fields=["last_purge_at", "last_purge"])
        if any(counts.values()) or not scheduled:
            audit_record(
                school=school,
                actor_label=label,
                actor_id=actor_id,
                action="retention.purged",
                obj=policy,
                detail={
                    "counts": counts,
                    "cutoffs": cut.as_detail(),
                    "import_runs_redacted": redacted,
                },
            )
    return counts


def retention_run_due(*, now: dt.datetime | None = None) -> dict[int, dict[str, int]]:
    """The daily purge of every school whose last purge is a day old (the worker's task).

    Safe with several workers: each school is claimed with a conditional UPDATE of its
    policy's ``last_purge_at`` in the purge's own transaction, so only one worker's UPDATE
    matches (PostgreSQL re-checks the condition after the first commits; SQLite writes one at a
    time), and a purge that fails rolls its claim back for the next sweep."""
    now = now or timezone.now()
    RetentionPolicy.objects.bulk_create(
        [RetentionPolicy(school=s) for s in School.objects.filter(retention__isnull=True)],
        ignore_conflicts=True,
    )
    done: dict[int, dict[str, int]] = {}
    due = Q(last_purge_at__isnull=True) | Q(last_purge_at__lte=now - PURGE_EVERY)
    for policy_id, school_id in RetentionPolicy.objects.filter(due).values_list("pk", "school_id"):
        with transaction.atomic():
            if not RetentionPolicy.objects.filter(due, pk=policy_id).update(last_purge_at=now):
                continue  # another worker claimed it
            school = School.objects.get(pk=school_id)
            done[school_id] = retention_purge(
                school=school, actor="retention", now=now, scheduled=True
            )
    return done
