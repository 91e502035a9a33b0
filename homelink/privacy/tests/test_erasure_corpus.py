"""Erasure proved against a re-import of a real SIMS file (the conformance tier: the sample is
shared/samples/ctf/gryphon_y7_2_students.xml, see shared/samples/SOURCES.md; where ``shared/`` is
absent the tier skips with one line). test_erasure.py proves the same on an in-tree fixture."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from homelink.audit.models import AuditEvent
from homelink.mis.tests.test_cli import export, homelink
from homelink.mis.tombstones import ERASED
from homelink.privacy.erasure import erasure_records, tombstone_lift
from homelink.register.models import Adult
from homelink.schools.models import School

pytestmark = pytest.mark.django_db


def _links(school: School) -> dict[str, list[tuple[str, int]]]:
    return {
        m["mis_id"]: [(x["forename"], x["adult_id"]) for x in m["links"]]
        for m in export(school.urn)["members"]
    }


def test_an_erased_parent_stays_erased_across_reimports_of_a_real_sims_file(
    school: School, samples: Path
) -> None:
    path = samples / "ctf" / "gryphon_y7_2_students.xml"
    homelink("school", "set", school.urn, "--import-lower-priority", "on")
    homelink("import", "--school", school.urn, str(path))
    before = _links(school)
    [jeanie] = [adult_id for name, adult_id in before["G335311012004"] if name == "Jeanie"]

    out = homelink("privacy", "erase", "--school", school.urn, "--adult", str(jeanie), "--yes")
    assert "Erased adult" in out
    assert not Adult.objects.filter(pk=jeanie).exists()
    event = AuditEvent.objects.get(school=school, action="adult.erased")
    assert "jean19richie" not in json.dumps(event.detail)

    # The same file again: previewed, then applied.
    preview = json.loads(
        homelink("import", "--school", school.urn, str(path), "--dry-run", "--json")
    )
    skipped = [d for d in preview["details"]["skip"] if d.get("reason") == ERASED]
    assert [d["who"].split(" (")[0] for d in skipped] == ["a contact of Lionel Richie"]
    assert "Jeanie" not in json.dumps(preview)
    again = json.loads(homelink("import", "--school", school.urn, str(path), "--json"))
    assert again["adults"]["created"] == 0 and again["links"]["created"] == 0
    after = _links(school)
    assert "Jeanie" not in [name for name, _ in after["G335311012004"]]
    # Everyone else is exactly as before.
    assert after["U865346313703"] == before["U865346313703"]
    assert [x for x in before["G335311012004"] if x[0] != "Jeanie"] == after["G335311012004"]

    # Lifted, the next import brings her back as a new adult.
    [record] = erasure_records(school)
    tombstone_lift(school=school, erasure=record.erasure, actor="cli")
    back = json.loads(homelink("import", "--school", school.urn, str(path), "--json"))
    assert back["adults"]["created"] == 1
    assert "Jeanie" in [name for name, _ in _links(school)["G335311012004"]]
