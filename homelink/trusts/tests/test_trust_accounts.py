"""A trust role is a staff role for the account's sake: erasing the person as a parent keeps the
login, and deleting the account ends the trust role through the trust's own rule."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from homelink.accounts.services import AccountError, account_delete
from homelink.privacy.erasure import account_fate
from homelink.register.models import Adult
from homelink.schools.models import School
from homelink.staff.models import Role
from homelink.staff.testing import confirm_email_directly
from homelink.trusts.models import Trust, TrustMembership
from homelink.trusts.services import trust_add
from homelink.trusts.tests.factories import make_user


@pytest.fixture
def trust(school: School) -> Trust:
    return trust_add(name="Oak Trust", schools=[school], actor="test")


def test_erasing_a_parent_who_is_trust_staff_keeps_their_login(
    school: School, trust: Trust
) -> None:
    user = make_user("pat@oak.trust.example")
    TrustMembership.objects.create(user=user, trust=trust, role=Role.VIEWER)
    adult = Adult.objects.create(
        school=school, forename="Pat", surname="Smith", email=user.email, account=user
    )
    fate = account_fate(adult)
    assert fate.has_account and not fate.delete
    assert "trust" in fate.why


def test_deleting_the_account_of_a_trusts_only_administrator_is_refused(trust: Trust) -> None:
    user = make_user("head@oak.trust.example")
    TrustMembership.objects.create(user=user, trust=trust, role=Role.ADMINISTRATOR)
    with pytest.raises(AccountError, match="only administrator of the trust Oak Trust"):
        account_delete(user=user)
    assert TrustMembership.objects.filter(user=user).exists()
    other = make_user("deputy@oak.trust.example")
    TrustMembership.objects.create(user=other, trust=trust, role=Role.ADMINISTRATOR)
    user_id = user.pk
    account_delete(user=user)
    assert not TrustMembership.objects.filter(user_id=user_id).exists()


def test_trust_only_staff_are_sent_to_the_console_and_offered_it(
    client: Client, trust: Trust
) -> None:
    user = make_user("central@oak.trust.example")
    confirm_email_directly(user)
    TrustMembership.objects.create(user=user, trust=trust, role=Role.VIEWER)
    signed_in = client.post(
        reverse("login"),
        {"email": user.email, "password": "correct horse battery staple"},
    )
    assert signed_in.status_code == 302
    assert signed_in["Location"] == reverse("console:home")
    assert "Go to the staff console" in client.get("/").content.decode()
