"""Letters for tests in any app: the clear code, as a parent would read it off the page."""

from __future__ import annotations

from homelink.register.models import Member
from homelink.registration.services import codes_issue
from homelink.schools.models import School


def letter(school: School, upn: str = "A100000000001") -> str:
    student = Member.objects.get(school=school, mis_id=upn)
    [(_, code)] = codes_issue(school=school, members=[student], actor="test")
    return code
