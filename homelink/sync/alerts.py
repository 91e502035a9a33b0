"""The staleness alert: a school whose sync has not succeeded for HOMELINK_SYNC_STALE_HOURS
(36 by default) has its administrators emailed once, saying why in plain English; the next
success re-arms it. Not one email per failed attempt: the claim (``alerted_at``) is taken with
a conditional UPDATE, so of several sweeping workers only one sends it."""

from __future__ import annotations

import datetime as dt
import logging
from functools import partial
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from homelink.mis.models import ImportRun
from homelink.staff.models import Role
from homelink.staff.selectors import confirmed_memberships
from homelink.sync.models import VIA, SyncSource

logger = logging.getLogger(__name__)

#: Runs that brought the register up to date from the MIS.
SUCCEEDED = (ImportRun.Status.APPLIED, ImportRun.Status.UNCHANGED)


def stale_before(now: dt.datetime) -> dt.datetime:
    return now - dt.timedelta(hours=settings.HOMELINK_SYNC_STALE_HOURS)


def _succeeded(after: Any) -> Exists:
    """A run from the sync's own source that brought the register up to date after ``after``:
    the sync's own, or an administrator's decision to apply a file the sync had to stop."""
    return Exists(
        ImportRun.objects.filter(
            school_id=OuterRef("school_id"),
            source=OuterRef("kind"),
            status__in=SUCCEEDED,
            finished_at__gt=after,
        )
    )


def decisions(school_id: int, kind: str) -> QuerySet[ImportRun]:
    """Runs in which an administrator applied a file the sync of ``kind`` had fetched and had to
    stop (the leavers guard, another school's name): successes of the sync's source that the
    sync did not make itself. :func:`_succeeded` counts them with the sync's own, and
    :func:`~homelink.sync.services.sync_note_decisions` writes them onto the sync's state."""
    return ImportRun.objects.filter(
        school_id=school_id, source=kind, status__in=SUCCEEDED, finished_at__isnull=False
    ).exclude(started_via=VIA)


def stale_syncs(now: dt.datetime) -> QuerySet[SyncSource]:
    """Syncs with no success since the threshold (counting from when a sync that never
    succeeded was set up)."""
    before = stale_before(now)
    quiet = Q(last_success_at__lt=before) | Q(last_success_at__isnull=True, created_at__lt=before)
    return SyncSource.objects.filter(quiet).exclude(_succeeded(before))


def sync_alert_stale(*, now: dt.datetime | None = None) -> list[int]:
    """Claim and send the alert of every stale sync not yet alerted; the school ids. An alert
    answered by a success since (however it came) is re-armed first."""
    now = now or timezone.now()
    SyncSource.objects.filter(alerted_at__isnull=False).filter(
        _succeeded(OuterRef("alerted_at"))
    ).update(alerted_at=None)
    alerted = []
    candidates = stale_syncs(now).filter(alerted_at__isnull=True)
    for pk, school_id in candidates.values_list("pk", "school_id"):
        with transaction.atomic():
            if candidates.filter(pk=pk).update(alerted_at=now):
                transaction.on_commit(partial(_send, pk))
                alerted.append(school_id)
    return alerted


def _send(config_id: int) -> None:
    config = SyncSource.objects.select_related("school").filter(pk=config_id).first()
    if config is None:
        return
    school = config.school
    to = sorted(
        {
            m.user.email
            for m in confirmed_memberships()
            .filter(school=school, role=Role.ADMINISTRATOR)
            .select_related("user")
            if m.user.email and m.user.is_active
        }
    )
    if not to:
        logger.warning("sync of school %s is stale and it has no administrator to tell", school.pk)
        return
    context = {
        "school_name": school.name,
        "source": config.get_kind_display(),
        "where": config.where,
        "since": config.last_success_at,
        "set_up": config.created_at,
        "hours": int(settings.HOMELINK_SYNC_STALE_HOURS),
        "reason": config.last_error,
        "link": settings.HOMELINK_PUBLIC_URL.rstrip("/")
        + reverse("console:imports", kwargs={"urn": school.urn}),
    }
    subject = render_to_string("sync/stale_subject.txt", context).strip()
    body = render_to_string("sync/stale_email.txt", context)
    try:
        send_mail(subject, body, None, to)
    except Exception as exc:  # the alert is claimed; a mail failure is logged, by kind only
        logger.warning(
            "stale sync alert for school %s not emailed: %s", school.pk, type(exc).__name__
        )
