"""Trusts and their schools, and the trust's staff roles: the services' rules, as the command
line and the console rely on them. A school is in one trust at most; bad input is refused in
plain words with nothing changed; a trust with administrators keeps one; each change is in the
audit trail of the schools it concerns."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError

from homelink.audit.actions import ACTION_WORDS
from homelink.audit.models import AuditEvent
from homelink.schools.models import School
from homelink.staff.models import Role
from homelink.staff.testing import confirm_email_directly
from homelink.trusts.models import Trust, TrustMembership, TrustSchool
from homelink.trusts.selectors import (
    trust_membership,
    trust_membership_at,
    trust_of,
    trust_schools,
)
from homelink.trusts.services import (
    trust_add,
    trust_add_school,
    trust_member_remove,
    trust_member_set_role,
    trust_remove_school,
)
from homelink.trusts.tests.factories import make_user as _make_user


def make_user(email: str) -> Any:
    """A staff account (typed Any: the project's user model, not AbstractBaseUser)."""
    return _make_user(email)


def new_school(urn: str, name: str) -> School:
    return School.objects.create(urn=urn, name=name, la_code="838", estab=urn[-4:])


@pytest.fixture
def schools(db: None) -> list[School]:
    return [
        new_school("200001", "Oak Primary"),
        new_school("200002", "Ash Academy"),
        new_school("200003", "Elm High"),
    ]


def member(trust: Trust, email: str, role: str) -> TrustMembership:
    user = make_user(email)
    confirm_email_directly(user)
    return TrustMembership.objects.create(user=user, trust=trust, role=role)


def actions(school: School) -> list[str]:
    return list(
        AuditEvent.objects.filter(school=school).order_by("pk").values_list("action", flat=True)
    )


def test_a_trust_is_made_with_its_schools_each_recorded_in_its_own_trail(schools) -> None:
    oak, ash, elm = schools
    trust = trust_add(name="  Forest   Learning Trust ", schools=[oak, ash], actor="cli")
    assert trust.name == "Forest Learning Trust"
    assert list(trust_schools(trust)) == [ash, oak]
    assert trust_of(oak) == trust and trust_of(elm) is None
    assert actions(oak) == ["trust.school_added"] and actions(ash) == ["trust.school_added"]
    assert actions(elm) == []
    event = AuditEvent.objects.get(school=oak)
    assert event.detail == {"trust_id": trust.pk, "trust": "Forest Learning Trust"}
    assert event.actor_label == "cli"


def test_a_school_in_another_trust_is_refused_and_nothing_is_made(schools) -> None:
    oak, ash, _ = schools
    first = trust_add(name="First Trust", schools=[oak], actor="cli")
    with pytest.raises(ValidationError) as refused:
        trust_add(name="Second Trust", schools=[ash, oak], actor="cli")
    assert "Oak Primary (200001) is already in the trust First Trust" in refused.value.messages[0]
    assert "take it out of that trust first" in refused.value.messages[0]
    assert not Trust.objects.filter(name="Second Trust").exists()
    assert trust_of(ash) is None and trust_of(oak) == first

    second = trust_add(name="Second Trust", actor="cli")
    with pytest.raises(ValidationError, match="already in the trust First Trust"):
        trust_add_school(trust=second, school=oak, actor="cli")
    with pytest.raises(ValidationError, match="already in First Trust"):
        trust_add_school(trust=first, school=oak, actor="cli")
    assert TrustSchool.objects.filter(school=oak).get().trust == first


@pytest.mark.parametrize(
    ("name", "says"),
    [("", "give the trust's name"), ("x" * 201, "at most 200 characters")],
)
def test_a_bad_name_is_refused(db, name: str, says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        trust_add(name=name, actor="cli")
    assert not Trust.objects.exists()


def test_two_trusts_cannot_share_a_name_in_any_case(db) -> None:
    trust_add(name="Oak Trust", actor="cli")
    with pytest.raises(ValidationError, match="already a trust called oak trust"):
        trust_add(name="oak trust", actor="cli")
    assert Trust.objects.count() == 1


def test_a_school_leaves_the_trust_and_can_join_another(schools) -> None:
    oak, *_ = schools
    first = trust_add(name="First Trust", schools=[oak], actor="cli")
    second = trust_add(name="Second Trust", actor="cli")
    with pytest.raises(ValidationError, match="is not in Second Trust"):
        trust_remove_school(trust=second, school=oak, actor="cli")
    trust_remove_school(trust=first, school=oak, actor="cli")
    assert trust_of(oak) is None
    trust_add_school(trust=second, school=oak, actor="cli")
    assert trust_of(oak) == second
    assert actions(oak) == ["trust.school_added", "trust.school_removed", "trust.school_added"]


def test_a_trust_role_counts_only_while_the_school_is_in_the_trust_and_the_email_is_confirmed(
    schools,
) -> None:
    oak, ash, _ = schools
    trust = trust_add(name="Trust", schools=[oak], actor="cli")
    confirmed = member(trust, "head@trust.example", Role.VIEWER)
    unconfirmed = TrustMembership.objects.create(
        user=make_user("nobody.proved@trust.example"), trust=trust, role=Role.ADMINISTRATOR
    )
    assert trust_membership(confirmed.user, trust) == confirmed
    assert trust_membership_at(confirmed.user, oak.urn) == confirmed
    assert trust_membership_at(confirmed.user, ash.urn) is None
    # An account nobody proved the address of holds nothing, whatever its role says.
    assert trust_membership(unconfirmed.user, trust) is None
    assert trust_membership_at(unconfirmed.user, oak.urn) is None
    # Switched off: nothing either.
    confirmed.user.is_active = False
    confirmed.user.save(update_fields=["is_active"])
    assert trust_membership(confirmed.user, trust) is None
    confirmed.user.is_active = True
    confirmed.user.save(update_fields=["is_active"])
    trust_remove_school(trust=trust, school=oak, actor="cli")
    assert trust_membership_at(confirmed.user, oak.urn) is None


def test_a_trust_with_administrators_keeps_one(schools) -> None:
    oak, ash, _ = schools
    trust = trust_add(name="Trust", schools=[oak, ash], actor="cli")
    head = member(trust, "head@trust.example", Role.ADMINISTRATOR)
    clerk = member(trust, "clerk@trust.example", Role.VIEWER)
    with pytest.raises(ValidationError, match="only administrator"):
        trust_member_set_role(membership=head, role=Role.SENDER, actor="cli")
    with pytest.raises(ValidationError, match="only administrator"):
        trust_member_remove(membership=head, actor="cli")
    assert TrustMembership.objects.get(pk=head.pk).role == Role.ADMINISTRATOR

    trust_member_set_role(membership=clerk, role=Role.ADMINISTRATOR, actor=head.user)
    trust_member_set_role(membership=head, role=Role.VIEWER, actor=clerk.user)
    assert TrustMembership.objects.get(pk=head.pk).role == Role.VIEWER
    trust_member_remove(membership=head, actor=clerk.user)
    assert not TrustMembership.objects.filter(pk=head.pk).exists()
    # Every school of the trust sees who can no longer see its data, by id and role.
    for school in (oak, ash):
        assert actions(school)[-3:] == [
            "trust.staff_role_changed",
            "trust.staff_role_changed",
            "trust.staff_removed",
        ]
        removed = AuditEvent.objects.filter(school=school, action="trust.staff_removed").get()
        assert removed.detail == {"trust_id": trust.pk, "role": "viewer", "user_id": head.user_id}
        assert removed.actor_id == clerk.user_id


def test_a_trust_with_no_administrator_may_lose_its_last_viewer(schools) -> None:
    trust = trust_add(name="Trust", schools=schools[:1], actor="cli")
    only = member(trust, "only@trust.example", Role.VIEWER)
    trust_member_remove(membership=only, actor="cli")
    assert not TrustMembership.objects.exists()


def test_a_bad_role_is_refused_with_the_roles(schools) -> None:
    trust = trust_add(name="Trust", schools=schools[:1], actor="cli")
    clerk = member(trust, "clerk@trust.example", Role.VIEWER)
    with pytest.raises(ValidationError, match="choose administrator, sender, viewer"):
        trust_member_set_role(membership=clerk, role="owner", actor="cli")


#: The actions this package records, and the words the audit trail shows for them.
TRUST_ACTION_WORDS = {
    "trust.school_added": "Joined a trust",
    "trust.school_removed": "Left a trust",
    "trust.staff_invited": "Invited a member of the trust's staff",
    "trust.staff_invitation_resent": "Resent a trust staff invitation",
    "trust.staff_invitation_revoked": "Revoked a trust staff invitation",
    "trust.staff_added": "Added a member of the trust's staff",
    "trust.staff_invitation_accepted": "A trust staff invitation was accepted",
    "trust.staff_role_changed": "Changed a trust staff member's role",
    "trust.staff_removed": "Removed a member of the trust's staff",
}


def test_every_trust_action_has_words_for_the_audit_trail() -> None:
    missing = {
        code: words for code, words in TRUST_ACTION_WORDS.items() if code not in ACTION_WORDS
    }
    assert not missing, f"add to homelink/audit/actions.py ACTION_WORDS: {missing}"


# --- The operators' admin ------------------------------------------------------------------------


def test_an_operator_changes_a_trust_role_in_the_admin_through_the_rules(client, schools) -> None:
    from django.urls import reverse

    from homelink.staff.tests.operators import verified_session

    verified_session(client)
    trust = trust_add(name="Trust", schools=schools[:2], actor="cli")
    head = member(trust, "head@trust.example", Role.ADMINISTRATOR)
    clerk = member(trust, "clerk@trust.example", Role.VIEWER)
    change = reverse("admin:trusts_trustmembership_change", args=[head.pk])
    response = client.post(change, {"role": "viewer"}, follow=True)
    assert "only administrator" in response.content.decode()
    assert TrustMembership.objects.get(pk=head.pk).role == Role.ADMINISTRATOR

    client.post(reverse("admin:trusts_trustmembership_change", args=[clerk.pk]), {"role": "sender"})
    assert TrustMembership.objects.get(pk=clerk.pk).role == Role.SENDER
    assert actions(schools[0])[-1] == "trust.staff_role_changed"
    assert actions(schools[1])[-1] == "trust.staff_role_changed"
    # Trusts and invitations are to look at only: nothing is added or changed there.
    assert client.get(reverse("admin:trusts_trust_add")).status_code == 403
    page = client.get(reverse("admin:trusts_trust_change", args=[trust.pk])).content.decode()
    assert "Oak Primary" in page and "Ash Academy" in page
