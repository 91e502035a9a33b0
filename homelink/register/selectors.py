"""Reads of the register."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from homelink.register.models import Adult, Link, Member
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
