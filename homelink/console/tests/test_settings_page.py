"""The settings page: administrators change the school's settings; viewers read them."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from homelink.audit.models import AuditEvent
from homelink.schools.models import School


def settings_url(school: School) -> str:
    return reverse("console:settings", kwargs={"urn": school.urn})


VALID = {
    "name": "Example Academy",
    "code_expiry_days": "90",
    "sms_sender": "",
    "phone_region": "GB",
    "large_send_threshold": "1000",
}


@pytest.fixture
def signed_in(client, admin_a):
    client.force_login(admin_a)
    return client


def test_the_form_shows_the_current_values_and_the_regions(signed_in, school):
    html = signed_in.get(settings_url(school)).content.decode()
    assert 'value="Example Academy"' in html
    assert 'value="90"' in html
    for region in ("GB", "GG", "JE", "IM", "IE", "US", "FR"):
        assert f'<option value="{region}"' in html, region
    assert '<option value="GB" selected>' in html
    assert 'name="csrfmiddlewaretoken"' in html
    for label in ("School name", "Import lower-priority contacts", "SMS sender name"):
        assert label in html


def test_save_settings(signed_in, school, admin_a):
    response = signed_in.post(
        settings_url(school),
        {
            "name": "  Example  Academy Trust ",
            "import_lower_priority": "on",
            "code_expiry_days": "30",
            "sms_sender": "EX Academy",
            "phone_region": "JE",
            "large_send_threshold": "1000",
        },
        follow=True,
    )
    assert "Settings saved." in [str(m) for m in response.context["messages"]]
    school.refresh_from_db()
    assert school.name == "Example Academy Trust"
    assert school.import_lower_priority is True
    assert school.code_expiry_days == 30
    assert school.sms_sender == "EX Academy"
    assert school.phone_region == "JE"
    event = AuditEvent.objects.get(action="school.settings_changed")
    assert event.actor_label == f"user:{admin_a.pk}"
    assert sorted(event.detail["fields"]) == [
        "code_expiry_days",
        "import_lower_priority",
        "name",
        "phone_region",
        "sms_sender",
    ]


def test_saving_unchanged_settings_changes_nothing(signed_in, school):
    response = signed_in.post(settings_url(school), VALID, follow=True)
    assert "Nothing was changed." in [str(m) for m in response.context["messages"]]
    assert not AuditEvent.objects.filter(action="school.settings_changed").exists()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("name", "   ", "Enter the school&#x27;s name."),
        ("code_expiry_days", "0", "between 1 and 365"),
        ("code_expiry_days", "366", "between 1 and 365"),
        ("code_expiry_days", "ten", "whole number of days"),
        ("sms_sender", "TwelveLetter", "at most 11 characters"),
        ("sms_sender", "School!", "Use only letters A to Z"),
        ("sms_sender", "Écolé", "Use only letters A to Z"),
        ("sms_sender", "12345", "at least one letter"),
        ("phone_region", "XX", "Select a valid choice"),
        ("large_send_threshold", "0", "at least 1"),
        ("large_send_threshold", "many", "whole number of messages"),
    ],
)
def test_invalid_settings_are_errors_on_their_field(signed_in, school, field, value, message):
    response = signed_in.post(settings_url(school), {**VALID, field: value})
    assert response.status_code == 400
    html = response.content.decode()
    assert message in html
    assert f'id="id_{field}_error"' in html
    tag = re.search(rf'<(?:input|select)[^>]*name="{field}"[^>]*>', html)
    assert tag is not None
    assert re.search(rf'aria-describedby="[^"]*id_{field}_error"', tag.group(0)), tag.group(0)
    assert 'aria-invalid="true"' in tag.group(0)
    assert 'role="alert"' in html
    school.refresh_from_db()
    assert (school.name, school.code_expiry_days, school.sms_sender, school.phone_region) == (
        "Example Academy",
        90,
        "",
        "GB",
    )


@pytest.mark.parametrize("sender", ["SCHOOL", "St. Mary", "A&B_C-D 9", "x" * 11])
def test_sender_names_that_are_fine(signed_in, school, sender):
    response = signed_in.post(settings_url(school), {**VALID, "sms_sender": sender})
    assert response.status_code == 302, response.content.decode()[:2000]
    school.refresh_from_db()
    assert school.sms_sender == sender


def test_viewers_see_the_values_read_only(client, viewer_a, school):
    School.objects.filter(pk=school.pk).update(sms_sender="EXAMPLE")
    client.force_login(viewer_a)
    html = client.get(settings_url(school)).content.decode()
    assert "<form" not in html.split('id="main"')[1]
    assert "Example Academy" in html and "EXAMPLE" in html and "90 days" in html
    response = client.post(settings_url(school), {**VALID, "name": "Taken Over"})
    assert response.status_code == 403
    school.refresh_from_db()
    assert school.name == "Example Academy"


def test_an_administrator_can_make_a_second_factor_compulsory(client, world_a, admin_a):
    from homelink.audit.models import AuditEvent

    client.force_login(admin_a)
    school = world_a.school
    data = {
        "name": school.name,
        "phone_region": school.phone_region,
        "code_expiry_days": school.code_expiry_days,
        "sms_sender": "",
        "large_send_threshold": school.large_send_threshold,
        "require_second_factor": "on",
    }
    response = client.post(f"/console/{school.urn}/settings/", data)
    assert response.status_code == 302
    school.refresh_from_db()
    assert school.require_second_factor
    assert AuditEvent.objects.filter(school=school, action="school.second_factor_required").exists()


def test_an_administrator_sets_the_large_send_threshold_and_sees_the_credits(
    signed_in, school, admin_a
):
    School.objects.filter(pk=school.pk).update(sms_credits=1234)
    html = signed_in.get(settings_url(school)).content.decode()
    assert "SMS credits: <strong>1234</strong>" in html
    assert 'name="sms_credits"' not in html  # operators add credits, not schools
    response = signed_in.post(settings_url(school), {**VALID, "large_send_threshold": "250"})
    assert response.status_code == 302
    school.refresh_from_db()
    assert school.large_send_threshold == 250
    event = AuditEvent.objects.get(action="school.settings_changed")
    assert event.detail["fields"] == ["large_send_threshold"]


def test_viewers_see_the_threshold_and_the_credits(client, viewer_a, school):
    School.objects.filter(pk=school.pk).update(sms_credits=77, large_send_threshold=300)
    client.force_login(viewer_a)
    html = client.get(settings_url(school)).content.decode()
    assert "300 messages" in html and "<dd>77</dd>" in html


def test_the_threshold_service_refuses_less_than_one(school):
    from django.core.exceptions import ValidationError

    from homelink.schools.services import school_update

    for bad in (0, -5, True, "12"):
        with pytest.raises(ValidationError):
            school_update(school=school, large_send_threshold=bad)
    school_update(school=school, large_send_threshold=1)
    school.refresh_from_db()
    assert school.large_send_threshold == 1
