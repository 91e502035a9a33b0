"""The operators' admin opens every register page (a broken list_display shows up here), once
the operator has given a code from their authenticator (homelink/console/admin_site.py)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from homelink.mis.tests.factories import contact, pupil, run_import
from homelink.schools.models import School
from homelink.staff.tests.operators import verified_operator

pytestmark = pytest.mark.django_db


def test_operators_can_open_every_admin_page(school: School, client: Client) -> None:
    run_import(
        school,
        [
            pupil(
                "A100000000001", "Sam", "Smith", contact(1, "Mary", "Smith", mobile="07700 900001")
            )
        ],
    )
    verified_operator(client, User.objects.create_superuser("operator", "op@example.org", "x"))
    for app, model in [
        ("schools", "school"),
        ("register", "member"),
        ("register", "adult"),
        ("mis", "importrun"),
        ("audit", "auditevent"),
        ("messaging", "message"),
        ("messaging", "delivery"),
        ("messaging", "template"),
        ("messaging", "smsblock"),
        ("messaging", "inboundsms"),
        ("messaging", "gatewayhealth"),
    ]:
        listing = client.get(reverse(f"admin:{app}_{model}_changelist"))
        assert listing.status_code == 200, (app, model)
    from homelink.register.models import Member

    student = Member.objects.get()
    page = client.get(reverse("admin:register_member_change", args=[student.pk]))
    assert page.status_code == 200
    assert b"Mary Smith" in page.content  # the linked adult, in the links inline
