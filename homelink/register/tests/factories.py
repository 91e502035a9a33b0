"""A school whose register shows every kind of data issue the dashboard lists, for the tests
of its reads (register/, mis/) and of its page (console/)."""

from __future__ import annotations

from django.utils import timezone

from homelink.mis.records import PhoneRecord
from homelink.mis.tests.factories import contact, pupil, run_import
from homelink.register.models import Adult, LikelyDuplicate, Member, Source
from homelink.register.services import adult_create, link_add, person_opt_out
from homelink.schools.models import School


def upn(n: int) -> str:
    return f"D{n:012d}"


def build(school: School) -> None:
    run_import(
        school,
        [
            pupil(upn(1), "Email", "Reach", contact(1, "Anne", "One", email="shared@x.example")),
            pupil(upn(2), "Sms", "Reach", contact(1, "Ethel", "Two", mobile="07700 900002")),
            pupil(
                upn(3),
                "Tied",
                "Student",
                contact(1, "Tie", "Held", email="held@x.example", court_order=True),
                contact(1, "Tie", "Free", email="free@x.example", mobile="07700 900003"),
            ),
            pupil(upn(4), "No", "Details", contact(1, "Blank", "Parent")),
            pupil(upn(5), "Opted", "Out", contact(1, "Olive", "Quit", email="olive@x.example")),
            pupil(
                upn(6), "Unrelated", "Sharer", contact(1, "Bob", "Six", email="shared@x.example")
            ),
            pupil(
                upn(7),
                "Landline",
                "Only",
                contact(1, "Lan", "Line", phones=(PhoneRecord("M", "020 7946 0123"),)),
            ),
            pupil(upn(8), "Gone", "Away", contact(1, "Leaver", "Parent", email="l@x.example")),
        ],
    )
    Member.objects.filter(school=school, mis_id=upn(8)).update(
        status=Member.Status.LEFT, left_at=timezone.now()
    )
    person_opt_out(
        person=Adult.objects.get(school=school, forename="Olive"),
        opted_out=True,
        actor="test",
        requested_by_person=True,
    )
    # A parent who registered with a letter for student 2 but is not among the MIS's contacts.
    web = adult_create(
        school=school,
        forename="Walt",
        surname="Web",
        email="walt@x.example",
        source=Source.WEB,
        actor="test",
    )
    Adult.objects.filter(pk=web.pk).update(registered=True)
    link_add(
        student=Member.objects.get(school=school, mis_id=upn(2)),
        adult=web,
        source=Source.WEB,
        actor="test",
    )
    LikelyDuplicate.objects.create(
        school=school,
        adult=web,
        other=Adult.objects.get(school=school, forename="Ethel"),
        shared="name",
    )
