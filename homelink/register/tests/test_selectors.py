"""The dashboard's reads of the register (register/selectors.py): how reachable the school is,
and the data issues, each leading to the student whose linked-people screen fixes it."""

from __future__ import annotations

from homelink.mis.tests.factories import contact, pupil, run_import
from homelink.register.models import Member
from homelink.register.selectors import IssueGroup, data_issues, reach
from homelink.register.tests.factories import build, upn
from homelink.schools.models import School


def issues(school: School) -> dict[str, IssueGroup]:
    return {g.key: g for g in data_issues(school)}


def test_the_figures(school: School) -> None:
    build(school)
    d = reach(school)
    assert d.students == 7
    assert d.prime_email == 3  # 1, 3 (through the free tie) and 6
    assert d.prime_sms == 2  # 2 and 3
    assert d.prime_any == 4
    assert d.adults == 10
    assert d.adults_registered == 1
    assert d.adults_imported == 9
    assert d.adults_opted_out == 1


def test_the_data_issues_each_lead_to_the_member(school: School) -> None:
    build(school)
    found = issues(school)
    member = dict(Member.objects.filter(school=school).values_list("mis_id", "pk"))

    def at(key):
        return {(i.label, i.member_id) for i in found[key].items}

    assert at("unreachable") == {
        ("No Details", member[upn(4)]),
        ("Opted Out", member[upn(5)]),
        ("Landline Only", member[upn(7)]),
    }
    assert at("held") == {("Tie Held", member[upn(3)])}
    assert at("priority1_tie") == {("Tied Student", member[upn(3)])}
    assert at("likely_duplicate") == {("Walt Web", member[upn(2)])}
    assert at("web_not_in_mis") == {("Walt Web", member[upn(2)])}
    assert at("no_details") == {("Blank Parent", member[upn(4)]), ("Lan Line", member[upn(7)])}
    assert at("shared_email") == {("Anne One", member[upn(1)]), ("Bob Six", member[upn(6)])}
    assert "last_import" not in found  # the import's own: mis/selectors.py
    for group in found.values():
        assert group.total >= len(group.items)


def test_a_couple_sharing_an_email_is_not_an_issue(school: School) -> None:
    run_import(
        school,
        [
            pupil(
                upn(1),
                "Kid",
                "One",
                contact(1, "Mum", "One", email="family@x.example"),
                contact(1, "Dad", "One", email="family@x.example"),
            )
        ],
    )
    assert issues(school)["shared_email"].total == 0
