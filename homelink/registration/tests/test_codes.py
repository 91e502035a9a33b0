"""Security codes: unguessable, forgiving to type, stored only as a keyed hash, revocable."""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import replace

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from homelink.audit.models import AuditEvent
from homelink.mis.tests.factories import pupil, run_import
from homelink.register.models import Member
from homelink.registration.codes import (
    ALPHABET,
    BITS,
    LENGTH,
    code_hash,
    format_code,
    generate_code,
    normalise_code,
)
from homelink.registration.models import SecurityCode
from homelink.registration.services import (
    code_lookup,
    code_revoke,
    codes_issue,
    codes_revoke_all,
)
from homelink.schools.models import School

FORMATTED = re.compile(r"^[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){3}$")


@pytest.fixture
def students(school: School) -> list[Member]:
    run_import(
        school,
        [
            replace(pupil("A100000000001", "Sam", "Smith"), reg_group="7A"),
            replace(pupil("A100000000002", "Ava", "Jones"), reg_group="7B"),
        ],
    )
    return list(Member.objects.filter(school=school).order_by("mis_id"))


def issue_one(school: School, member: Member, now: dt.datetime | None = None) -> str:
    [(_, code)] = codes_issue(school=school, members=[member], actor="test", now=now)
    return code


# Making codes -----------------------------------------------------------------------------------


def test_alphabet_is_crockford_base32_and_codes_carry_80_bits() -> None:
    assert len(ALPHABET) == len(set(ALPHABET)) == 32
    assert not set("ILOU") & set(ALPHABET)
    assert LENGTH * math.log2(len(ALPHABET)) == BITS >= 64


def test_codes_are_16_symbols_of_the_alphabet_printed_in_groups_of_four() -> None:
    codes = [generate_code() for _ in range(2000)]
    assert all(len(code) == LENGTH and set(code) <= set(ALPHABET) for code in codes)
    assert len(set(codes)) == len(codes)
    # Every symbol turns up in every position: nothing is fixed or skewed away.
    for position in range(LENGTH):
        assert {code[position] for code in codes} == set(ALPHABET)
    assert FORMATTED.match(format_code(codes[0]))
    assert format_code("7KQ2M9XD4RTWPBH3") == "7KQ2-M9XD-4RTW-PBH3"


# Reading codes as typed -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "typed",
    [
        "7KQ2-M9XD-4RTW-PBH3",
        "7KQ2M9XD4RTWPBH3",
        "7kq2-m9xd-4rtw-pbh3",
        " 7KQ2 M9XD 4RTW PBH3 ",
        "7KQ2 - M9XD - 4RTW - PBH3",
        "7KQ2\u2013M9XD\u20134RTW\u2013PBH3",  # en dashes, as word processors and phones make them
    ],
)
def test_normalise_accepts_case_spaces_and_hyphens(typed: str) -> None:
    assert normalise_code(typed) == "7KQ2M9XD4RTWPBH3"


def test_normalise_reads_look_alikes_as_the_digits() -> None:
    assert normalise_code("1O00-0000-0000-000I") == "1000000000000001"
    assert normalise_code("lo0o-ILil-0000-0000") == "1000111100000000"


@pytest.mark.parametrize(
    "typed",
    [
        "",
        "7KQ2-M9XD-4RTW",
        "7KQ2-M9XD-4RTW-PBH",
        "7KQ2-M9XD-4RTW-PBH33",
        "7KQ2-M9XD-4RTW-PBHU",  # U is not in the alphabet
        "7KQ2-M9XD-4RTW-PBH!",
        "7KQ2_M9XD_4RTW_PBH3",
        "7KQ2-M9XD-4RTW-PBHÉ",
    ],
)
def test_normalise_refuses_what_cannot_be_a_code(typed: str) -> None:
    assert normalise_code(typed) is None


# Storing codes ----------------------------------------------------------------------------------


def every_stored_value() -> list[str]:
    """Every value of every row of every table, as text."""
    values: list[str] = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608
            values.extend(str(value) for row in cursor.fetchall() for value in row)
    return values


def test_the_database_never_holds_the_clear_code(school: School, students: list[Member]) -> None:
    issued = codes_issue(school=school, members=students, actor="test")
    stored = "\n".join(every_stored_value()).upper()
    for _, code in issued:
        clear = normalise_code(code)
        assert clear is not None
        assert code not in stored
        assert clear not in stored
    for row in SecurityCode.objects.values("code_hash"):
        assert re.fullmatch(r"[0-9a-f]{64}", row["code_hash"])


def test_the_hash_is_keyed_by_the_secret_key() -> None:
    with override_settings(SECRET_KEY="one key" * 8):
        first = code_hash("7KQ2M9XD4RTWPBH3")
    with override_settings(SECRET_KEY="another key" * 8):
        second = code_hash("7KQ2M9XD4RTWPBH3")
    assert first != second


def test_codes_still_work_after_the_secret_key_is_rotated(
    school: School, students: list[Member]
) -> None:
    with override_settings(SECRET_KEY="old key" * 8):
        code = issue_one(school, students[0])
    with override_settings(SECRET_KEY="new key" * 8, SECRET_KEY_FALLBACKS=["old key" * 8]):
        assert code_lookup(raw=code) is not None
    with override_settings(SECRET_KEY="new key" * 8, SECRET_KEY_FALLBACKS=[]):
        assert code_lookup(raw=code) is None


def test_audit_records_the_issue_without_codes(school: School, students: list[Member]) -> None:
    issued = codes_issue(school=school, members=students, actor="test")
    event = AuditEvent.objects.get(action="codes.issued")
    assert event.detail == {"count": 2}
    assert not any(code in str(event.detail) for _, code in issued)


# Looking codes up -------------------------------------------------------------------------------


def test_a_code_looks_up_to_its_member_however_it_is_typed(
    school: School, students: list[Member]
) -> None:
    sam, ava = students
    code = issue_one(school, sam)
    other = issue_one(school, ava)
    for typed in (code, code.lower(), code.replace("-", " "), code.replace("-", "")):
        found = code_lookup(raw=typed)
        assert found is not None
        assert found.member == sam
    found = code_lookup(raw=other)
    assert found is not None
    assert found.member == ava


def test_unknown_and_malformed_codes_find_nothing(school: School, students: list[Member]) -> None:
    issue_one(school, students[0])
    assert code_lookup(raw=format_code(generate_code())) is None
    assert code_lookup(raw="not a code") is None
    assert code_lookup(raw="") is None


def test_a_revoked_code_fails_at_once(school: School, students: list[Member]) -> None:
    code = issue_one(school, students[0])
    found = code_lookup(raw=code)
    assert found is not None
    code_revoke(code=found, actor="staff:1")
    assert code_lookup(raw=code) is None
    found.refresh_from_db()
    assert found.revoked_by == "staff:1"
    assert AuditEvent.objects.filter(action="code.revoked", object_id=str(found.pk)).count() == 1


def test_revoking_twice_changes_nothing(school: School, students: list[Member]) -> None:
    issue_one(school, students[0])
    code = SecurityCode.objects.get()
    first = code_revoke(code=code, actor="staff:1").revoked_at
    second = code_revoke(code=code, actor="staff:2")
    assert (second.revoked_at, second.revoked_by) == (first, "staff:1")
    assert AuditEvent.objects.filter(action="code.revoked").count() == 1


def test_an_expired_code_fails_even_when_issued_moments_before(
    school: School, students: list[Member]
) -> None:
    school.code_expiry_days = 90
    issued_at = timezone.now()
    code = issue_one(school, students[0], now=issued_at)
    expires = issued_at + dt.timedelta(days=90)
    assert code_lookup(raw=code, now=issued_at + dt.timedelta(seconds=1)) is not None
    assert code_lookup(raw=code, now=expires - dt.timedelta(seconds=1)) is not None
    assert code_lookup(raw=code, now=expires) is None
    assert code_lookup(raw=code, now=expires + dt.timedelta(days=1)) is None


def test_expiry_follows_the_schools_setting(school: School, students: list[Member]) -> None:
    school.code_expiry_days = 1
    school.save()
    now = timezone.now()
    code = issue_one(school, students[0], now=now)
    assert SecurityCode.objects.get().expires_at == now + dt.timedelta(days=1)
    assert code_lookup(raw=code, now=now + dt.timedelta(hours=23)) is not None
    assert code_lookup(raw=code, now=now + dt.timedelta(hours=24, seconds=1)) is None


def test_a_member_can_hold_several_live_codes(school: School, students: list[Member]) -> None:
    sam = students[0]
    first = issue_one(school, sam)
    second = issue_one(school, sam)
    assert first != second
    for code in (first, second):
        found = code_lookup(raw=code)
        assert found is not None
        assert found.member == sam
    assert SecurityCode.objects.filter(member=sam).live(timezone.now()).count() == 2


def test_revoking_all_of_a_members_codes_leaves_others_alone(
    school: School, students: list[Member]
) -> None:
    sam, ava = students
    sams = [issue_one(school, sam), issue_one(school, sam)]
    avas = issue_one(school, ava)
    assert codes_revoke_all(member=sam, actor="staff:1") == 2
    assert all(code_lookup(raw=code) is None for code in sams)
    assert code_lookup(raw=avas) is not None
    assert codes_revoke_all(member=sam, actor="staff:1") == 0


def test_codes_are_issued_only_for_the_schools_own_members(
    school: School, students: list[Member]
) -> None:
    other = School.objects.create(urn="100002", name="Other School")
    with pytest.raises(ValidationError):
        codes_issue(school=other, members=students, actor="test")
    assert not SecurityCode.objects.exists()
