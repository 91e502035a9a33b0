"""The linked-people screen and its actions: each a POST through a named service, audited,
for administrators only (the separation test covers every other role and school)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from homelink.audit.models import AuditEvent
from homelink.register.models import Adult, Link, Member, PendingLink, Source


def url(name: str, world, **ids) -> str:
    return reverse(
        f"console:{name}", kwargs={"urn": world.school.urn, "member_id": world.student.pk, **ids}
    )


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


@pytest.fixture
def signed_in(client, admin_a):
    client.force_login(admin_a)
    return client


def test_the_screen_shows_details_links_and_waiting_links(signed_in, world_a):
    response = signed_in.get(url("member", world_a))
    html = response.content.decode()
    assert response.status_code == 200
    assert "from the MIS — correct them in the MIS" in html
    for name in ("Anne Lovelace", "Court Order", "Manual Carer", "Web Parent"):
        assert name in html
    assert "held for review" in html
    assert "priority 1" in html
    assert "added by staff" in html
    assert url("pending_decide", world_a, pending_id=world_a.pending.pk) in html
    # Imported links are removed in the MIS, so the screen offers no button for them.
    assert url("link_remove", world_a, link_id=world_a.link.pk) in html
    assert url("link_remove", world_a, link_id=world_a.imported_link.pk) not in html


def test_a_viewer_sees_no_buttons(client, viewer_a, world_a):
    client.force_login(viewer_a)
    html = client.get(url("member", world_a)).content.decode()
    assert "Manual Carer" in html
    assert '<form method="post"' not in html


def test_an_adult_members_screen(signed_in, world_a):
    teacher = world_a.staff_member
    response = signed_in.get(
        reverse("console:member", kwargs={"urn": world_a.school.urn, "member_id": teacher.pk})
    )
    assert response.status_code == 200
    assert "Linked people" not in response.content.decode()


def test_set_and_remove_prime(signed_in, world_a, admin_a):
    response = signed_in.post(
        url("link_prime", world_a, link_id=world_a.link.pk), {"prime": "1"}, follow=True
    )
    assert "Manual Carer is now a prime parent." in messages_of(response)
    link = Link.objects.get(pk=world_a.link.pk)
    assert link.prime and link.prime_set_by == Source.MANUAL
    signed_in.post(url("link_prime", world_a, link_id=world_a.imported_link.pk), {"prime": "0"})
    imported = Link.objects.get(pk=world_a.imported_link.pk)
    # Staff's choice holds against later imports (rule 5): it is recorded as manual.
    assert not imported.prime and imported.prime_set_by == Source.MANUAL
    assert (
        AuditEvent.objects.filter(action="link.prime_set", actor_label=f"user:{admin_a.pk}").count()
        == 2
    )


def test_remove_a_manual_link_but_not_an_imported_one(signed_in, world_a, admin_a):
    response = signed_in.post(
        url("link_remove", world_a, link_id=world_a.imported_link.pk), follow=True
    )
    assert any("remove the contact in the MIS" in m for m in messages_of(response))
    assert Link.objects.filter(pk=world_a.imported_link.pk).exists()
    signed_in.post(url("link_remove", world_a, link_id=world_a.link.pk))
    assert not Link.objects.filter(pk=world_a.link.pk).exists()
    event = AuditEvent.objects.get(action="link.removed")
    assert event.actor_id == admin_a.pk
    assert event.detail["source"] == "manual"


def test_record_an_opt_out_only_when_the_person_asked(signed_in, world_a):
    target = url("adult_opt_out", world_a, adult_id=world_a.adult.pk)
    response = signed_in.post(target, {"opted_out": "1"}, follow=True)
    assert any("only when the person asked" in m for m in messages_of(response))
    assert not Adult.objects.get(pk=world_a.adult.pk).opted_out
    signed_in.post(target, {"opted_out": "1", "asked": "on"})
    assert Adult.objects.get(pk=world_a.adult.pk).opted_out
    signed_in.post(target, {"opted_out": "0", "asked": "on"})
    assert not Adult.objects.get(pk=world_a.adult.pk).opted_out
    assert list(
        AuditEvent.objects.filter(action__startswith="person.opted")
        .order_by("pk")
        .values_list("action", "detail")
    ) == [
        ("person.opted_out", {"at_their_request": True}),
        ("person.opted_in", {"at_their_request": True}),
    ]


def test_record_a_members_own_opt_out(signed_in, world_a):
    signed_in.post(url("member_opt_out", world_a), {"opted_out": "1", "asked": "on"})
    assert Member.objects.get(pk=world_a.student.pk).opted_out


def test_opt_out_of_an_adult_not_linked_to_this_member_is_404(signed_in, world_a):
    stranger = Adult.objects.create(
        school=world_a.school, forename="Not", surname="Linked", name_key="not linked"
    )
    response = signed_in.post(
        url("adult_opt_out", world_a, adult_id=stranger.pk), {"opted_out": "1", "asked": "on"}
    )
    assert response.status_code == 404
    assert not Adult.objects.get(pk=stranger.pk).opted_out


def test_approve_a_waiting_link(signed_in, world_a):
    signed_in.post(
        url("pending_decide", world_a, pending_id=world_a.pending.pk), {"decision": "approve"}
    )
    pending = PendingLink.objects.get(pk=world_a.pending.pk)
    assert pending.status == PendingLink.Status.APPROVED and pending.decided_at
    link = Link.objects.get(student=world_a.student, adult=pending.adult)
    # The student already has prime parents, so the approved adult is not made prime.
    assert link.source == Source.WEB and not link.prime
    assert AuditEvent.objects.filter(action="link.approved", object_id=str(pending.pk)).exists()
    again = signed_in.post(
        url("pending_decide", world_a, pending_id=world_a.pending.pk),
        {"decision": "refuse"},
        follow=True,
    )
    assert any("already been decided" in m for m in messages_of(again))


def test_refuse_a_waiting_link(signed_in, world_a):
    signed_in.post(
        url("pending_decide", world_a, pending_id=world_a.pending.pk), {"decision": "refuse"}
    )
    assert PendingLink.objects.get(pk=world_a.pending.pk).status == PendingLink.Status.REFUSED
    assert not Link.objects.filter(student=world_a.student, adult=world_a.pending.adult).exists()


def test_actions_need_csrf(client, admin_a, world_a):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(admin_a)
    response = strict.post(url("link_prime", world_a, link_id=world_a.link.pk), {"prime": "1"})
    assert response.status_code == 403
    assert not Link.objects.get(pk=world_a.link.pk).prime


def test_actions_are_post_only(signed_in, world_a):
    assert signed_in.get(url("link_remove", world_a, link_id=world_a.link.pk)).status_code == 405
    assert Link.objects.filter(pk=world_a.link.pk).exists()
