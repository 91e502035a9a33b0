"""``homelink school``: the operator's commands for a school."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from homelink.audit.models import AuditEvent
from homelink.schools.models import School

pytestmark = pytest.mark.django_db


def school_cmd(*args: str) -> str:
    out = StringIO()
    call_command("school", *args, stdout=out)
    return out.getvalue()


def test_credits_are_shown_added_and_never_taken_below_zero(school: School) -> None:
    assert "0 SMS credits" in school_cmd("credits", "100001")
    assert "2,500 SMS credits" in school_cmd("credits", "100001", "2500")
    assert "2,000 SMS credits" in school_cmd("credits", "100001", "-500")
    with pytest.raises(CommandError, match="cannot remove 5,000"):
        school_cmd("credits", "100001", "-5000")
    assert School.objects.get(pk=school.pk).sms_credits == 2000
    changes = AuditEvent.objects.filter(action="school.sms_credits_changed")
    assert [e.detail["change"] for e in changes.order_by("id")] == [2500, -500]
