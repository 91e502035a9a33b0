"""Fixtures for the console's tests: two schools with registers, and their staff."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from homelink.messaging.audience import Audience
from homelink.messaging.models import Delivery, InboundSms, Message, Template
from homelink.mis.models import ImportRun
from homelink.mis.tests.factories import contact, pupil, run_import, staff
from homelink.register.models import Adult, LikelyDuplicate, Link, Member, PendingLink, Source
from homelink.register.services import adult_create, link_add
from homelink.registration.models import SecurityCode
from homelink.registration.services import codes_issue
from homelink.schools.models import School
from homelink.staff.invitations import staff_invite
from homelink.staff.models import Role, StaffInvitation, StaffMembership
from homelink.staff.testing import confirm_email_directly


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    # Password hashing at full strength costs a quarter of a second per login made here.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def make_user(email: str) -> AbstractBaseUser:
    return get_user_model().objects.create_user(
        username=email, email=email, password="correct horse battery staple"
    )


def member_of(user: Any, school: School, role: Role) -> StaffMembership:
    """A membership as an accepted invitation leaves it: the account's email confirmed (the
    console refuses an account whose email is not). Tests of invitations make their own."""
    confirm_email_directly(user)
    return StaffMembership.objects.create(user=user, school=school, role=role)


@dataclass
class World:
    """One school's register with one of everything the console fetches by id."""

    school: School
    student: Member
    adult: Adult  # linked to ``student`` by ``link``
    link: Link  # a manual, non-prime link: every action on it would change something
    imported_link: Link
    pending: PendingLink
    staff_member: Member
    run: ImportRun
    code: SecurityCode  # a letter of ``student``
    duplicate: LikelyDuplicate
    staff: StaffMembership
    invitation: StaffInvitation  # waiting to be accepted
    message: Message  # one copy emailed, one still queued: cancellable
    template: Template


def make_message(school: School, adult: Adult, *, to: str, label: str = "") -> Message:
    """A message as a send leaves it, without the send: its rows written directly."""
    now = timezone.now()
    message = Message.objects.create(
        school=school,
        mode=Message.Mode.EMAIL_ELSE_SMS,
        audience=Audience().to_json(),
        audience_label=label or Audience().label(),
        subject="Sports day",
        email_body="Dear {name}, sports day is on Friday.",
        sms_text="Sports day is on Friday. {school}",
        send_at=now,
        email_count=2,
    )
    for address, status in ((to, Delivery.Status.SENT), (f"queued.{to}", Delivery.Status.QUEUED)):
        Delivery.objects.create(
            message=message,
            school=school,
            channel="email",
            to=address,
            adult=adult,
            adult_ids=[adult.pk],
            name=f"{adult.forename} {adult.surname}",
            children="Ada",
            status=status,
            next_attempt_at=now,
            sent_at=now if status == Delivery.Status.SENT else None,
            status_at=now if status == Delivery.Status.SENT else None,
        )
    return message


def build_world(school: School, prefix: str) -> World:
    run_import(
        school,
        [
            replace(
                pupil(
                    f"{prefix}00000000001",
                    "Ada",
                    "Lovelace",
                    contact(1, "Anne", "Lovelace", email=f"anne@{prefix.lower()}.example"),
                    contact(
                        1,
                        "Court",
                        "Order",
                        email=f"co@{prefix.lower()}.example",
                        court_order=True,
                    ),
                ),
                reg_group="7A",
            ),
            pupil(
                f"{prefix}00000000002",
                "Alan",
                "Turing",
                contact(1, "Ethel", "Turing", mobile="07700 900456"),
                year="8",
            ),
            staff(f"{prefix}-T1", "Grace", "Hopper", email=f"grace@{prefix.lower()}.example"),
        ],
    )
    student = Member.objects.get(school=school, mis_id=f"{prefix}00000000001")
    other = Member.objects.get(school=school, mis_id=f"{prefix}00000000002")
    adult = adult_create(school=school, forename="Manual", surname="Carer", actor="test")
    link = link_add(student=student, adult=adult, source=Source.MANUAL, actor="test")
    web_adult = adult_create(
        school=school, forename="Web", surname="Parent", source=Source.WEB, actor="test"
    )
    pending = PendingLink.objects.create(school=school, student=student, adult=web_adult)
    duplicate = LikelyDuplicate.objects.create(
        school=school, adult=web_adult, other=adult, shared="name"
    )
    codes_issue(school=school, members=[student], actor="test")
    clerk = member_of(make_user(f"clerk@{prefix.lower()}.example"), school, Role.VIEWER)
    invitation = staff_invite(
        school=school, email=f"invited@{prefix.lower()}.example", role=Role.SENDER, actor="test"
    ).invitation
    link_add(student=other, adult=web_adult, source=Source.WEB, actor="test")
    anne = Adult.objects.get(school=school, forename="Anne")
    message = make_message(school, anne, to=anne.email)
    InboundSms.objects.create(
        school=school, from_number="+447700900456", text="Thanks!", in_reply_to=message
    )
    template = Template.objects.create(
        school=school, name="Closure", subject="Closed", sms_text="{school} is closed today."
    )
    return World(
        school=school,
        student=student,
        adult=adult,
        link=link,
        imported_link=Link.objects.filter(student=student, source=Source.IMPORT).first(),  # type: ignore[arg-type]
        pending=pending,
        staff_member=Member.objects.get(school=school, mis_id=f"{prefix}-T1"),
        run=ImportRun.objects.filter(school=school).latest("pk"),
        code=SecurityCode.objects.get(member=student),
        duplicate=duplicate,
        staff=clerk,
        invitation=invitation,
        message=message,
        template=template,
    )


@pytest.fixture
def school_b(db: None) -> School:
    return School.objects.create(urn="100002", name="Other Primary", la_code="838", estab="2001")


@pytest.fixture
def world_a(school: School) -> World:
    return build_world(school, "A")


@pytest.fixture
def world_b(school_b: School) -> World:
    return build_world(school_b, "B")


@pytest.fixture
def admin_a(school: School) -> AbstractBaseUser:
    user = make_user("office@a.example")
    member_of(user, school, Role.ADMINISTRATOR)
    return user


@pytest.fixture
def viewer_a(school: School) -> AbstractBaseUser:
    user = make_user("viewer@a.example")
    member_of(user, school, Role.VIEWER)
    return user


@pytest.fixture
def sender_a(school: School) -> AbstractBaseUser:
    user = make_user("sender@a.example")
    member_of(user, school, Role.SENDER)
    return user


@pytest.fixture
def roll(school: School) -> School:
    """A school to message (see ``mis.tests.factories.build_roll``)."""
    from homelink.mis.tests.factories import build_roll

    return build_roll(school)
