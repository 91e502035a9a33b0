"""Reads of the register: the whole register as plain data; how reachable a school is and what
the office should look at (the console's dashboard); the members list; a student's linked people.

Every function takes the school (or one of its members) and filters by it first. Counts are
aggregate queries and lists are capped, so the dashboard costs the same handful of queries for
200 or 2,000 students; nothing here loops over students issuing a query each.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.db.models import (
    BooleanField,
    Case,
    Count,
    Exists,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)

from homelink.mis.issues import issue_kind
from homelink.register.find import search_q
from homelink.register.models import Adult, LikelyDuplicate, Link, Member, PendingLink, Source
from homelink.register.years import in_school_order
from homelink.schools.models import School


def export_register(school: School) -> dict[str, Any]:
    """The whole register of one school as plain data (``homelink export --json``).

    Three queries whatever the size of the school; ``adult_id`` is the adult's primary key, which
    the import rules keep stable across re-imports.
    """
    adults = {
        a["id"]: a
        for a in Adult.objects.filter(school=school).values(
            "id", "forename", "surname", "email", "mobile", "registered", "opted_out", "held"
        )
    }
    links: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for link in (
        Link.objects.filter(school=school)
        .order_by("student_id", "priority", "id")
        .values(
            "student_id",
            "adult_id",
            "prime",
            "priority",
            "source",
            "relationship",
            "parental_responsibility",
        )
    ):
        adult = adults[link["adult_id"]]
        links[link["student_id"]].append(
            {
                "adult_id": adult["id"],
                "forename": adult["forename"],
                "surname": adult["surname"],
                "email": adult["email"],
                "mobile": adult["mobile"],
                "registered": adult["registered"],
                "opted_out": adult["opted_out"],
                "held": adult["held"],
                "prime": link["prime"],
                "priority": link["priority"],
                "source": link["source"],
                "relationship": link["relationship"],
                "parental_responsibility": link["parental_responsibility"],
            }
        )
    members: list[dict[str, Any]] = []
    for row in (
        Member.objects.filter(school=school)
        .order_by("kind", "surname", "forename", "id")
        .values(
            "id",
            "mis_id",
            "kind",
            "role",
            "forename",
            "surname",
            "year",
            "reg_group",
            "email",
            "mobile",
            "status",
            "registered",
            "opted_out",
        )
    ):
        member: dict[str, Any] = dict(row)
        member["links"] = links.get(member.pop("id"), [])
        members.append(member)
    return {"school": {"urn": school.urn, "name": school.name}, "members": members}


# --- the dashboard: how reachable the school is, and its data issues --------------------------


#: How many entries each data-issue list shows; its total is always complete.
ISSUE_LIMIT = 25


# Who can receive a message, on each channel (product.md: opted-out and held people are never
# included; a channel turned off is off). ``prefix`` makes the same rule about a link's adult.
def email_ok(prefix: str = "") -> Q:
    return Q(
        **{f"{prefix}opted_out": False, f"{prefix}held": False, f"{prefix}email_off": False}
    ) & ~Q(**{f"{prefix}email": ""})


def sms_ok(prefix: str = "") -> Q:
    return Q(
        **{f"{prefix}opted_out": False, f"{prefix}held": False, f"{prefix}sms_off": False}
    ) & ~Q(**{f"{prefix}mobile": ""})


LINK_EMAIL_OK = email_ok("adult__")
LINK_SMS_OK = sms_ok("adult__")
LINK_ANY_OK = LINK_EMAIL_OK | LINK_SMS_OK


def _student_links(condition: Q, *, prime_only: bool) -> Exists:
    links = Link.objects.filter(condition, student=OuterRef("pk"))
    if prime_only:
        links = links.filter(prime=True)
    return Exists(links)


def _first_student_of_adult() -> Subquery:
    """For an adult, a student they are linked to: where the dashboard sends staff to fix it."""
    return Subquery(
        Link.objects.filter(adult=OuterRef("pk")).order_by("student_id").values("student_id")[:1]
    )


def current_students(school: School) -> QuerySet[Member]:
    return Member.objects.filter(
        school=school, kind=Member.Kind.STUDENT, status=Member.Status.CURRENT
    )


@dataclass(frozen=True)
class IssueItem:
    label: str
    #: The member whose linked-people screen fixes it (None when there is no such member).
    member_id: int | None
    note: str = ""


@dataclass
class IssueGroup:
    """One list of the dashboard. Its title and what to do come from ``mis/issues.py``, the one
    place that words every kind of data issue."""

    key: str
    why: str
    total: int
    items: list[IssueItem] = field(default_factory=list)

    @property
    def title(self) -> str:
        return issue_kind(self.key).title

    @property
    def advice(self) -> str:
        return issue_kind(self.key).advice


@dataclass
class Reach:
    """The dashboard's figures: who can be reached, and how the register came to be."""

    students: int
    prime_email: int
    prime_sms: int
    prime_any: int
    adult_members: int
    adults: int
    adults_registered: int
    adults_imported: int
    adults_manual: int
    adults_opted_out: int
    members_opted_out: int
    pending_links: int

    @property
    def prime_any_percent(self) -> int:
        return round(100 * self.prime_any / self.students) if self.students else 0


def _name(forename: str, surname: str) -> str:
    return f"{forename} {surname}".strip() or "(no name)"


def reach(school: School) -> Reach:
    students = current_students(school).aggregate(
        n_total=Count("pk"),
        n_email=Count("pk", filter=_student_links(LINK_EMAIL_OK, prime_only=True)),
        n_sms=Count("pk", filter=_student_links(LINK_SMS_OK, prime_only=True)),
        n_any=Count("pk", filter=_student_links(LINK_ANY_OK, prime_only=True)),
    )
    members = Member.objects.filter(school=school).aggregate(
        # Aliases must not be field names (Django would take them for the fields).
        n_adult_members=Count("pk", filter=Q(kind=Member.Kind.ADULT, status=Member.Status.CURRENT)),
        n_opted_out=Count("pk", filter=Q(opted_out=True)),
    )
    adults = Adult.objects.filter(school=school).aggregate(
        n_total=Count("pk"),
        n_registered=Count("pk", filter=Q(registered=True)),
        n_imported=Count("pk", filter=Q(source=Source.IMPORT, registered=False)),
        n_manual=Count("pk", filter=Q(source=Source.MANUAL, registered=False)),
        n_opted_out=Count("pk", filter=Q(opted_out=True)),
    )
    return Reach(
        students=students["n_total"],
        prime_email=students["n_email"],
        prime_sms=students["n_sms"],
        prime_any=students["n_any"],
        adult_members=members["n_adult_members"],
        adults=adults["n_total"],
        adults_registered=adults["n_registered"],
        adults_imported=adults["n_imported"],
        adults_manual=adults["n_manual"],
        adults_opted_out=adults["n_opted_out"],
        members_opted_out=members["n_opted_out"],
        pending_links=PendingLink.objects.filter(
            school=school, status=PendingLink.Status.WAITING
        ).count(),
    )


def _student_group(key: str, why: str, students: QuerySet[Member]) -> IssueGroup:
    rows = students.order_by("surname", "forename", "pk").values(
        "pk", "forename", "surname", "mis_id", "year"
    )
    return IssueGroup(
        key,
        why,
        students.count(),
        [
            IssueItem(
                _name(r["forename"], r["surname"]),
                r["pk"],
                f"MIS id {r['mis_id']}" + (f", year {r['year']}" if r["year"] else ""),
            )
            for r in rows[:ISSUE_LIMIT]
        ],
    )


def _adult_group(key: str, why: str, adults: QuerySet[Adult]) -> IssueGroup:
    rows = (
        adults.annotate(fix_at=_first_student_of_adult())
        .order_by("surname", "forename", "pk")
        .values("pk", "forename", "surname", "fix_at")
    )
    return IssueGroup(
        key,
        why,
        adults.count(),
        [IssueItem(_name(r["forename"], r["surname"]), r["fix_at"]) for r in rows[:ISSUE_LIMIT]],
    )


def data_issues(school: School) -> list[IssueGroup]:
    """What the office should look at in the register, each entry leading to the linked-people
    screen (the last import's own issues are :func:`homelink.mis.selectors.import_issues`)."""
    students = current_students(school)
    groups = [
        _student_group(
            "unreachable",
            "No linked adult can receive email or SMS (none linked, or all opted out, held, "
            "turned off or without details).",
            students.filter(~_student_links(LINK_ANY_OK, prime_only=False)),
        ),
        _adult_group(
            "held",
            "The MIS flags a court order: they receive nothing and cannot link with a letter "
            "until staff review them.",
            Adult.objects.filter(school=school, held=True),
        ),
        _student_group(
            "priority1_tie",
            "More than one imported contact at priority 1: all became prime parents. Check "
            "the priorities in the MIS.",
            students.filter(
                pk__in=Link.objects.filter(
                    school=school, source=Source.IMPORT, priority=1, prime=True
                )
                .values("student_id")
                .annotate(n=Count("pk"))
                .filter(n__gt=1)
                .values("student_id")
            ),
        ),
        _likely_duplicates(school),
        _adult_group(
            "web_not_in_mis",
            "These adults linked themselves with a letter and match no contact the MIS gives "
            "for that student, though the MIS does list other contacts for them. Add them to "
            "the MIS, or check they should be linked.",
            Adult.objects.filter(school=school, source=Source.WEB, registered=True)
            .filter(
                Exists(
                    Link.objects.filter(
                        adult=OuterRef("pk"),
                        source=Source.WEB,
                        student__status=Member.Status.CURRENT,
                        student__links__source=Source.IMPORT,
                    )
                )
            )
            .exclude(links__source__in=[Source.IMPORT, Source.MANUAL]),
        ),
        _adult_group(
            "no_details",
            "Linked to a current student but have neither an email address nor a mobile.",
            Adult.objects.filter(school=school, email="", mobile="", opted_out=False).filter(
                Exists(
                    Link.objects.filter(adult=OuterRef("pk"), student__status=Member.Status.CURRENT)
                )
            ),
        ),
        _shared_emails(school),
    ]
    return groups


def _likely_duplicates(school: School) -> IssueGroup:
    pending = LikelyDuplicate.objects.filter(school=school, resolved_at__isnull=True)
    rows = (
        pending.annotate(
            fix_at=Subquery(
                Link.objects.filter(adult=OuterRef("adult_id"))
                .order_by("student_id")
                .values("student_id")[:1]
            )
        )
        .order_by("pk")
        .values(
            "fix_at",
            "shared",
            "adult__forename",
            "adult__surname",
            "other__forename",
            "other__surname",
        )
    )
    return IssueGroup(
        "likely_duplicate",
        "A registration made a new adult where an adult already linked to the student may be "
        "the same person.",
        pending.count(),
        [
            IssueItem(
                _name(r["adult__forename"], r["adult__surname"]),
                r["fix_at"],
                f"may be {_name(r['other__forename'], r['other__surname'])} (same {r['shared']})",
            )
            for r in rows[:ISSUE_LIMIT]
        ],
    )


def _shared_emails(school: School) -> IssueGroup:
    """Adults with the same email who share no student: one of them is probably wrong (a
    typing slip in the MIS, or a shared family address that belongs to someone else)."""
    repeated = (
        Adult.objects.filter(school=school)
        .exclude(email="")
        .values("email")
        .annotate(n=Count("pk"))
        .filter(n__gt=1)
        .values("email")
    )
    adults = list(
        Adult.objects.filter(school=school, email__in=repeated)
        .order_by("email", "surname", "forename", "pk")
        .values_list("pk", "forename", "surname", "email")
    )
    students: dict[int, set[int]] = defaultdict(set)
    for adult_id, student_id in Link.objects.filter(
        school=school, adult_id__in=[pk for pk, *_ in adults]
    ).values_list("adult_id", "student_id"):
        students[adult_id].add(student_id)
    by_email: dict[str, list[tuple[int, str, str, str]]] = defaultdict(list)
    for row in adults:
        by_email[row[3]].append(row)
    flagged: list[IssueItem] = []
    for group in by_email.values():
        for pk, forename, surname, _email in group:
            strangers = [
                _name(o_forename, o_surname)
                for o_pk, o_forename, o_surname, _ in group
                if o_pk != pk and not students[pk] & students[o_pk]
            ]
            if strangers:
                flagged.append(
                    IssueItem(
                        _name(forename, surname),
                        min(students[pk], default=None),
                        f"same email as {', '.join(strangers)}",
                    )
                )
    return IssueGroup(
        "shared_email",
        "Adults who share no student have the same email address: each would receive the "
        "other's messages.",
        len(flagged),
        flagged[:ISSUE_LIMIT],
    )


# --- the members list ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MemberFilters:
    q: str = ""
    year: str = ""
    reg_group: str = ""
    kind: str = ""
    role: str = ""
    #: "current" (the default), "left" or "all"
    status: str = "current"
    #: "yes", "no" or "" for both
    reachable: str = ""


def reachable_expression() -> Case:
    """A student is reachable through a prime parent who can receive something; an adult
    member through their own email or mobile, unless they opted out."""
    return Case(
        When(
            Q(kind=Member.Kind.STUDENT) & _student_links(LINK_ANY_OK, prime_only=True),
            then=Value(True),
        ),
        When(
            Q(kind=Member.Kind.ADULT, opted_out=False) & (~Q(email="") | ~Q(mobile="")),
            then=Value(True),
        ),
        default=Value(False),
        output_field=BooleanField(),
    )


def members_search(school: School, filters: MemberFilters) -> QuerySet[Member]:
    members = Member.objects.filter(school=school)
    if filters.status in (Member.Status.CURRENT, Member.Status.LEFT):
        members = members.filter(status=filters.status)
    if filters.kind in Member.Kind.values:
        members = members.filter(kind=filters.kind)
    if filters.role in Member.Role.values:
        members = members.filter(role=filters.role)
    if filters.year:
        members = members.filter(year=filters.year)
    if filters.reg_group:
        members = members.filter(reg_group=filters.reg_group)
    if filters.q.strip():
        # By name, email, mobile or MIS id: the member's own, or a linked adult's (find.py).
        members = members.filter(search_q(school, filters.q))
    members = members.annotate(reachable=reachable_expression())
    if filters.reachable in ("yes", "no"):
        members = members.filter(reachable=filters.reachable == "yes")
    return members.order_by("surname", "forename", "pk")


@dataclass(frozen=True)
class MemberSummary:
    linked: int
    primes: list[str]


def link_summaries(member_ids: list[int]) -> dict[int, MemberSummary]:
    """For one page of members: how many adults each has and who their prime parents are, in
    one query rather than one per row."""
    linked: Counter[int] = Counter()
    primes: dict[int, list[str]] = defaultdict(list)
    for student_id, prime, forename, surname in (
        Link.objects.filter(student_id__in=member_ids)
        .order_by("student_id", "priority", "pk")
        .values_list("student_id", "prime", "adult__forename", "adult__surname")
    ):
        linked[student_id] += 1
        if prime:
            primes[student_id].append(_name(forename, surname))
    return {m: MemberSummary(linked[m], primes.get(m, [])) for m in member_ids}


def filter_choices(school: School) -> dict[str, list[str]]:
    """The year and registration groups present in the school, for the filter menus."""
    students = Member.objects.filter(school=school).exclude(year="", reg_group="")
    # School order (Nursery, Reception, 1 … 13), not text order, which puts R after 11.
    years = in_school_order({y for y in students.values_list("year", flat=True).distinct() if y})
    groups = sorted({g for g in students.values_list("reg_group", flat=True).distinct() if g})
    return {"years": years, "reg_groups": groups}


# --- the linked-people screen -------------------------------------------------------------------


def member_links(member: Member) -> list[Link]:
    return list(
        Link.objects.filter(student=member)
        .select_related("adult")
        .order_by("-prime", "priority", "adult__surname", "adult__forename", "pk")
    )


def member_pending_links(member: Member) -> list[PendingLink]:
    return list(
        PendingLink.objects.filter(student=member, status=PendingLink.Status.WAITING)
        .select_related("adult")
        .order_by("created_at", "pk")
    )
