"""The compose form as a person fills it, for the console's message tests (the school to
message is ``roll`` in conftest.py)."""

from __future__ import annotations

import re
from typing import Any

from django.urls import reverse

from homelink.schools.models import School


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
