"""The fictional CTF generator: it must read back through the real parser, be reproducible, and
never produce a number or address that could reach a real person."""

from __future__ import annotations

import io
import re
from collections import defaultdict
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from homelink.mis.formats.csv_mapped import open_csv
from homelink.mis.formats.ctf import open_ctf
from homelink.mis.generate import MAX_NAME_POOL, GeneratedStats, NamePool, generate_ctf
from homelink.mis.phones import PhoneKind, classify, is_fictional, pick_mobile
from homelink.mis.records import ContactRecord, MemberRecord, ParsedFile

DRAMA = {f"+447700{n}" for n in range(900000, 901000)}
# Ofcom's drama landlines: 0113/4/6/7/8 496 0xxx, 0121-0161 496 0xxx, 020 7946 0xxx,
# 0191 498 0xxx.
DRAMA_LANDLINE = re.compile(r"\+44(11[34678]496|1[2-6]1496|207946|191498)0\d{3}")


def generate(pupils: int, **kwargs: object) -> tuple[bytes, GeneratedStats]:
    out = io.BytesIO()
    stats = generate_ctf(out, pupils=pupils, **kwargs)  # type: ignore[arg-type]
    return out.getvalue(), stats


def parse(data: bytes) -> tuple[ParsedFile, list[MemberRecord]]:
    parsed = open_ctf(io.BytesIO(data))
    return parsed, list(parsed.members)


@pytest.fixture(scope="module")
def school() -> tuple[bytes, GeneratedStats, ParsedFile, list[MemberRecord]]:
    data, stats = generate(2000, seed=7)
    parsed, members = parse(data)
    return data, stats, parsed, members


def person(contact: ContactRecord) -> tuple[object, ...]:
    return (
        contact.title,
        contact.forename,
        contact.surname,
        contact.relationship,
        contact.parental_responsibility,
        contact.email,
        contact.phones,
        contact.court_order,
    )


def all_phones(members: list[MemberRecord]) -> list[tuple[str, str]]:
    found = []
    for member in members:
        found += [(p.kind, p.number) for p in member.phones or ()]
        for contact in member.contacts or ():
            found += [(p.kind, p.number) for p in contact.phones]
    return found


def test_generated_file_reads_back_through_the_parser(school) -> None:
    data, stats, parsed, members = school
    header = parsed.header
    assert (header.version, header.qualifier) == ("19.0", "full")
    assert (header.source_urn, header.source_la, header.source_estab) == ("100001", "838", "4512")
    assert header.source_name == "Example Academy"
    assert header.dest_la == "838"
    assert stats.pupils == len(members) == 2000
    assert stats.contacts == sum(len(m.contacts or ()) for m in members)
    assert stats.bytes == len(data)
    assert len({m.mis_id for m in members}) == 2000
    # Every UPN (and former UPN) carries the right check letter.
    assert not [note for note in parsed.notes if "check letter" in note or "like a UPN" in note]
    assert sum(1 for m in members if m.former_ids) > 0
    assert {m.year for m in members} == {"R", *map(str, range(1, 12))}
    contact_counts = [len(m.contacts or ()) for m in members]
    assert min(contact_counts) == 1
    assert max(contact_counts) == 4
    assert 2.6 < sum(contact_counts) / len(contact_counts) < 3.2
    # A few KB per pupil, like a real SIMS export.
    assert 2_000 < stats.bytes / stats.pupils < 10_000


def test_same_seed_gives_identical_bytes_and_another_seed_does_not() -> None:
    first, _ = generate(150, seed=42)
    again, _ = generate(150, seed=42)
    other, _ = generate(150, seed=43)
    assert first == again
    assert first != other


def test_writes_to_a_path(tmp_path: Path) -> None:
    path = tmp_path / "school.xml"
    stats = generate_ctf(path, pupils=20, seed=1)
    assert path.stat().st_size == stats.bytes
    assert path.read_bytes() == generate(20, seed=1)[0]


def test_siblings_share_the_same_parents(school) -> None:
    _, stats, _, members = school
    # Group pupils by their set of contacts: siblings list the very same adults.
    families: dict[frozenset[tuple[object, ...]], list[MemberRecord]] = defaultdict(list)
    for member in members:
        families[frozenset(person(c) for c in member.contacts or ())].append(member)
    with_siblings = [group for group in families.values() if len(group) > 1]
    assert len(families) == stats.families
    assert 0.2 < len(with_siblings) / len(families) < 0.4
    assert max(len(group) for group in with_siblings) == 3

    # And the same adult is never split across families: a mobile or email belongs to one
    # person, with one name.
    owners: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for member in members:
        for contact in member.contacts or ():
            mobile = pick_mobile(contact.phones).mobile
            for key in (mobile, contact.email):
                if key:
                    owners[key].add((contact.forename, contact.surname))
    assert all(len(names) == 1 for names in owners.values())


def test_every_mobile_is_fictional(school) -> None:
    _, _, _, members = school
    mobiles = [
        classify(number).value
        for _, number in all_phones(members)
        if classify(number).kind == PhoneKind.MOBILE
    ]
    assert len(mobiles) > 4000
    assert all(is_fictional(m) for m in mobiles)


def test_numbers_that_are_not_mobiles_are_drama_landlines_or_short_mobiles(school) -> None:
    _, _, _, members = school
    for kind, number in all_phones(members):
        result = classify(number)
        if result.kind == PhoneKind.NOT_MOBILE:
            assert kind in ("H", "W")
            assert DRAMA_LANDLINE.fullmatch(result.value), number
        elif result.kind == PhoneKind.INVALID:
            # The only invalid numbers are the mistyped 07700 9 mobiles, a digit short.
            assert kind == "M"
            assert re.fullmatch(r"07700 9\d{4}", number), number


def test_drama_range_is_used_first() -> None:
    data, stats = generate(150, seed=3)
    _, members = parse(data)
    used = {pick_mobile(c.phones).mobile for m in members for c in m.contacts or ()} - {""}
    assert stats.mobiles < 1000
    assert used <= DRAMA

    data, stats = generate(800, seed=3)
    _, members = parse(data)
    used = {
        classify(n).value for _, n in all_phones(members) if classify(n).kind == PhoneKind.MOBILE
    }
    assert stats.mobiles > 1000
    assert used >= DRAMA
    assert all(is_fictional(m) for m in used)
    assert len(used) == stats.mobiles  # each number handed out once


def test_every_email_is_at_an_example_domain(school) -> None:
    _, _, _, members = school
    emails = [m.email for m in members if m.email]
    emails += [c.email for m in members for c in m.contacts or () if c.email]
    assert len(emails) > 4000
    assert all(re.fullmatch(r"[a-z0-9.]+@example\.(org|com)", e) for e in emails)
    missing = sum(1 for m in members for c in m.contacts or () if not c.email)
    assert missing > 0


def test_real_file_quirks_are_present(school) -> None:
    data, _, parsed, members = school
    contacts = [c for m in members for c in m.contacts or ()]
    # Contacts listed out of Order: the record's place in the file is not its sorted place.
    assert any(
        c.where.rsplit(" ", 1)[1] != str(i)
        for m in members
        for i, c in enumerate(m.contacts or (), start=1)
    )
    assert any("contacts share <Order> 1" in note for note in parsed.notes)
    assert any(c.relationship == "" for c in contacts)
    assert {c.relationship for c in contacts} == {"PAM", "PAF", "REL", "OTH", ""}
    assert any(c.court_order for c in contacts)
    assert sum(c.court_order for c in contacts) < len(contacts) * 0.02
    # A mistyped M number before the real mobile: the real one is still chosen.
    double = [
        c
        for c in contacts
        if [p.kind for p in c.phones].count("M") == 2 and pick_mobile(c.phones).problems
    ]
    assert double
    for contact in double:
        first, second = [p.number for p in contact.phones if p.kind == "M"]
        assert classify(first).kind == PhoneKind.INVALID
        assert pick_mobile(contact.phones).mobile == classify(second).value
    # Spaced, unspaced and international forms of the mobiles.
    numbers = [n for _, n in all_phones(members)]
    assert any(re.fullmatch(r"07700 9\d{5}", n) for n in numbers)
    assert any(re.fullmatch(r"077009\d{5}", n) for n in numbers)
    assert any(n.startswith("+44") for n in numbers)
    # Padded text survives in the file and is stripped by the parser.
    assert re.search(rb"<Forename>  \S", data)
    assert re.search(rb"<PAON> {10}\S", data)
    assert b"<AddressLines>" in data
    assert b"<BS7666Address>" in data
    for block in (b"<Attendance>", b"<StageAssessments>", b"<SchoolHistory>"):
        assert data.count(block) == 2000
    assert all(c.forename == c.forename.strip() for c in contacts)
    assert any(m.email for m in members)
    assert any(m.phones for m in members)


def test_version_25_writes_sex_not_gender() -> None:
    data, _ = generate(10, seed=1, version="25.0")
    assert b"<Sex>" in data
    assert b"<Gender>" not in data
    parsed, members = parse(data)
    assert parsed.header.version == "25.0"
    assert len(members) == 10


def test_partial_file_has_no_contacts_or_phones() -> None:
    data, stats = generate(30, seed=1, qualifier="partial")
    assert b"<Contacts>" not in data
    assert b"<Phones>" not in data
    parsed, members = parse(data)
    assert parsed.header.carries_contacts is False
    assert stats.contacts == 0
    assert all(m.contacts is None for m in members)


def test_the_school_identity_is_written_as_given() -> None:
    data, _ = generate(
        5, seed=1, urn="123456", la="201", estab="6905", school_name="St Bede's & Co"
    )
    parsed, members = parse(data)
    header = parsed.header
    assert (header.source_urn, header.source_la, header.source_estab) == ("123456", "201", "6905")
    assert header.source_name == "St Bede's & Co"
    # The UPNs are allocated in the school's LA.
    assert all(m.mis_id[1:4] == "201" for m in members)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"urn": "12345"}, "URN"),
        ({"la": "83"}, "LA code"),
        ({"estab": "45A2"}, "establishment number"),
        ({"qualifier": "some"}, "qualifier"),
        ({"pupils": -1}, "pupils"),
    ],
)
def test_impossible_arguments_are_refused(kwargs: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {"pupils": 1, **kwargs}
    with pytest.raises(ValueError, match=message):
        generate_ctf(io.BytesIO(), **arguments)  # type: ignore[arg-type]


def test_command_writes_the_file_and_prints_a_summary(tmp_path: Path) -> None:
    path = tmp_path / "out.xml"
    stdout = StringIO()
    call_command(
        "generate_ctf",
        "--pupils",
        "25",
        "--seed",
        "5",
        "--urn",
        "100002",
        "--la",
        "839",
        "--estab",
        "4513",
        "--name",
        "Other School",
        str(path),
        stdout=stdout,
    )
    assert (
        path.read_bytes()
        == generate(25, seed=5, urn="100002", la="839", estab="4513", school_name="Other School")[0]
    )
    summary = stdout.getvalue().strip()
    assert summary.startswith("Wrote 25 pupils, ")
    assert str(path) in summary
    assert "\n" not in summary
    parsed, members = parse(path.read_bytes())
    assert parsed.header.source_name == "Other School"
    assert len(members) == 25


def test_command_refuses_a_bad_urn(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="URN"):
        call_command("generate_ctf", "--pupils", "1", "--urn", "abc", str(tmp_path / "x.xml"))


def test_registration_groups_come_as_a_members_csv_for_the_same_pupils(tmp_path: Path) -> None:
    # A CTF carries no registration groups (mis-formats.md §1): the generator writes the CSV a
    # school would import beside it, and the CTF's bytes do not change for asking.
    groups_path = tmp_path / "groups.csv"
    data, _ = generate(300, seed=3)
    with_groups, stats = generate(300, seed=3, groups_out=groups_path)
    assert with_groups == data

    _, members = parse(data)
    read = open_csv(groups_path)
    assert read.header.carries_students and not read.header.carries_staff
    rows = {m.mis_id: m for m in read.members}
    # Every pupil of the CTF, by UPN, with the same name and year, and a group in that year.
    assert set(rows) == {m.mis_id for m in members}
    for member in members:
        row = rows[member.mis_id]
        assert (row.forename, row.surname, row.year) == (
            member.forename,
            member.surname,
            member.year,
        )
        assert row.reg_group is not None and row.reg_group[:-1] == member.year
    groups = {row.reg_group for row in rows.values()}
    assert stats.reg_groups == len(groups)
    by_year = defaultdict(set)
    for row in rows.values():
        by_year[row.year].add(row.reg_group)
    assert all(len(names) == 2 for names in by_year.values()), by_year  # 7A and 7B


def test_command_writes_the_groups_when_asked(tmp_path: Path) -> None:
    stdout = StringIO()
    call_command(
        "generate_ctf",
        "--pupils",
        "40",
        "--groups",
        str(tmp_path / "g.csv"),
        str(tmp_path / "c.xml"),
        stdout=stdout,
    )
    assert "registration groups to" in stdout.getvalue()
    assert (tmp_path / "g.csv").read_text().startswith("UPN,Forename,Surname,Registration group")


def test_a_name_pool_draws_every_name_from_it_and_keeps_adults_apart() -> None:
    # A trust-wide export: few names, each shared by many adults who are not the same person.
    data, stats = generate(400, seed=2, name_pool=(3, 2))
    _, members = parse(data)
    contacts = [c for m in members for c in m.contacts or ()]
    pool = NamePool.small(3, 2)
    assert (
        {c.forename for c in contacts}
        <= {*pool.girls, *pool.boys}
        == {
            "Olivia",
            "Muhammad",
            "Amelia",
        }
    )
    assert {c.surname for c in contacts} | {m.surname for m in members} == {"Smith", "Jones"}
    assert len({(c.forename, c.surname) for c in contacts}) <= 6
    # Each mobile and email still belongs to one adult: the names are shared, the people not.
    owners: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for contact in contacts:
        for key in (pick_mobile(contact.phones).mobile, contact.email):
            if key:
                owners[key].add((contact.forename, contact.surname))
    assert all(len(names) == 1 for names in owners.values())
    assert len(owners) > stats.adults
    # The full lists are the default, and give the same bytes as before there was a pool.
    assert generate(50, seed=2)[0] == generate(50, seed=2, name_pool=None)[0]
    assert generate(50, seed=2)[0] != generate(50, seed=2, name_pool=(3, 2))[0]


@pytest.mark.parametrize("pool", [(0, 5), (5, 0), (MAX_NAME_POOL[0] + 1, 5)])
def test_an_impossible_name_pool_is_refused(pool: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match="name pool"):
        generate_ctf(io.BytesIO(), pupils=1, name_pool=pool)


def test_a_pool_of_one_forename_gives_everyone_that_forename() -> None:
    data, _ = generate(20, seed=1, name_pool=(1, 1))
    _, members = parse(data)
    assert {m.forename for m in members} == {"Olivia"}
    assert {c.forename for m in members for c in m.contacts or ()} == {"Olivia"}


def test_command_writes_a_name_pool_file(tmp_path: Path) -> None:
    path = tmp_path / "pool.xml"
    stdout = StringIO()
    call_command("generate_ctf", "--pupils", "30", "--name-pool", "25x40", str(path), stdout=stdout)
    assert path.read_bytes() == generate(30, name_pool=(25, 40))[0]
    assert "Names from a pool of 25 forenames x 40 surnames." in stdout.getvalue()
    for bad in ("25", "25x", "0x40", f"25x{MAX_NAME_POOL[1] + 1}"):
        with pytest.raises(CommandError, match="name-pool"):
            call_command("generate_ctf", "--pupils", "1", "--name-pool", bad, str(path))
