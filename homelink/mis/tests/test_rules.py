"""The import rules of product.md, each on its own, through the same service the CLI calls."""

from __future__ import annotations

import pytest

from homelink.mis.guards import ImportRefused, LeaverGuardStop
from homelink.mis.models import ImportRun
from homelink.mis.records import FileHeader, Format, MemberRecord, ParsedFile, PhoneRecord
from homelink.mis.services import ImportBusy, import_parsed
from homelink.mis.tests.factories import adult, contact, links_of, own_ctf, pupil, run_import, staff
from homelink.register.models import Adult, Link, Member, Source
from homelink.register.services import (
    adult_create,
    link_add,
    link_set_prime,
    person_mark_registered,
    person_opt_out,
)
from homelink.schools.models import School

pytestmark = pytest.mark.django_db

MUM = "07700 900001"
DAD = "07700 900002"


def family(upn: str = "A100000000001", *contacts, **kw) -> MemberRecord:
    if not contacts:
        contacts = (
            contact(1, "Mary", "Smith", email="mary@example.org", mobile=MUM),
            contact(2, "John", "Smith", email="john@example.org", mobile=DAD, relationship="PAF"),
        )
    return pupil(upn, "Sam", "Smith", *contacts, **kw)


# Rule 1 -----------------------------------------------------------------------------------------


def test_rule1_sets_member_details_from_the_file(school: School) -> None:
    run_import(school, [family(email="sam@example.org", mobile="07700 900050")])
    sam = Member.objects.get(mis_id="A100000000001")
    assert (sam.email, sam.mobile, sam.kind, sam.year) == (
        "sam@example.org",
        "+447700900050",
        "student",
        "7",
    )

    run_import(school, [family(email="sam.smith@example.org", mobile="07700 900051")])
    sam.refresh_from_db()
    assert (sam.email, sam.mobile) == ("sam.smith@example.org", "+447700900051")


def test_rule1_never_changes_a_registered_members_details(school: School) -> None:
    run_import(school, [staff("T1", "Tess", "Teacher", email="tess@example.org")])
    tess = Member.objects.get(mis_id="T1")
    person_mark_registered(person=tess, actor="test")
    Member.objects.filter(pk=tess.pk).update(email="tess.own@example.org")

    outcome = run_import(school, [staff("T1", "Tess", "Teacher", email="tess.mis@example.org")])
    tess.refresh_from_db()
    assert tess.email == "tess.own@example.org"
    assert any("registered" in r for r in outcome.summary["reasons"])


# Rule 2 -----------------------------------------------------------------------------------------


def test_rule2_priority_one_becomes_prime_and_lower_priorities_are_skipped_by_default(
    school: School,
) -> None:
    outcome = run_import(school, [family()])
    assert links_of(school, "A100000000001") == [("Mary", "import", 1, True)]
    assert (
        outcome.summary["reasons"][
            "link skip: lower-priority contacts are not imported (school setting)"
        ]
        == 1
    )
    mary = adult(school, "Mary")
    assert (mary.email, mary.mobile, mary.source) == ("mary@example.org", "+447700900001", "import")


def test_rule2_ties_at_priority_one_all_become_prime_and_are_a_data_issue(school: School) -> None:
    outcome = run_import(
        school,
        [
            family(
                "A100000000001",
                contact(1, "Mary", "Smith", mobile=MUM),
                contact(1, "John", "Smith", mobile=DAD),
            )
        ],
    )
    assert links_of(school, "A100000000001") == [
        ("John", "import", 1, True),
        ("Mary", "import", 1, True),
    ]
    assert outcome.summary["data_issues"] == {"priority1_tie": 1}


def test_rule2_student_with_a_prime_parent_gets_no_imported_prime(school: School) -> None:
    run_import(school, [pupil("A100000000001", "Sam", "Smith")])
    sam = Member.objects.get(mis_id="A100000000001")
    web = adult_create(
        school=school, forename="Pat", surname="Jones", source=Source.WEB, actor="test"
    )
    link_add(student=sam, adult=web, source=Source.WEB, prime=True, actor="test")

    outcome = run_import(school, [family()])
    assert links_of(school, "A100000000001") == [("Pat", "web", None, True)]
    assert outcome.summary["reasons"]["link skip: the student already has a prime parent"] == 1
    assert not Adult.objects.filter(forename="Mary").exists()


# Rule 3 -----------------------------------------------------------------------------------------


def test_rule3_lower_priorities_import_as_non_prime_when_the_school_asks(school: School) -> None:
    school.import_lower_priority = True
    school.save()
    run_import(school, [family()])
    assert links_of(school, "A100000000001") == [
        ("Mary", "import", 1, True),
        ("John", "import", 2, False),
    ]


# Rule 4 -----------------------------------------------------------------------------------------


def test_rule4_an_opted_out_adults_details_stay_out_on_every_later_import(school: School) -> None:
    run_import(school, [family()])
    mary = adult(school, "Mary")
    person_opt_out(person=mary, opted_out=True, actor="test", requested_by_person=True)

    changed = family(
        "A100000000001",
        contact(1, "Mary", "Smith", email="mary.new@example.org", mobile="07700 900099"),
    )
    outcome = run_import(school, [changed])
    mary.refresh_from_db()
    assert (mary.email, mary.mobile, mary.opted_out) == ("mary@example.org", "+447700900001", True)
    assert outcome.summary["reasons"]["adult skip: opted out: details not imported"] == 1
    run_import(school, [changed])
    mary.refresh_from_db()
    assert mary.opted_out and mary.email == "mary@example.org"


# Rule 5 and the changeover ------------------------------------------------------------------------


def test_changeover_an_import_changes_nothing_of_web_and_manual_links(school: School) -> None:
    """A school that registered parents on the web first, and linked some by hand, then imports."""
    run_import(
        school, [pupil("A100000000001", "Sam", "Smith"), pupil("A100000000002", "Ann", "Bell")]
    )
    sam = Member.objects.get(mis_id="A100000000001")
    ann = Member.objects.get(mis_id="A100000000002")
    # Mary registered with a letter; staff added Gran by hand to Sam and made Ann's aunt prime.
    mary = adult_create(
        school=school,
        forename="Mary",
        surname="Smith",
        email="mary.own@example.org",
        source=Source.WEB,
        actor="test",
    )
    person_mark_registered(person=mary, actor="test")
    link_add(student=sam, adult=mary, source=Source.WEB, prime=True, actor="test")
    gran = adult_create(
        school=school, forename="Gran", surname="Smith", mobile="07700 900077", actor="test"
    )
    link_add(student=sam, adult=gran, source=Source.MANUAL, actor="test")
    aunt = adult_create(school=school, forename="Aunt", surname="Bell", actor="test")
    link_add(student=ann, adult=aunt, source=Source.MANUAL, prime=True, actor="test")
    before = {
        link.pk: (link.source, link.prime, link.priority, link.adult_id, link.prime_set_by)
        for link in Link.objects.all()
    }
    adults_before = {a.pk: (a.email, a.mobile, a.forename) for a in Adult.objects.all()}

    school.import_lower_priority = True
    school.save()
    run_import(
        school,
        [
            family(
                "A100000000001",
                contact(1, "Mary", "Smith", email="mary.mis@example.org", mobile=MUM),
                contact(2, "Gran", "Smith", mobile="07700 900078"),
            ),
            pupil("A100000000002", "Ann", "Bell", contact(1, "Bob", "Bell", mobile="07700 900003")),
        ],
    )
    after = {
        link.pk: (link.source, link.prime, link.priority, link.adult_id, link.prime_set_by)
        for link in Link.objects.all()
    }
    assert all(after[pk] == value for pk, value in before.items()), "web and manual links unchanged"
    assert {
        a.pk: (a.email, a.mobile, a.forename) for a in Adult.objects.filter(pk__in=adults_before)
    } == adults_before
    # Ann already has a prime (set by staff), so Bob is not imported as a prime parent.
    assert links_of(school, "A100000000002") == [("Aunt", "manual", None, True)]
    # Mary and Gran matched by name within Sam: no duplicates were made.
    assert Adult.objects.filter(forename__in=["Mary", "Gran"]).count() == 2


def test_rule5_a_prime_set_by_staff_is_never_changed_by_an_import(school: School) -> None:
    school.import_lower_priority = True
    school.save()
    run_import(school, [family()])
    john_link = Link.objects.get(adult__forename="John")
    mary_link = Link.objects.get(adult__forename="Mary")
    link_set_prime(link=john_link, prime=True, by=Source.MANUAL, actor="test")
    link_set_prime(link=mary_link, prime=False, by=Source.MANUAL, actor="test")

    run_import(school, [family()])
    assert links_of(school, "A100000000001") == [
        ("Mary", "import", 1, False),
        ("John", "import", 2, True),
    ]


# Rule 6 -----------------------------------------------------------------------------------------


def test_rule6_changed_details_update_the_same_adult_in_place(school: School) -> None:
    run_import(school, [family()])
    mary = adult(school, "Mary")
    Adult.objects.filter(pk=mary.pk).update(held=False)
    run_import(
        school,
        [
            family(
                "A100000000001",
                contact(1, "Mary", "Smith", email="m.smith@example.org", mobile="07700 900011"),
            )
        ],
    )
    again = adult(school, "Mary")
    assert again.pk == mary.pk
    assert (again.email, again.mobile) == ("m.smith@example.org", "+447700900011")
    assert links_of(school, "A100000000001") == [("Mary", "import", 1, True)]


def test_rule6_removals_come_before_promotions(school: School) -> None:
    run_import(school, [family()])
    # Mary left the MIS; John is now priority 1 and is promoted in the same import.
    outcome = run_import(school, [family("A100000000001", contact(1, "John", "Smith", mobile=DAD))])
    assert links_of(school, "A100000000001") == [("John", "import", 1, True)]
    assert outcome.summary["links"]["removed"] == 1
    # The adult record stays (other students, history); only the imported link went.
    assert Adult.objects.filter(forename="Mary").exists()


def test_rule6_priority_and_prime_of_imported_links_follow_the_file(school: School) -> None:
    school.import_lower_priority = True
    school.save()
    run_import(school, [family()])
    swapped = family(
        "A100000000001",
        contact(2, "Mary", "Smith", email="mary@example.org", mobile=MUM),
        contact(1, "John", "Smith", email="john@example.org", mobile=DAD, relationship="PAF"),
    )
    run_import(school, [swapped])
    assert links_of(school, "A100000000001") == [
        ("John", "import", 1, True),
        ("Mary", "import", 2, False),
    ]


def test_rule6_a_student_missing_from_a_whole_roll_export_is_marked_left(school: School) -> None:
    records = [family(f"A1000000000{i:02}") for i in range(20)]
    run_import(school, records)
    outcome = run_import(school, records[:-1])
    gone = Member.objects.get(mis_id="A100000000019")
    assert gone.status == "left" and gone.left_at is not None
    assert Link.objects.filter(student=gone).exists(), "left, not deleted"
    assert outcome.summary["students"]["left"] == 1
    # Back in a later file: current again.
    run_import(school, records)
    gone.refresh_from_db()
    assert gone.status == "current" and gone.left_at is None


# Rule 7 -----------------------------------------------------------------------------------------


def test_rule7_the_same_adult_under_siblings_is_one_person(school: School) -> None:
    mum = contact(1, "Mary", "Smith", email="mary@example.org", mobile=MUM)
    run_import(school, [family("A100000000001", mum), family("A100000000002", mum)])
    assert Adult.objects.filter(forename="Mary").count() == 1
    assert Link.objects.filter(adult__forename="Mary").count() == 2


def test_rule7_a_new_sibling_joins_the_existing_adult_by_name_and_shared_mobile(
    school: School,
) -> None:
    run_import(
        school,
        [
            family(
                "A100000000001", contact(1, "Mary", "Smith", email="mary@example.org", mobile=MUM)
            )
        ],
    )
    # Next year a younger sibling arrives; the MIS has only the mobile for her this time.
    run_import(
        school,
        [
            family(
                "A100000000001", contact(1, "Mary", "Smith", email="mary@example.org", mobile=MUM)
            ),
            family("A100000000002", contact(1, "MARY ", "smith", mobile=MUM)),
        ],
    )
    assert Adult.objects.filter(name_key="mary smith").count() == 1


def test_rule7_names_alone_never_merge_two_adults(school: School) -> None:
    run_import(
        school,
        [
            family("A100000000001", contact(1, "John", "Smith", email="john1@example.org")),
            family("A100000000002", contact(1, "John", "Smith", email="john2@example.org")),
        ],
    )
    assert Adult.objects.filter(name_key="john smith").count() == 2


def test_rule7_couples_sharing_an_email_stay_two_people(school: School) -> None:
    school.import_lower_priority = True
    school.save()
    shared = "smiths@example.org"
    run_import(
        school,
        [
            family(
                "A100000000001",
                contact(1, "Mary", "Smith", email=shared),
                contact(2, "John", "Smith", email=shared),
            )
        ],
    )
    assert Adult.objects.count() == 2


def test_rule7_former_upn_is_honoured(school: School) -> None:
    run_import(school, [family("A100000000001")])
    mary = adult(school, "Mary")
    run_import(school, [family("B200000000002", former=("A100000000001",))])
    sam = Member.objects.get(school=school, kind="student")
    assert (sam.mis_id, sam.former_upn) == ("B200000000002", "A100000000001")
    assert links_of(school, "B200000000002") == [("Mary", "import", 1, True)]
    assert adult(school, "Mary").pk == mary.pk


def test_rule7_ambiguous_matches_are_shown_not_guessed(school: School) -> None:
    run_import(school, [pupil("A100000000001", "Sam", "Smith")])
    sam = Member.objects.get(mis_id="A100000000001")
    for _ in range(2):
        twin = adult_create(school=school, forename="Mary", surname="Smith", actor="test")
        link_add(student=sam, adult=twin, source=Source.MANUAL, actor="test")
    outcome = run_import(
        school, [family("A100000000001", contact(1, "Mary", "Smith", mobile=MUM))], dry_run=True
    )
    assert outcome.summary["data_issues"] == {"ambiguous_match": 1}
    assert (
        "adult skip: ambiguous: several adults of this student have this name"
        in outcome.summary["reasons"]
    )


def test_rule7_a_placeholder_email_shared_by_many_merges_only_the_same_name(
    school: School,
) -> None:
    # Offices type one address for every contact without one: it is shared by adults who are
    # not the same person, and only the same name with it is the same adult.
    school.import_lower_priority = True
    school.save()
    none = "none@example.org"
    records = [
        family(
            f"A1000000001{i:02}",
            contact(1, f"Parent{i}", "Placeholder", email=none, mobile=f"07700 9001{i:02}"),
        )
        for i in range(12)
    ]
    # A sibling of the fourth, the MIS giving only the placeholder, and a new name with it.
    records.append(family("A100000000200", contact(1, "Parent3", "Placeholder", email=none)))
    records.append(family("A100000000201", contact(1, "Newcomer", "Placeholder", email=none)))
    run_import(school, records)
    assert Adult.objects.filter(email=none).count() == 13
    parent3 = Adult.objects.get(forename="Parent3")
    assert sorted(parent3.links.values_list("student__mis_id", flat=True)) == [
        "A100000000103",
        "A100000000200",
    ]

    # Next year: the same file, and a sibling each for two of them: still one adult a name.
    records.append(
        family("A100000000202", contact(1, "Parent7", "Placeholder", email=none, mobile=""))
    )
    records.append(family("A100000000203", contact(1, "Parent8", "Placeholder", email=none)))
    outcome = run_import(school, records)
    assert outcome.summary["adults"]["created"] == 0
    assert Adult.objects.filter(email=none).count() == 13
    assert Adult.objects.get(forename="Parent7").links.count() == 2


def test_rule7_an_adult_is_known_by_what_the_first_student_in_the_file_says(
    school: School,
) -> None:
    # The register already has an Ann Lee, so the students listing a new one wait for the end of
    # the file; a later sibling meanwhile makes Bob Ray from what it says. When the first
    # student says other details for Bob, Bob is known by those (the first student wins), and a
    # later contact sharing only what the sibling said is another Bob Ray.
    school.import_lower_priority = True
    school.save()
    run_import(school, [family("A100000000009", contact(1, "Ann", "Lee", email="ann@example.org"))])
    records = [
        family("A100000000009", contact(1, "Ann", "Lee", email="ann@example.org")),
        family(
            "A100000000001",
            contact(1, "Ann", "Lee", email="ann1@example.org"),
            contact(2, "Bob", "Ray", email="bob@example.org", mobile="07700 900011"),
        ),
        family(
            "A100000000002",
            contact(1, "Bob", "Ray", email="bob@example.org", mobile="07700 900022"),
        ),
        family(
            "A100000000003",
            contact(1, "Ann", "Lee", email="ann3@example.org"),
            contact(2, "Bob", "Ray", mobile="07700 900022"),
        ),
        family(
            "A100000000004",
            contact(1, "Ann", "Lee", email="ann4@example.org"),
            contact(2, "Bob", "Ray", mobile="07700 900011"),
        ),
    ]
    outcome = run_import(school, records)
    bobs = {
        bob.mobile: sorted(bob.links.values_list("student__mis_id", flat=True))
        for bob in Adult.objects.filter(name_key="bob ray")
    }
    assert bobs == {
        "+447700900011": ["A100000000001", "A100000000002", "A100000000004"],
        "+447700900022": ["A100000000003"],
    }
    assert outcome.summary["data_issues"]["conflicting_details"] == 1


# Rule 8 -----------------------------------------------------------------------------------------


def test_rule8_reimporting_an_unchanged_file_changes_nothing(school: School) -> None:
    school.import_lower_priority = True
    school.save()
    records = [family(f"A1000000000{i:02}") for i in range(5)] + [staff("T1", "Tess", "Teacher")]
    run_import(school, records)
    stamps = {
        model.__name__: list(model.objects.order_by("pk").values_list("pk", "updated_at"))
        for model in (Member, Adult, Link)
    }
    outcome = run_import(school, records)
    assert not outcome.plan.has_writes
    assert outcome.summary["students"] == {
        "created": 0,
        "updated": 0,
        "unchanged": 5,
        "rejoined": 0,
        "left": 0,
        "skipped": 0,
    }
    for model in (Member, Adult, Link):
        assert (
            list(model.objects.order_by("pk").values_list("pk", "updated_at"))
            == stamps[model.__name__]
        )


# Rule 9 -----------------------------------------------------------------------------------------


def test_rule9_court_order_contacts_are_imported_but_held_for_review(school: School) -> None:
    outcome = run_import(
        school, [family("A100000000001", contact(1, "Mary", "Smith", mobile=MUM, court_order=True))]
    )
    mary = adult(school, "Mary")
    assert mary.held and mary.court_order
    assert links_of(school, "A100000000001") == [("Mary", "import", 1, True)]
    assert outcome.summary["data_issues"]["held_for_review"] == 1
    # Staff reviewed and released her; the flag is still in the MIS: she is not held again.
    Adult.objects.filter(pk=mary.pk).update(held=False)
    run_import(
        school, [family("A100000000001", contact(1, "Mary", "Smith", mobile=MUM, court_order=True))]
    )
    assert not adult(school, "Mary").held


# Rule 10 and the file checks ------------------------------------------------------------------------


def test_rule10_a_dry_run_previews_and_writes_nothing(school: School) -> None:
    outcome = run_import(school, [family()], dry_run=True)
    assert outcome.run.status == ImportRun.Status.PREVIEW
    assert outcome.summary["students"]["created"] == 1
    assert outcome.summary["links"]["created"] == 1
    assert outcome.summary["details"]["create"][0]["what"] == "student"
    assert not Member.objects.exists() and not Adult.objects.exists()


def test_phones_first_real_mobile_and_typed_mobiles_that_are_not_mobiles_are_issues(
    school: School,
) -> None:
    phones = (
        PhoneRecord("H", "0113 496 0000"),
        PhoneRecord("M", "07689 415547"),  # a pager range typed as mobile
        PhoneRecord("M", "07700 900123"),
    )
    outcome = run_import(
        school, [family("A100000000001", contact(1, "Mary", "Smith", phones=phones))]
    )
    assert adult(school, "Mary").mobile == "+447700900123"
    assert outcome.summary["data_issues"]["not_mobile"] == 1


def test_a_transfer_in_file_never_marks_anyone_left(school: School) -> None:
    run_import(school, [family(f"A1000000000{i:02}") for i in range(3)])
    transfer = FileHeader(
        format=Format.CTF,
        qualifier="full",
        source_urn="999999",
        source_la="111",
        source_estab="2222",
        dest_urn=school.urn,
    )
    outcome = run_import(
        school,
        [family("C300000000003", contact(1, "Zed", "Zee", mobile="07700 900300"))],
        header=transfer,
    )
    assert Member.objects.filter(status="left").count() == 0
    assert outcome.summary["students"]["created"] == 1 and not outcome.summary["whole_roll"]


def test_a_partial_ctf_changes_no_links(school: School) -> None:
    run_import(school, [family()])
    partial = own_ctf(school, qualifier="partial", carries_contacts=False)
    run_import(
        school,
        [pupil("A100000000001", "Samuel", "Smith", carries_contacts=False, email=None)],
        header=partial,
    )
    assert links_of(school, "A100000000001") == [("Mary", "import", 1, True)]
    assert Member.objects.get(mis_id="A100000000001").forename == "Samuel"


def test_update_only_neither_removes_links_nor_marks_left(school: School) -> None:
    run_import(school, [family("A100000000001"), family("A100000000002")])
    run_import(
        school, [family("A100000000001", contact(1, "John", "Smith", mobile=DAD))], update_only=True
    )
    assert Member.objects.filter(status="left").count() == 0
    assert ("Mary", "import", 1, True) in links_of(school, "A100000000001")


def test_another_schools_ctf_is_refused_unless_forced(school: School) -> None:
    other = FileHeader(format=Format.CTF, qualifier="full", source_urn="999999", dest_urn="888888")
    with pytest.raises(ImportRefused, match="neither is Example Academy"):
        run_import(school, [family()], header=other)
    assert not Member.objects.exists()
    assert ImportRun.objects.get().status == ImportRun.Status.FAILED
    outcome = run_import(school, [family()], header=other, force=True)
    assert outcome.applied and not outcome.summary["whole_roll"]


def test_the_leavers_guard_stops_a_one_year_group_export(school: School) -> None:
    records = [family(f"A1000000000{i:02}") for i in range(20)]
    run_import(school, records)
    with pytest.raises(LeaverGuardStop, match="would mark 17 of 20 current students"):
        run_import(school, records[:3])
    assert Member.objects.filter(status="left").count() == 0
    assert ImportRun.objects.filter(status=ImportRun.Status.STOPPED).count() == 1
    run_import(school, records[:3], confirm_leavers=True)
    assert Member.objects.filter(status="left").count() == 17


def test_two_imports_of_one_school_never_run_at_once(school: School) -> None:
    def opener_that_imports_again() -> ParsedFile:
        # While this import holds the lock, a second one is refused and changes nothing.
        with pytest.raises(ImportBusy):
            run_import(school, [family("B200000000002")])
        return ParsedFile(own_ctf(school), iter([family()]))

    import_parsed(
        school=school, opener=opener_that_imports_again, file_format=Format.CTF, file_name="x"
    )
    assert list(Member.objects.values_list("mis_id", flat=True)) == ["A100000000001"]
    other = School.objects.create(urn="100002", name="Other School")
    run_import(other, [family()])  # another school's import is not blocked


def test_a_registration_during_planning_wins_over_the_plan(school: School) -> None:
    """The plan is built without locks; what a parent did meanwhile is not overwritten."""
    run_import(school, [pupil("A100000000001", "Sam", "Smith"), family("A100000000002")])
    sam = Member.objects.get(mis_id="A100000000001")
    mary = adult(school, "Mary")

    def records():
        yield family("A100000000001", contact(1, "Dan", "Smith", mobile="07700 900004"))
        yield family(
            "A100000000002", contact(1, "Mary", "Smith", email="mary.mis@example.org", mobile=MUM)
        )
        # The planner has read everything; now a parent registers before the plan is applied.
        web = adult_create(
            school=school, forename="Pat", surname="Smith", source=Source.WEB, actor="test"
        )
        link_add(student=sam, adult=web, source=Source.WEB, prime=True, actor="test")
        person_mark_registered(person=mary, actor="test")

    outcome = import_parsed(
        school=school,
        opener=lambda: ParsedFile(own_ctf(school), records()),
        file_format=Format.CTF,
        file_name="x",
    )
    assert links_of(school, "A100000000001") == [("Pat", "web", None, True)]
    assert adult(school, "Mary").email == "mary@example.org"
    assert outcome.summary["yielded_to_people"] == {"members": 0, "adults": 1, "primes": 1}


def test_rule3_turning_lower_priorities_off_removes_the_ones_imported_before(
    school: School,
) -> None:
    school.import_lower_priority = True
    school.save()
    run_import(school, [family()])
    assert links_of(school, "A100000000001") == [
        ("Mary", "import", 1, True),
        ("John", "import", 2, False),
    ]
    school.import_lower_priority = False
    school.save()
    outcome = run_import(school, [family()])
    assert links_of(school, "A100000000001") == [("Mary", "import", 1, True)]
    assert outcome.summary["links"]["removed"] == 1
    # An update-only import never removes a link, whatever the setting.
    school.import_lower_priority = True
    school.save()
    run_import(school, [family()])
    school.import_lower_priority = False
    school.save()
    run_import(school, [family()], update_only=True)
    assert len(links_of(school, "A100000000001")) == 2


# Found in review: each once a real failure ----------------------------------------------------------


def test_a_upn_listed_twice_is_skipped_with_an_issue_not_a_crash(school: School) -> None:
    outcome = run_import(school, [family("A100000000009"), family("A100000000009")])
    assert Member.objects.filter(mis_id="A100000000009").count() == 1
    assert outcome.summary["data_issues"]["duplicate_member"] == 1


def test_a_court_order_under_a_later_sibling_still_holds_the_adult(school: School) -> None:
    run_import(
        school,
        [
            family(
                "A100000000001", contact(1, "Dan", "Smith", email="dan@example.org", mobile=DAD)
            ),
            family(
                "A100000000002",
                contact(1, "Dan", "Smith", email="dan@example.org", mobile=DAD, court_order=True),
            ),
        ],
    )
    held = adult(school, "Dan")
    assert (held.court_order, held.held) == (True, True)


def test_an_ambiguous_name_leaves_the_students_links_and_prime_alone(school: School) -> None:
    run_import(school, [family("A100000000001", contact(1, "Mary", "Smith", mobile=MUM))])
    sam = Member.objects.get(mis_id="A100000000001")
    web = adult_create(
        school=school, forename="Mary", surname="Smith", source=Source.WEB, actor="test"
    )
    link_add(student=sam, adult=web, source=Source.WEB, actor="test")
    run_import(school, [family("A100000000001", contact(1, "Mary", "Smith", mobile=MUM))])
    assert sorted(links_of(school, "A100000000001")) == [
        ("Mary", "import", 1, True),
        ("Mary", "web", None, False),
    ]


def test_an_opted_out_adult_under_new_mis_details_is_still_the_same_person(school: School) -> None:
    run_import(
        school,
        [family("A100000000001", contact(1, "Olive", "Oyl", email="old@example.org", mobile=MUM))],
    )
    olive = adult(school, "Olive")
    person_opt_out(person=olive, opted_out=True, actor="test", requested_by_person=True)
    new = contact(1, "Olive", "Oyl", email="new@example.org", mobile="07700 900077")
    run_import(school, [family("A100000000001", new), family("A100000000002", new)])
    assert Adult.objects.filter(forename="Olive").count() == 1
    olive.refresh_from_db()
    assert (olive.email, olive.opted_out) == ("old@example.org", True)


def test_a_prime_staff_set_while_the_file_was_read_is_kept(school: School) -> None:
    school.import_lower_priority = True
    school.save()
    run_import(school, [family()])
    john = Link.objects.get(adult__forename="John")

    def records():
        # The file now has John first; staff make Mary prime (again) by hand meanwhile.
        yield family(
            "A100000000001",
            contact(2, "Mary", "Smith", email="mary@example.org", mobile=MUM),
            contact(1, "John", "Smith", email="john@example.org", mobile=DAD, relationship="PAF"),
        )
        link_set_prime(
            link=Link.objects.get(adult__forename="Mary"),
            prime=True,
            by=Source.MANUAL,
            actor="test",
        )

    import_parsed(
        school=school,
        opener=lambda: ParsedFile(own_ctf(school), records()),
        file_format=Format.CTF,
        file_name="x",
    )
    assert links_of(school, "A100000000001") == [
        ("John", "import", 1, False),
        ("Mary", "import", 2, True),
    ]
    assert Link.objects.get(pk=john.pk).prime is False
