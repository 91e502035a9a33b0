"""The ``homelink`` commands as a data manager uses them, on fixtures that carry the quirks of real
SIMS and OneRoster files (data/README.md). The same imports of the real samples are in
test_corpus.py (the conformance tier)."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from homelink.cli import ALIASES
from homelink.mis.models import ImportRun
from homelink.register.models import Adult, Link, Member
from homelink.schools.models import School

pytestmark = pytest.mark.django_db

DATA = Path(__file__).parent / "data"
# Two pupils moving in (DestSchool LA 838 / Estab 4512: the `school` fixture), contacts out of order.
TRANSFER = DATA / "ctf_transfer_contacts_out_of_order.xml"
# One pupil, a DestSchool without a URN, contacts without a relationship.
ONE_PUPIL = DATA / "ctf_missing_relationship_and_short_mobile.xml"


def homelink(name: str, *args: str) -> str:
    """``homelink NAME ARGS`` in-process, under the console script's own command names."""
    out = io.StringIO()
    call_command(ALIASES.get(name, name), *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def export(urn: str) -> dict:
    return json.loads(homelink("export", "--school", urn, "--json"))


def test_a_ctf_order_above_a_small_integer_is_imported(school: School, tmp_path: Path) -> None:
    # <Order> is the link's priority: 40,000 overflowed PostgreSQL's smallint. Any whole number
    # up to 2,147,483,647 is kept; a negative or larger one is no priority (noted), like junk.
    school.import_lower_priority = True
    school.save()
    text = TRANSFER.read_text(encoding="utf-8")
    for old, new in (
        ("<Order>3</Order>", "<Order>2147483647</Order>"),  # Dennis
        ("<Order>4</Order>", "<Order>40000</Order>"),  # Brenda
        ("<Order>2</Order>", "<Order>99999999999</Order>"),  # Gareth
        ("<Order>3</Order>", "<Order>-3</Order>"),  # Irene, under the second pupil
    ):
        assert old in text
        text = text.replace(old, new, 1)
    path = tmp_path / "orders.xml"
    path.write_text(text, encoding="utf-8")
    summary = json.loads(homelink("import", "--school", school.urn, str(path), "--json"))
    assert summary["status"] == "applied"
    priorities = dict(Link.objects.filter(school=school).values_list("adult__forename", "priority"))
    assert priorities["Brenda"] == 40000
    assert priorities["Dennis"] == 2_147_483_647
    assert priorities["Gareth"] is None
    assert priorities["Irene"] is None
    assert priorities["Kerry"] == 1
    notes = "\n".join(summary["notes"])
    assert "<Order> 99999999999 is out of range (0 to 2,147,483,647): no priority" in notes
    assert "<Order> -3 is out of range" in notes


def test_school_add_and_set(db: None) -> None:
    homelink(
        "school",
        "add",
        "--urn",
        "123456",
        "--name",
        "Hill School",
        "--la",
        "838",
        "--estab",
        "4512",
    )
    homelink("school", "set", "123456", "--import-lower-priority", "on")
    school = School.objects.get(urn="123456")
    assert (
        school.name,
        school.la_code,
        school.estab,
        school.phone_region,
        school.import_lower_priority,
    ) == (
        "Hill School",
        "838",
        "4512",
        "GB",
        True,
    )
    with pytest.raises(CommandError, match="already exists"):
        homelink("school", "add", "--urn", "123456", "--name", "Again")
    with pytest.raises(CommandError, match="three digits"):
        homelink("school", "add", "--urn", "654321", "--name", "Bad", "--la", "8")


def test_importing_a_sims_transfer_file_and_exporting_the_register(school: School) -> None:
    path = TRANSFER
    summary = json.loads(homelink("import", "--school", school.urn, str(path), "--json"))
    assert summary["status"] == "applied"
    assert summary["students"]["created"] == 2
    assert summary["links"]["created"] == 2  # the two priority-1 mothers; lower priorities off
    assert not summary["whole_roll"], "a transfer-in never marks anyone left"

    data = export(school.urn)
    assert data["school"] == {"urn": school.urn, "name": school.name}
    students = {m["mis_id"]: m for m in data["members"]}
    assert set(students) == {"K838329919001", "A838329919002"}
    alfie = students["K838329919001"]
    assert (alfie["forename"], alfie["surname"], alfie["kind"], alfie["status"]) == (
        "Alfie",
        "Marchbank",
        "student",
        "current",
    )
    assert [
        (x["forename"], x["mobile"], x["email"], x["prime"], x["priority"], x["source"])
        for x in alfie["links"]
    ] == [("Kerry", "+447700900220", "kerry19marchbank@example.org", True, 1, "import")]
    poppy = students["A838329919002"]
    assert [
        (x["forename"], x["mobile"], x["email"], x["relationship"]) for x in poppy["links"]
    ] == [("Hannah", "+447700900238", "fairweather629@example.org", "mother")]
    member_keys = {
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
        "links",
    }
    link_keys = {
        "adult_id",
        "forename",
        "surname",
        "email",
        "mobile",
        "registered",
        "opted_out",
        "held",
        "prime",
        "priority",
        "source",
        "relationship",
    }
    assert member_keys <= set(alfie)
    assert link_keys <= set(alfie["links"][0])


def test_adult_ids_are_stable_across_reimports(school: School) -> None:
    homelink("school", "set", school.urn, "--import-lower-priority", "on")
    path = TRANSFER
    homelink("import", "--school", school.urn, str(path))
    first = export(school.urn)
    again = json.loads(homelink("import", "--school", school.urn, str(path), "--json"))
    assert again["adults"] == {"created": 0, "updated": 0, "skipped": 0}
    assert again["links"] == {"created": 0, "updated": 0, "removed": 0, "skipped": 0}
    assert export(school.urn) == first
    links = {m["mis_id"]: len(m["links"]) for m in first["members"]}
    assert links == {"K838329919001": 4, "A838329919002": 3}


def test_dry_run_shows_the_plan_and_changes_nothing(school: School) -> None:
    out = homelink("import", "--school", school.urn, str(ONE_PUPIL), "--dry-run")
    assert "Preview (nothing written)" in out
    assert "1 created" in out
    assert "lower-priority contacts are not imported" in out
    assert not Member.objects.exists()
    assert ImportRun.objects.get().status == "preview"


@pytest.mark.parametrize(
    "payload",
    [
        '<?xml version="1.0"?><!DOCTYPE CTfile [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><CTfile>&b;</CTfile>',
        '<?xml version="1.0"?><!DOCTYPE CTfile [<!ENTITY x SYSTEM "file:///etc/passwd">]><CTfile><Header>&x;</Header></CTfile>',
    ],
    ids=["billion-laughs", "external-entity"],
)
def test_a_hostile_file_is_refused_and_changes_nothing(
    school: School, tmp_path: Path, payload: str
) -> None:
    homelink("import", "--school", school.urn, str(ONE_PUPIL))
    before = export(school.urn)
    bad = tmp_path / "hostile.xml"
    bad.write_text(payload)
    with pytest.raises(CommandError, match="DOCTYPE"):
        homelink("import", "--school", school.urn, str(bad))
    assert export(school.urn) == before
    assert ImportRun.objects.filter(status="failed").count() == 1


def test_a_broken_file_names_the_line_and_changes_nothing(school: School, tmp_path: Path) -> None:
    text = TRANSFER.read_text()
    broken = tmp_path / "broken.xml"
    # Cut the file off half-way through the second pupil.
    broken.write_text(text[: text.index("Fairweather") + 40])
    with pytest.raises(CommandError, match=r"line \d+") as err:
        homelink("import", "--school", school.urn, str(broken))
    assert "Nothing was changed" in str(err.value)
    assert not Member.objects.exists()
    assert not Adult.objects.exists()


def test_a_file_from_another_school_is_refused_unless_forced(db: None) -> None:
    other = School.objects.create(urn="222222", name="Elsewhere", la_code="111", estab="2222")
    path = str(ONE_PUPIL)
    with pytest.raises(CommandError, match="neither is Elsewhere"):
        homelink("import", "--school", other.urn, path)
    assert not Member.objects.exists()
    homelink("import", "--school", other.urn, path, "--force")
    assert Member.objects.filter(school=other).count() == 1


def test_a_members_csv_adds_registration_groups_to_ctf_students(
    school: School, tmp_path: Path
) -> None:
    homelink("import", "--school", school.urn, str(TRANSFER))
    csv = tmp_path / "groups.csv"
    csv.write_text(
        "UPN,Forename,Surname,Reg Group,Year,Role ID\nK838329919001,Alfie,Marchbank,7M,7,1\nA838329919002,Poppy,Fairweather,7F,7,1\n"
    )
    summary = json.loads(homelink("import", "--school", school.urn, str(csv), "--json"))
    assert summary["students"]["updated"] == 2
    groups = dict(Member.objects.values_list("mis_id", "reg_group"))
    assert groups == {"K838329919001": "7M", "A838329919002": "7F"}
    # A members CSV carries no contacts: the CTF's links are untouched.
    assert Link.objects.count() == 2
    # And a later CTF, which has no registration groups, leaves them alone.
    homelink("import", "--school", school.urn, str(TRANSFER))
    assert dict(Member.objects.values_list("mis_id", "reg_group")) == groups


def test_a_oneroster_folder_imports_and_records_the_org(school: School) -> None:
    folder = DATA / "oneroster_v1p1_links_from_the_parent_side"
    summary = json.loads(homelink("import", "--school", school.urn, str(folder), "--json"))
    assert summary["status"] == "applied"
    assert summary["format"] == "oneroster"
    school.refresh_from_db()
    assert school.oneroster_org_id == "org-dept-7"
    assert Member.objects.filter(kind="student").exists()
    assert Member.objects.filter(kind="adult", role="teacher").exists()


def test_the_leavers_guard_exits_non_zero_and_says_how_many(school: School, tmp_path: Path) -> None:
    full = tmp_path / "full.xml"
    call_command(
        "generate_ctf",
        "--pupils",
        "40",
        "--urn",
        school.urn,
        "--la",
        "838",
        "--estab",
        "4512",
        str(full),
        stdout=io.StringIO(),
    )
    homelink("import", "--school", school.urn, str(full))
    text = full.read_text()
    # Keep only the first few pupils: like exporting one year group by mistake.
    head, _, rest = text.partition("<Pupil>")
    pupils = rest.split("<Pupil>")
    part = tmp_path / "part.xml"
    part.write_text(
        head
        + "<Pupil>"
        + "<Pupil>".join(pupils[:5]).rsplit("</Pupil>", 1)[0]
        + "</Pupil></CTFpupilData></CTfile>"
    )
    with pytest.raises(CommandError, match=r"would mark 35 of 40 current students"):
        homelink("import", "--school", school.urn, str(part))
    assert Member.objects.filter(status="left").count() == 0


@pytest.mark.skipif(
    shutil.which("homelink", path=str(Path(sys.executable).parent)) is None,
    reason="console script not installed",
)
def test_the_console_script_exits_non_zero_on_a_bad_file(tmp_path: Path) -> None:
    """The real process, as a cron job runs it: exit codes and JSON on stdout."""
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "HOMELINK_VAR_DIR": str(tmp_path),
    }
    exe = str(Path(sys.executable).parent / "homelink")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [exe, *args], env=env, capture_output=True, text=True, timeout=120, check=False
        )

    assert run("migrate", "-v0").returncode == 0
    assert (
        run(
            "school",
            "add",
            "--urn",
            "100001",
            "--name",
            "Example Academy",
            "--la",
            "838",
            "--estab",
            "4512",
        ).returncode
        == 0
    )
    ok = run("import", "--school", "100001", str(ONE_PUPIL), "--json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["students"]["created"] == 1
    bad = tmp_path / "bad.xml"
    bad.write_text("<CTfile><Header>")
    failed = run("import", "--school", "100001", str(bad), "--json")
    assert failed.returncode != 0
    assert json.loads(failed.stdout)["status"] == "failed"
    assert "line" in failed.stderr
