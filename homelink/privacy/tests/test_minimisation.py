"""Data minimisation proved (issue 13 point 7; product.md: "Only contact details are kept from a
CTF (no SEN, free-meals or looked-after data)").

A CTF whose pupil carries SEN, free-school-meals, looked-after, ethnicity, attendance and
assessment blocks (data/ctf_with_sensitive_blocks.xml: every value in those blocks contains "ZQ",
found nowhere else) is previewed and imported, and then every column of every table in the
database is read back: none of those values is anywhere. The pupil's contact's email and mobile
are found, so the scan does see what an import stores.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from django.db import connection

from homelink.mis.tests.test_cli import homelink
from homelink.register.models import Adult, Member
from homelink.schools.models import School

pytestmark = pytest.mark.django_db

CTF = Path(__file__).parent / "data" / "ctf_with_sensitive_blocks.xml"

#: What the sensitive blocks of the fixture say, by block.
PLANTED = {
    "ethnicity": ["ZQETHNICWBRI", "ZQETHSOURCE"],
    "looked after": ["ZQINCARETRUE", "ZQCAREAUTH838", "ZQLOOKEDAFTER"],
    "SEN": ["ZQSENPROVEHC", "ZQSENHISTORY", "ZQSENNEEDASD"],
    "free school meals": ["ZQFSMCOUNTRY"],
    "attendance": ["ZQATTENDMARK", "ZQSESSIONS312", "ZQAUTHABSENT"],
    "assessment": ["ZQKS2RESULT"],
    "medical": ["ZQMEDICAL"],
}


def _text(value: object) -> str:
    if isinstance(value, memoryview):
        value = value.tobytes()
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return "" if value is None else str(value)


def database_text() -> dict[str, str]:
    """Every table's every value, as text (JSON, binary and all), by table: read through the
    database's own catalogue, so no table or column a model forgot to declare is missed."""
    found: dict[str, str] = {}
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608
            found[table] = "\n".join(
                "\t".join(_text(value) for value in row) for row in cursor.fetchall()
            )
    return found


def test_the_fixture_carries_every_sensitive_block() -> None:
    text = CTF.read_text(encoding="utf-8")
    for block in ("<SENhistory>", "<SENneeds>", "<FSMhistory>", "<LookedAfter>", "<Ethnicity>"):
        assert block in text
    for block in ("<Attendance>", "<StageAssessments>"):
        assert block in text
    for values in PLANTED.values():
        for value in values:
            assert len(re.findall(value, text)) == 1, value


def test_no_sensitive_block_is_stored_anywhere(school: School) -> None:
    preview = json.loads(
        homelink("import", "--school", school.urn, str(CTF), "--dry-run", "--json")
    )
    assert preview["status"] == "preview"
    applied = json.loads(homelink("import", "--school", school.urn, str(CTF), "--json"))
    assert applied["status"] == "applied"
    homelink("export", "--school", school.urn, "--json")
    assert Member.objects.filter(school=school, mis_id="D838330119001").exists()

    tables = database_text()
    everything = "\n".join(tables.values())
    # The scan sees what the import keeps: the contact's name, email and mobile.
    adult = Adult.objects.get(school=school, forename="Delphine")
    assert (adult.email, adult.mobile) == ("delphine.quenby@example.org", "+447700900302")
    for kept in ("delphine.quenby@example.org", "+447700900302", "D838330119001"):
        assert kept in everything, f"the scan should find {kept}"
    assert len(tables) > 20, "the scan should cover the whole schema"
    leaks = {
        block: [
            (value, table) for value in values for table, text in tables.items() if value in text
        ]
        for block, values in PLANTED.items()
    }
    assert {block: found for block, found in leaks.items() if found} == {}
    assert "ZQ" not in everything
