"""A family for the subject access tests: a parent who asks, a co-parent who must not appear,
a sibling whose other contact must not appear either, messages, replies and audit events."""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import User
from django.utils import timezone
from pypdf import PdfReader

from homelink.accounts.models import Parent
from homelink.messaging.audience import Audience
from homelink.messaging.models import Delivery, InboundSms, Message
from homelink.mis.tests.factories import contact, pupil, run_import, staff
from homelink.register.models import Adult, Member
from homelink.register.services import person_opt_out
from homelink.registration.models import SecurityCode
from homelink.registration.services import codes_issue
from homelink.schools.models import School
from homelink.staff.models import Role, StaffMembership
from homelink.staff.testing import confirm_email_directly

#: What identifies the co-parent, the sibling's other contact and the office administrator:
#: none of it may appear in the parent's export.
CORA = ("Cora", "Coparent", "cora@coparent.example", "+447700900222")
STAN = ("Stanislaw", "Stepfather", "stan@stepfather.example", "+447700900333")
OFFICE_EMAIL = "office.admin@school.example"
PAT_EMAIL = "pat@quinlan.example"
PAT_MOBILE = "+447700900111"


@dataclass
class Family:
    school: School
    pat: Adult  # the adult who asks
    cora: Adult  # Ada's and Bea's other parent
    stan: Adult  # Bea's other contact
    ada: Member
    bea: Member
    teacher: Member
    account: User  # Pat's
    admin: User  # the school's administrator
    message: Message


def make_staff_user(email: str, school: School, role: Role) -> User:
    user = User.objects.create_user(
        username=email, email=email, password="correct horse battery staple"
    )
    confirm_email_directly(user)
    StaffMembership.objects.create(user=user, school=school, role=role)
    return user


def build_family(school: School, prefix: str = "A") -> Family:
    run_import(
        school,
        [
            pupil(
                f"{prefix}00000000001",
                "Ada",
                "Lovelace",
                contact(1, "Pat", "Quinlan", email=PAT_EMAIL, mobile="07700 900111"),
                contact(1, CORA[0], CORA[1], email=CORA[2], mobile="07700 900222"),
            ),
            pupil(
                f"{prefix}00000000002",
                "Bea",
                "Lovelace",
                contact(1, "Pat", "Quinlan", email=PAT_EMAIL, mobile="07700 900111"),
                contact(1, CORA[0], CORA[1], email=CORA[2], mobile="07700 900222"),
                contact(1, STAN[0], STAN[1], email=STAN[2], mobile="07700 900333"),
                year="9",
            ),
            staff(f"{prefix}-T1", "Grace", "Hopper", email=f"grace@{prefix.lower()}.example"),
        ],
    )
    pat = Adult.objects.get(school=school, forename="Pat")
    cora = Adult.objects.get(school=school, forename=CORA[0])
    stan = Adult.objects.get(school=school, forename=STAN[0])
    ada = Member.objects.get(school=school, mis_id=f"{prefix}00000000001")
    bea = Member.objects.get(school=school, mis_id=f"{prefix}00000000002")
    teacher = Member.objects.get(school=school, mis_id=f"{prefix}-T1")

    account = User.objects.create_user(
        username=f"pat-{prefix}", email=PAT_EMAIL, password="pat's own password 123"
    )
    Parent.objects.create(user=account, email_verified_at=timezone.now(), mobile=PAT_MOBILE)
    Adult.objects.filter(pk=pat.pk).update(account=account, registered=True, sms_off=True)
    pat.refresh_from_db()

    admin = make_staff_user(
        OFFICE_EMAIL if prefix == "A" else f"office@{prefix.lower()}.example",
        school,
        Role.ADMINISTRATOR,
    )
    # Audit events: one about Pat (by staff), one about Cora that Pat must not see.
    person_opt_out(person=pat, opted_out=True, actor=f"user:{admin.pk}", requested_by_person=True)
    person_opt_out(person=cora, opted_out=True, actor=f"user:{admin.pk}", requested_by_person=True)
    codes_issue(school=school, members=[ada], actor="cli")

    now = timezone.now()
    message = Message.objects.create(
        school=school,
        created_by=admin,
        mode=Message.Mode.EMAIL_ELSE_SMS,
        audience=Audience().to_json(),
        audience_label=Audience().label(),
        subject="Trip for {children}",
        email_body="Dear {name}, the trip for {children} is on Friday.",
        sms_text="Trip on Friday. {school}",
        send_at=now,
        email_count=3,
    )

    def deliver(to: str, adult: Adult, ids: list[int], name: str, status: str) -> None:
        Delivery.objects.create(
            message=message,
            school=school,
            channel="email",
            to=to,
            adult=adult,
            adult_ids=ids,
            name=name,
            children="Ada and Bea",
            status=status,
            next_attempt_at=now,
            sent_at=now,
            status_at=now,
        )

    deliver(PAT_EMAIL, pat, [pat.pk], "Pat Quinlan", Delivery.Status.DELIVERED)
    deliver(CORA[2], cora, [cora.pk], f"{CORA[0]} {CORA[1]}", Delivery.Status.SENT)
    # A copy carried for Pat on an address first addressed to Cora: it greets Cora.
    deliver(PAT_EMAIL, cora, [cora.pk, pat.pk], f"{CORA[0]} {CORA[1]}", Delivery.Status.BOUNCED)

    InboundSms.objects.create(
        school=school, from_number=PAT_MOBILE, text="Pat says thank you", adult=pat
    )
    InboundSms.objects.create(
        school=school, from_number=CORA[3], text="Cora's own reply", adult=cora
    )
    return Family(school, pat, cora, stan, ada, bea, teacher, account, admin, message)


def zip_files(content: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def pdf_text(content: bytes) -> str:
    return "\n".join(page.extract_text() or "" for page in PdfReader(io.BytesIO(content)).pages)


def everything_readable(content: bytes) -> str:
    """Every file of the zip as text: the JSON as written, the PDF's bytes and its text."""
    files = zip_files(content)
    parts = [files["subject.json"].decode()]
    parts.append(files["subject.pdf"].decode("latin-1"))
    parts.append(pdf_text(files["subject.pdf"]))
    return "\n".join(parts)


def leaks(content: bytes, values: tuple[str, ...] | list[str]) -> list[str]:
    """The values found anywhere in the zip: in any file's bytes, or in the PDF's text."""
    text = everything_readable(content)
    # The PDF's text extraction may join or split lines: compare without white space too.
    squeezed = "".join(text.split())
    raw = b"".join(zip_files(content).values())
    found = []
    for value in values:
        if value in text or "".join(value.split()) in squeezed or value.encode() in raw:
            found.append(value)
    return found


def export_json(content: bytes) -> Any:
    import json

    return json.loads(zip_files(content)["subject.json"])


def code_hashes(member: Member) -> list[str]:
    return list(SecurityCode.objects.filter(member=member).values_list("code_hash", flat=True))
