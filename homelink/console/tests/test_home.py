from __future__ import annotations

from django.urls import reverse

from homelink.console.tests.conftest import member_of
from homelink.staff.models import Role


def test_one_school_goes_straight_to_it(client, school, admin_a):
    client.force_login(admin_a)
    response = client.get(reverse("console:home"))
    assert response["Location"] == reverse("console:dashboard", kwargs={"urn": school.urn})


def test_several_schools_are_listed(client, school, school_b, admin_a):
    member_of(admin_a, school_b, Role.VIEWER)
    client.force_login(admin_a)
    html = client.get(reverse("console:home")).content.decode()
    assert school.name in html and school_b.name in html
    assert reverse("console:dashboard", kwargs={"urn": school_b.urn}) in html


def test_someone_on_no_staff_is_told_so(client, db):
    from homelink.console.tests.conftest import make_user

    client.force_login(make_user("parent@home.example"))
    response = client.get(reverse("console:home"))
    assert response.status_code == 200
    assert "not on the staff of any school" in response.content.decode()
