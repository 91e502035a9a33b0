"""The audit trail is append-only in the application: no update or delete through the ORM or
the operators' admin, and one way out for old events, the retention purge."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth import get_user_model
from django.db import transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from homelink.audit.models import AuditEvent, AuditTrailIsAppendOnly
from homelink.audit.services import audit_access, audit_purge_before, audit_record
from homelink.schools.models import School
from homelink.staff.tests.operators import verified_session

pytestmark = pytest.mark.django_db


@pytest.fixture
def other_school(db: None) -> School:
    return School.objects.create(urn="100009", name="Elsewhere School", la_code="838", estab="4999")


@pytest.fixture
def event(school: School) -> AuditEvent:
    return audit_record(school=school, actor_label="cli", action="register.exported")


def _unchanged(event: AuditEvent) -> None:
    stored = AuditEvent.objects.get(pk=event.pk)
    assert (stored.action, stored.actor_label, stored.detail) == ("register.exported", "cli", {})


def test_saving_an_existing_event_is_refused(event: AuditEvent) -> None:
    event.action = "nothing.happened"
    with pytest.raises(AuditTrailIsAppendOnly):
        event.save()
    with pytest.raises(AuditTrailIsAppendOnly):
        event.save(update_fields=["action"])
    fetched = AuditEvent.objects.get(pk=event.pk)
    fetched.detail = {"rows": 1}
    with pytest.raises(AuditTrailIsAppendOnly):
        fetched.save()
    _unchanged(event)


def test_queryset_update_and_bulk_update_are_refused(event: AuditEvent) -> None:
    with pytest.raises(AuditTrailIsAppendOnly):
        AuditEvent.objects.filter(pk=event.pk).update(action="nothing.happened")
    with pytest.raises(AuditTrailIsAppendOnly):
        AuditEvent.objects.update(actor_label="someone")
    event.action = "nothing.happened"
    # (bulk_update's own transaction has no savepoint: give it one, as a caller's would.)
    with pytest.raises(AuditTrailIsAppendOnly), transaction.atomic():
        AuditEvent.objects.bulk_update([event], ["action"])
    _unchanged(event)


def test_deleting_is_refused(event: AuditEvent, school: School) -> None:
    with pytest.raises(AuditTrailIsAppendOnly):
        event.delete()
    with pytest.raises(AuditTrailIsAppendOnly):
        AuditEvent.objects.filter(pk=event.pk).delete()
    with pytest.raises(AuditTrailIsAppendOnly):
        AuditEvent.objects.all().delete()
    with pytest.raises(AuditTrailIsAppendOnly):
        school.audit_events.all().delete()
    _unchanged(event)


def test_new_events_are_still_written_one_by_one_and_in_bulk(school: School) -> None:
    audit_record(school=school, actor_label="cli", action="a.one")
    AuditEvent.objects.bulk_create([AuditEvent(school=school, actor_label="cli", action="a.two")])
    assert AuditEvent.objects.filter(school=school).count() == 2


def test_deleting_a_staff_account_keeps_its_events(school: School) -> None:
    """The actor's account may go (a member of staff deleted by an operator): the event stays,
    and says whose id it was."""
    user = get_user_model().objects.create_user("gone@example.org", "gone@example.org", "pw")
    event = audit_access(school=school, actor=user, action="member.viewed")
    user_id = user.pk
    user.delete()
    stored = AuditEvent.objects.get(pk=event.pk)
    assert stored.actor_id is None
    assert stored.actor_label == f"user:{user_id}"


def _at(school: School, when: dt.datetime, action: str = "old.event") -> AuditEvent:
    return AuditEvent.objects.create(school=school, actor_label="cli", action=action, at=when)


def test_the_purge_deletes_only_older_events_of_that_school(
    school: School, other_school: School
) -> None:
    now = timezone.now()
    cutoff = now - dt.timedelta(days=6 * 365)
    old = [_at(school, cutoff - dt.timedelta(days=d)) for d in (1, 30, 400)]
    at_cutoff = _at(school, cutoff)
    recent = _at(school, now - dt.timedelta(days=1))
    elsewhere = _at(other_school, cutoff - dt.timedelta(days=30))

    assert audit_purge_before(school=school, cutoff=cutoff) == 3

    left = set(AuditEvent.objects.values_list("pk", flat=True))
    assert not left & {e.pk for e in old}
    assert {at_cutoff.pk, recent.pk, elsewhere.pk} <= left
    # Nothing more to purge: the second run deletes nothing.
    assert audit_purge_before(school=school, cutoff=cutoff) == 0


def test_the_purge_needs_an_aware_cutoff(school: School) -> None:
    with pytest.raises(ValueError, match="aware"):
        audit_purge_before(school=school, cutoff=dt.datetime(2020, 1, 1))


# --- the operators' admin -------------------------------------------------------------------


def test_the_admin_shows_events_but_cannot_add_change_or_delete_them(
    client: Client, event: AuditEvent
) -> None:
    verified_session(client)
    changelist = client.get(reverse("admin:audit_auditevent_changelist"))
    assert changelist.status_code == 200
    assert "register.exported" in changelist.content.decode()
    # Django's bulk "delete selected" is not offered, and posting it anyway deletes nothing.
    assert 'value="delete_selected"' not in changelist.content.decode()
    client.post(
        reverse("admin:audit_auditevent_changelist"),
        {"action": "delete_selected", "_selected_action": [event.pk], "post": "yes"},
    )

    change_url = reverse("admin:audit_auditevent_change", args=[event.pk])
    page = client.get(change_url)
    assert page.status_code == 200  # view-only
    assert 'name="_save"' not in page.content.decode()
    posted = client.post(change_url, {"action": "nothing.happened", "actor_label": "x"})
    assert posted.status_code == 403
    assert client.post(reverse("admin:audit_auditevent_add"), {}).status_code == 403
    delete_url = reverse("admin:audit_auditevent_delete", args=[event.pk])
    assert client.get(delete_url).status_code == 403
    assert client.post(delete_url, {"post": "yes"}).status_code == 403
    _unchanged(event)
