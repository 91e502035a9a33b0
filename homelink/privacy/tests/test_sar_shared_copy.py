"""Subject access on a shared number or address, and a download that fails.

Mary and Dan share a mobile: one copy greets "Mary Smith and Dan Smith" and names both their
children, and it is addressed to Mary. Her export must still say nothing about Dan (found in
review: the greeting of a copy addressed to the subject was copied as it was stored). And a
download whose zip cannot be made leaves no "downloaded" event behind it.
"""

from __future__ import annotations

from typing import Any

import pytest
from reportlab.platypus import SimpleDocTemplate

from homelink.audit.models import AuditEvent
from homelink.messaging.audience import Audience
from homelink.messaging.models import Delivery
from homelink.messaging.services import Draft, message_send
from homelink.privacy import sar
from homelink.privacy.tests.sar_world import export_json, leaks
from homelink.register.models import Adult, Member
from homelink.schools.models import School

pytestmark = [pytest.mark.django_db]


def _send(school: School, students: list[Member], *, mode: str = "sms") -> None:
    message_send(
        school=school,
        draft=Draft(
            mode=mode,
            audience=Audience(students="chosen", student_ids=tuple(s.pk for s in students)),
            subject="About {children}",
            email_body="Dear {name}, about {children}.",
            sms_text="Hello {name}, about {children}",
        ),
        actor="test",
    )


def _export(school: School, admin: Any, adult: Adult) -> bytes:
    request = sar.sar_log(school=school, actor=admin, adult=adult)
    return sar.sar_export(request=request, actor=admin, via="cli").content


def test_a_copy_on_a_shared_number_addressed_to_the_subject_leaves_out_the_co_parent(
    roll: School, admin_a: Any
) -> None:
    mary = Adult.objects.get(school=roll, forename="Mary")
    Adult.objects.filter(school=roll, forename="Dan").update(mobile=mary.mobile)
    _send(roll, [roll.members.get(mis_id="A1")])
    copy = Delivery.objects.get(school=roll, channel="sms")
    # The world as the finding has it: one copy, addressed to Mary, greeting both of them.
    assert copy.adult_id == mary.pk and "Dan" in copy.name

    content = _export(roll, admin_a, mary)
    assert leaks(content, ["Dan"]) == []
    [sent] = export_json(content)["messages"]
    assert sent["body"] == "Hello Mary Smith, about Amy"
    assert sent["to"] == mary.mobile


def test_a_shared_copy_names_only_the_subjects_own_children(roll: School, admin_a: Any) -> None:
    # Jill shares Mary's address, and Jo is Jill's child, not Mary's: the copy addressed to
    # Mary is about Amy and Jo; Mary's export names Amy only, Jill's Jo only.
    mary = Adult.objects.get(school=roll, forename="Mary")
    jill = Adult.objects.get(school=roll, forename="Jill")
    Adult.objects.filter(pk=jill.pk).update(email=mary.email)
    _send(roll, [roll.members.get(mis_id="A1"), roll.members.get(mis_id="B1")], mode="email")
    copy = Delivery.objects.get(school=roll, channel="email", to=mary.email)
    assert sorted(copy.adult_ids) == sorted([mary.pk, jill.pk]) and "Jo" in copy.children

    content = _export(roll, admin_a, mary)
    assert leaks(content, ["Jill", "Jones", jill.email]) == []
    data = export_json(content)
    assert "Jo" not in [link["student"]["forename"] for link in data["links"]]
    [sent] = data["messages"]
    assert (sent["subject"], sent["body"]) == ("About Amy", "Dear Mary Smith, about Amy.")

    jills = export_json(_export(roll, admin_a, jill))["messages"]
    assert [(m["subject"], m["body"]) for m in jills] == [
        ("About Jo", "Dear Jill Jones, about Jo.")
    ]


def test_a_long_message_still_makes_a_pdf(roll: School, admin_a: Any) -> None:
    # A newsletter-length email does not fit on one page: the PDF breaks it across pages.
    mary = Adult.objects.get(school=roll, forename="Mary")
    body = "\n".join(f"Paragraph {n} of this term's newsletter, {{name}}." for n in range(300))
    message_send(
        school=roll,
        draft=Draft(
            mode="email",
            audience=Audience(students="chosen", student_ids=(roll.members.get(mis_id="A1").pk,)),
            subject="Newsletter",
            email_body=body,
        ),
        actor="test",
    )
    content = _export(roll, admin_a, mary)
    assert "Paragraph 299 of this term's newsletter, Mary Smith." in "".join(
        export_json(content)["messages"][0]["body"]
    )
    assert leaks(content, ["Paragraph 299"]) == ["Paragraph 299"], "the PDF holds its end"


def test_a_download_whose_zip_cannot_be_made_leaves_no_trace(
    roll: School, admin_a: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    mary = Adult.objects.get(school=roll, forename="Mary")
    request = sar.sar_log(school=roll, actor=admin_a, adult=mary)

    def fail(*args: Any, **kwargs: Any) -> None:
        raise OSError("disk full")  # ReportLab failing, as it would on a full disk

    monkeypatch.setattr(SimpleDocTemplate, "build", fail)
    with pytest.raises(OSError, match="disk full"):
        sar.sar_export(request=request, actor=admin_a, via="console")
    assert not AuditEvent.objects.filter(action="privacy.sar_downloaded").exists()
    monkeypatch.undo()

    sar.sar_export(request=request, actor=admin_a, via="console")
    assert AuditEvent.objects.filter(action="privacy.sar_downloaded").count() == 1
