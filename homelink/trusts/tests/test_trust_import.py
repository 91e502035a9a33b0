"""The trust-wide import of a OneRoster export from the command line, and the reading of one
org of it: each org's records go to its school only, under that school's own guards.

The exports are written here from small CSV texts: a trust (a district org) and three schools,
each with four pupils, a parent each and a teacher; a parent with children at two schools.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from homelink.audit.models import AuditEvent
from homelink.mis.formats.oneroster import open_oneroster
from homelink.mis.models import ImportRun
from homelink.register.models import Adult, Link, Member
from homelink.schools.models import School
from homelink.trusts.imports import trust_map_org
from homelink.trusts.models import Trust, TrustSchool
from homelink.trusts.services import trust_add

TRUST = "North Star Learning Trust"
USERS_COLUMNS = [
    "sourcedId",
    "enabledUser",
    "orgSourcedIds",
    "role",
    "givenName",
    "familyName",
    "identifier",
    "email",
    "sms",
    "agentSourcedIds",
    "grades",
]
#: (org sourcedId, name, type): the trust itself and its three schools.
ORGS = [
    ("org-trust", "North Star Learning Trust", "district"),
    ("org-ash", "Ash Primary", "school"),
    ("org-birch", "Birch Academy", "school"),
    ("org-cedar", "Cedar School", "school"),
]
SCHOOL_ORGS = ("org-ash", "org-birch", "org-cedar")


def _letter(org: str) -> str:
    return org.removeprefix("org-")[0]


@dataclass
class Roster:
    """A trust's OneRoster export as rows, written out by :meth:`zip`."""

    orgs: list[tuple[str, str, str]] = field(default_factory=lambda: list(ORGS))
    users: list[dict[str, str]] = field(default_factory=list)
    phone: int = 100

    def _mobile(self) -> str:
        self.phone += 1
        return f"07700 900{self.phone:03d}"

    def student(self, sid: str, given: str, family: str, orgs: str, *agents: str) -> None:
        self.users.append(
            {
                "sourcedId": sid,
                "orgSourcedIds": orgs,
                "role": "student",
                "givenName": given,
                "familyName": family,
                "identifier": sid.upper(),
                "agentSourcedIds": ",".join(agents),
                "grades": "07",
            }
        )

    def parent(self, sid: str, given: str, family: str, *children: str, orgs: str = "") -> None:
        self.users.append(
            {
                "sourcedId": sid,
                "orgSourcedIds": orgs,
                "role": "parent",
                "givenName": given,
                "familyName": family,
                "email": f"{sid}@example.org",
                "sms": self._mobile(),
                "agentSourcedIds": ",".join(children),
            }
        )

    def teacher(self, sid: str, given: str, family: str, orgs: str) -> None:
        self.users.append(
            {
                "sourcedId": sid,
                "orgSourcedIds": orgs,
                "role": "teacher",
                "givenName": given,
                "familyName": family,
                "email": f"{sid}@example.org",
            }
        )

    def drop(self, sid: str) -> None:
        self.users = [u for u in self.users if u["sourcedId"] != sid]

    def files(self) -> dict[str, str]:
        def table(columns: list[str], rows: list[dict[str, str]]) -> str:
            out = io.StringIO()
            writer = csv.DictWriter(out, columns, lineterminator="\r\n")
            writer.writeheader()
            for row in rows:
                writer.writerow({"enabledUser": "true", **row} if "enabledUser" in columns else row)
            return out.getvalue()

        return {
            "manifest.csv": "propertyName,value\r\noneroster.version,1.1\r\nfile.users,bulk\r\n",
            "orgs.csv": table(
                ["sourcedId", "name", "type", "parentSourcedId"],
                [
                    {
                        "sourcedId": sid,
                        "name": name,
                        "type": kind,
                        "parentSourcedId": "" if kind == "district" else "org-trust",
                    }
                    for sid, name, kind in self.orgs
                ],
            ),
            "users.csv": table(USERS_COLUMNS, self.users),
        }

    def zip(self, target: Path) -> Path:
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, text in self.files().items():
                zf.writestr(name, text)
        return target

    def zip_bytes(self) -> bytes:
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, text in self.files().items():
                zf.writestr(name, text)
        return out.getvalue()


def trust_roster(pupils: int = 4) -> Roster:
    """Each school's pupils with a parent each and a teacher; but the first pupils of Ash and
    of Birch share a parent, Sam Shared (whose own row names them)."""
    roster = Roster()
    for org in SCHOOL_ORGS:
        x = _letter(org)
        for n in range(1, pupils + 1):
            if n == 1 and x in "ab":
                roster.student(f"stu-{x}{n}", f"Pupil{x.upper()}{n}", "Roe", org)
                continue
            roster.student(f"stu-{x}{n}", f"Pupil{x.upper()}{n}", "Roe", org, f"par-{x}{n}")
            roster.parent(f"par-{x}{n}", f"Parent{x.upper()}{n}", "Roe")
        roster.teacher(f"tch-{x}", f"Teacher{x.upper()}", "Doe", org)
    roster.parent("par-shared", "Sam", "Shared", "stu-a1", "stu-b1")
    return roster


@dataclass
class TrustWorld:
    trust: Trust
    ash: School
    birch: School
    cedar: School

    @property
    def schools(self) -> list[School]:
        return [self.ash, self.birch, self.cedar]


def make_trust(*, map_all: bool = True) -> TrustWorld:
    """The trust and its three schools. Ash's own OneRoster imports recorded org-ash (found by
    that); Birch's org is confirmed by a trust administrator; Cedar's too, unless
    ``map_all`` is False."""
    ash = School.objects.create(urn="100101", name="Ash Primary", oneroster_org_id="org-ash")
    birch = School.objects.create(urn="100102", name="Birch Academy")
    cedar = School.objects.create(urn="100103", name="Cedar School")
    trust = trust_add(name=TRUST, schools=[ash, birch, cedar], actor="test")
    trust_map_org(trust=trust, org_sourced_id="org-birch", school=birch, actor="test")
    if map_all:
        trust_map_org(trust=trust, org_sourced_id="org-cedar", school=cedar, actor="test")
    return TrustWorld(trust, ash, birch, cedar)


def students(school: School, *, current: bool = True) -> set[str]:
    found = Member.objects.filter(school=school, kind=Member.Kind.STUDENT)
    if current:
        found = found.filter(status=Member.Status.CURRENT)
    return set(found.values_list("mis_id", flat=True))


def adults(school: School) -> set[str]:
    return set(Adult.objects.filter(school=school).values_list("mis_id", flat=True))


def links(school: School) -> set[tuple[str, str]]:
    return set(Link.objects.filter(school=school).values_list("student__mis_id", "adult__mis_id"))


def register(schools: list[School]) -> dict[str, Any]:
    """Everything an import could change, school by school."""
    return {
        s.urn: (
            sorted(Member.objects.filter(school=s).values_list("mis_id", "status", "forename")),
            sorted(Adult.objects.filter(school=s).values_list("mis_id", "email", "mobile")),
            sorted(links(s)),
        )
        for s in schools
    }


def run_cli(*args: str) -> tuple[dict[str, Any], CommandError | None]:
    """``homelink trust import … --json``: the JSON it printed, and its refusal if it exited
    non-zero."""
    out = io.StringIO()
    error = None
    try:
        call_command("trust", "import", *args, "--trust", TRUST, "--json", stdout=out)
    except CommandError as refused:
        error = refused
    return json.loads(out.getvalue()), error


def by_urn(payload: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["urn"]: s for s in payload["schools"]}


# --- Reading one org ---------------------------------------------------------------------------


def test_one_orgs_read_has_its_people_and_notes_only(tmp_path: Path) -> None:
    roster = trust_roster(pupils=2)
    # A pupil at Birch whose row names an agent nobody knows: a note for Birch only.
    roster.student("stu-b9", "Ghost", "Agentson", "org-birch", "par-nobody")
    path = roster.zip(tmp_path / "trust.zip")

    parsed = open_oneroster(path, org="org-ash")
    members = {m.mis_id: m for m in parsed.members}

    assert parsed.header.org_ids == ("org-ash",)
    assert set(members) == {"stu-a1", "stu-a2", "tch-a"}
    assert [c.mis_id for c in members["stu-a1"].contacts or ()] == ["par-shared"]
    assert [c.mis_id for c in members["stu-a2"].contacts or ()] == ["par-a2"]
    notes = "\n".join(parsed.notes)
    assert "only the records of organisation org-ash (Ash Primary)" in notes
    # Nothing about Birch's people reaches Ash's import.
    assert "Ghost" not in notes and "stu-b" not in notes and "par-nobody" not in notes
    birch = open_oneroster(path, org="org-birch")
    assert {m.mis_id for m in birch.members} == {"stu-b1", "stu-b2", "stu-b9", "tch-b"}
    assert "par-nobody, who is not in users.csv" in "\n".join(birch.notes)
    # Read whole, the file is as it always was.
    assert open_oneroster(path).header.org_ids == tuple(o[0] for o in ORGS)


def test_a_student_enrolled_at_two_orgs_is_read_into_each_with_a_note(tmp_path: Path) -> None:
    roster = trust_roster(pupils=1)
    roster.student("stu-dual", "Dee", "Dual", "org-ash,org-cedar", "par-dual")
    roster.parent("par-dual", "Pat", "Dual")
    path = roster.zip(tmp_path / "trust.zip")

    for org in ("org-ash", "org-cedar"):
        parsed = open_oneroster(path, org=org)
        members = {m.mis_id: m for m in parsed.members}
        assert "stu-dual" in members
        assert [c.mis_id for c in members["stu-dual"].contacts or ()] == ["par-dual"]
        assert "stu-dual (Dee Dual) is enrolled at 2 organisations" in "\n".join(parsed.notes)
    assert "stu-dual" not in {m.mis_id for m in open_oneroster(path, org="org-birch").members}


# --- The command line --------------------------------------------------------------------------


@pytest.mark.django_db
def test_three_orgs_go_to_their_three_schools(tmp_path: Path) -> None:
    world = make_trust(map_all=False)
    path = trust_roster().zip(tmp_path / "trust.zip")

    payload, error = run_cli(str(path), "--map", "org-cedar=100103")

    assert error is None
    assert payload["ok"] is True
    schools = by_urn(payload)
    assert [schools[s.urn]["status"] for s in world.schools] == ["applied"] * 3
    assert schools["100101"]["org"] == "org-ash"
    assert schools["100101"]["students"]["created"] == 4
    assert payload["left_out"] == [
        {"org": "org-trust", "name": TRUST, "reason": "a district, not a school"}
    ]
    for school in world.schools:
        x = school.name[0].lower()
        assert students(school) == {f"stu-{x}{n}" for n in range(1, 5)}
        own_parents = {f"par-{x}{n}" for n in range(1 if x == "c" else 2, 5)}
        assert Member.objects.get(school=school, kind=Member.Kind.ADULT).mis_id == f"tch-{x}"
        # Each school has only its own pupils' contacts; Sam Shared is a parent at the two
        # schools his children are at, linked to his own child at each.
        shared = {"par-shared"} if x in "ab" else set()
        assert adults(school) == own_parents | shared
        assert {s for s, a in links(school) if a == "par-shared"} == (
            {f"stu-{x}1"} if shared else set()
        )
        # Its own run, in its own history, says which org it read.
        [run] = ImportRun.objects.filter(school=school)
        assert run.status == ImportRun.Status.APPLIED
        assert run.source == ImportRun.Source.FILE
        assert run.options["org"] == f"org-{school.name.split()[0].lower()}"
    world.cedar.refresh_from_db()
    # The school's first OneRoster import records its org, as an import of its own does.
    assert world.cedar.oneroster_org_id == "org-cedar"
    # The mapping given on the command line is remembered.
    assert TrustSchool.objects.get(school=world.cedar).org_sourced_id == "org-cedar"


@pytest.mark.django_db
def test_one_schools_leavers_guard_stops_it_alone(tmp_path: Path) -> None:
    world = make_trust()
    run_cli(str(trust_roster().zip(tmp_path / "first.zip")))
    # Next term's export: Birch's part lists one pupil of its four (a half-finished export);
    # Ash has a new pupil.
    roster = trust_roster()
    for n in (2, 3, 4):
        roster.drop(f"stu-b{n}")
    roster.student("stu-a5", "New", "Pupil", "org-ash", "par-a1")
    before = register([world.birch])

    payload, error = run_cli(str(roster.zip(tmp_path / "second.zip")))

    assert error is not None and "1 of 3 school(s) wrote nothing: Birch Academy (stopped)" in str(
        error
    )
    schools = by_urn(payload)
    assert payload["ok"] is False
    assert schools["100102"]["status"] == "stopped"
    assert schools["100102"]["would_leave"] == 3
    assert "would mark 3 of 4 current students (75%) as left" in schools["100102"]["error"]
    assert "run again with --confirm-leavers 100102" in str(error)
    assert schools["100101"]["status"] == "applied"
    assert schools["100101"]["students"]["created"] == 1
    assert schools["100103"]["status"] == "applied"
    assert "stu-a5" in students(world.ash)
    assert register([world.birch]) == before  # Birch is untouched
    stopped = ImportRun.objects.filter(school=world.birch).latest("pk")
    assert stopped.status == ImportRun.Status.STOPPED

    # Confirmed for Birch, the same file again: Birch's leavers are marked, and the other
    # schools, already up to date, change nothing.
    out = io.StringIO()
    call_command(
        "trust",
        "import",
        str(tmp_path / "second.zip"),
        "--trust",
        TRUST,
        "--confirm-leavers",
        "100102",
        stdout=out,
    )
    text = out.getvalue()
    assert "Birch Academy (URN 100102), org Birch Academy (org-birch): applied" in text
    assert students(world.birch) == {"stu-b1"}
    assert students(world.birch, current=False) == {f"stu-b{n}" for n in range(1, 5)}
    ash = ImportRun.objects.filter(school=world.ash).latest("pk")
    assert ash.summary["students"]["created"] == 0
    assert ash.summary["students"]["left"] == 0


@pytest.mark.django_db
def test_an_unmapped_org_is_left_out_then_imported_once_mapped(tmp_path: Path) -> None:
    world = make_trust(map_all=False)
    path = trust_roster().zip(tmp_path / "trust.zip")

    payload, error = run_cli(str(path))

    assert error is None  # the schools it reached were all imported
    assert {s["urn"] for s in payload["schools"]} == {"100101", "100102"}
    assert {
        "org": "org-cedar",
        "name": "Cedar School",
        "reason": "not mapped to a school of the trust",
    } in payload["left_out"]
    assert students(world.cedar) == set()
    assert not ImportRun.objects.filter(school=world.cedar).exists()

    # A trust administrator confirms it once (the console's mapping, as a service)…
    trust_map_org(trust=world.trust, org_sourced_id="org-cedar", school=world.cedar, actor="test")
    payload, error = run_cli(str(path))
    assert error is None
    assert by_urn(payload)["100103"]["students"]["created"] == 4
    assert students(world.cedar) == {f"stu-c{n}" for n in range(1, 5)}

    # …and it is remembered: the next import needs nothing more, and the mapping is audited
    # once, in Cedar's own trail.
    payload, error = run_cli(str(path))
    assert error is None and by_urn(payload)["100103"]["status"] == "applied"
    assert AuditEvent.objects.filter(school=world.cedar, action="trust.org_mapped").count() == 1
    trust_map_org(trust=world.trust, org_sourced_id="org-cedar", school=world.cedar, actor="test")
    assert AuditEvent.objects.filter(school=world.cedar, action="trust.org_mapped").count() == 1


@pytest.mark.django_db
def test_a_mapping_the_schools_own_imports_contradict_is_refused() -> None:
    world = make_trust()
    with pytest.raises(Exception, match="Ash Primary's own OneRoster imports were for the organ"):
        trust_map_org(trust=world.trust, org_sourced_id="org-cedar", school=world.ash, actor="t")
    outsider = School.objects.create(urn="100199", name="Elsewhere School")
    with pytest.raises(Exception, match=f"Elsewhere School is not a school of {TRUST}"):
        trust_map_org(trust=world.trust, org_sourced_id="org-x", school=outsider, actor="t")
    # An org moves: confirmed for another school, it is that school's alone.
    trust_map_org(trust=world.trust, org_sourced_id="org-birch", school=world.cedar, actor="t")
    assert TrustSchool.objects.get(school=world.birch).org_sourced_id == ""
    assert TrustSchool.objects.get(school=world.cedar).org_sourced_id == "org-birch"
    assert AuditEvent.objects.filter(school=world.birch, action="trust.org_unmapped").exists()


@pytest.mark.django_db
def test_a_broken_or_hostile_file_changes_nothing_in_any_school(tmp_path: Path) -> None:
    world = make_trust()
    run_cli(str(trust_roster(pupils=2).zip(tmp_path / "first.zip")))
    before = register(world.schools)
    runs_before = ImportRun.objects.count()

    # A zip member that would unpack outside its folder: refused at the door, no run at all.
    hostile = tmp_path / "hostile.zip"
    with zipfile.ZipFile(hostile, "w") as zf:
        for name, text in trust_roster().files().items():
            zf.writestr(name, text)
        zf.writestr("../../evil.csv", "x")
    payload, error = run_cli(str(hostile))
    assert error is not None and "unsafe path" in str(error) and "Nothing was changed" in str(error)
    assert payload["ok"] is False
    assert ImportRun.objects.count() == runs_before

    # Not a zip at all.
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"PK\x03\x04 this is not really a zip")
    _, error = run_cli(str(junk))
    assert error is not None and "not a zip file" in str(error)

    # users.csv without its names: every school's part fails alike, and nothing is written.
    broken = trust_roster()
    files = broken.files()
    files["users.csv"] = files["users.csv"].replace("givenName", "nom", 1)
    damaged = tmp_path / "damaged.zip"
    with zipfile.ZipFile(damaged, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    payload, error = run_cli(str(damaged))
    assert error is not None and "3 of 3 school(s) wrote nothing" in str(error)
    assert {s["status"] for s in payload["schools"]} == {"failed"}
    assert "givenName missing" in payload["schools"][0]["error"]
    assert register(world.schools) == before


@pytest.mark.django_db
def test_a_dry_run_previews_every_school_and_writes_nothing(tmp_path: Path) -> None:
    world = make_trust()
    out = io.StringIO()
    call_command(
        "trust",
        "import",
        str(trust_roster().zip(tmp_path / "trust.zip")),
        "--trust",
        TRUST,
        "--dry-run",
        stdout=out,
    )
    text = out.getvalue()
    for school in world.schools:
        assert f"{school.name} (URN {school.urn})" in text
        assert students(school) == set()
    assert text.count("preview (nothing written)") == 3
    assert "4 created" in text
    assert f"Left out: org {TRUST} (org-trust): a district, not a school" in text
    assert set(ImportRun.objects.values_list("status", flat=True)) == {ImportRun.Status.PREVIEW}


@pytest.mark.django_db
def test_the_command_refuses_what_it_cannot_do(tmp_path: Path) -> None:
    make_trust()
    path = trust_roster().zip(tmp_path / "trust.zip")
    with pytest.raises(CommandError, match="no trust called 'Nowhere Trust'"):
        call_command("trust", "import", str(path), "--trust", "Nowhere Trust")
    with pytest.raises(CommandError, match="no such file or folder"):
        call_command("trust", "import", str(tmp_path / "missing.zip"), "--trust", TRUST)
    with pytest.raises(CommandError, match="give it as ORG=URN"):
        call_command("trust", "import", str(path), "--trust", TRUST, "--map", "org-cedar")
    with pytest.raises(CommandError, match="no school with URN 999999 in"):
        call_command("trust", "import", str(path), "--trust", TRUST, "--map", "org-x=999999")
    # A folder is read as a zip is.
    folder = tmp_path / "folder"
    folder.mkdir()
    for name, text in trust_roster().files().items():
        (folder / name).write_text(text, encoding="utf-8")
    payload, error = run_cli(str(folder))
    assert error is None and len(payload["schools"]) == 3


def test_an_upload_never_started_is_deleted_by_the_hourly_sweep(
    db: None, tmp_path: Path, settings: Any
) -> None:
    import os
    import time

    from django.contrib.auth import get_user_model
    from django.core.files.uploadedfile import SimpleUploadedFile

    from homelink.privacy.tasks import retention_sweep
    from homelink.trusts.imports import trust_import_upload

    settings.MEDIA_ROOT = tmp_path / "media"
    world = make_trust()
    user = get_user_model().objects.create_user(username="central@example.org", password="x" * 20)
    data = trust_roster().zip(tmp_path / "trust.zip").read_bytes()
    stored = trust_import_upload(
        trust=world.trust, user=user, upload=SimpleUploadedFile("trust.zip", data)
    )
    retention_sweep.call()
    assert stored.stored  # a day has not passed
    old = time.time() - 25 * 3600
    os.utime(stored.path, (old, old))
    retention_sweep.call()
    assert not stored.stored
