"""A school to message and the compose form as a person fills it, for the console's message
tests (the fixture ``roll`` is in conftest.py)."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from django.urls import reverse

from homelink.mis.records import Role as MisRole
from homelink.mis.tests.factories import contact, pupil, run_import, staff
from homelink.schools.models import School


def build_roll(school: School) -> School:
    """Year 7: Amy Smith (7A; Mary and Dan), Jo Jones (7B; Jill), Kit Kay (7A; nobody).
    Year 8: Ben Smith (Amy's brother). Year 9: Lou Brown (Zoë, whose name is not GSM-7).
    A teacher. 1,000 SMS credits."""
    school.sms_credits = 1000
    school.save()
    mary = contact(1, "Mary", "Smith", email="mary@example.org", mobile="07700900001")
    dan = contact(1, "Dan", "Smith", mobile="07700900002", responsibility=False)
    jill = contact(1, "Jill", "Jones", email="jill@example.org", mobile="07700900003")
    zoe = contact(1, "Zo\u00eb", "Brown", mobile="07700900004")
    run_import(
        school,
        [
            replace(pupil("A1", "Amy", "Smith", mary, dan, year="7"), reg_group="7A"),
            replace(pupil("B1", "Jo", "Jones", jill, year="7"), reg_group="7B"),
            replace(pupil("C1", "Kit", "Kay", year="7"), reg_group="7A"),
            replace(pupil("A2", "Ben", "Smith", mary, dan, year="8"), reg_group="8B"),
            replace(pupil("D1", "Lou", "Brown", zoe, year="9"), reg_group="9C"),
            staff("S1", "Tess", "Teach", MisRole.TEACHER, email="tess@example.org"),
        ],
    )
    return school


def new_url(school: School) -> str:
    return reverse("console:message_new", kwargs={"urn": school.urn})


def send_url(school: School) -> str:
    return reverse("console:message_send", kwargs={"urn": school.urn})


def draft(**values: Any) -> dict[str, Any]:
    """The compose form as a person fills it: SMS to the parents of year 7."""
    data: dict[str, Any] = {
        "action": "preview",
        "mode": "sms",
        "who": "parents",
        "parents": "all",
        "students": "years",
        "years": ["7"],
        "sms_text": "School closed today \u2013 sorry",
    }
    data.update(values)
    return data


def token_of(page: str) -> str:
    match = re.search(r'name="token" value="([^"]+)"', page)
    assert match is not None, "the preview has no send token"
    return match.group(1)


def preview(client: Any, school: School, **values: Any) -> tuple[str, str]:
    """Preview a draft: (the page, its send token)."""
    response = client.post(new_url(school), draft(**values))
    assert response.status_code == 200, response.content.decode()[:3000]
    page = response.content.decode()
    return page, token_of(page)


def send(client: Any, school: School, token: str, **values: Any) -> Any:
    """Post the preview's form: the draft again, with the token."""
    data = draft(**values)
    data.pop("action")
    return client.post(send_url(school), {**data, "token": token})
