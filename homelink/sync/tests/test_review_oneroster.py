"""The OneRoster REST source against what a review proved wrong with it: a trust's or a
district's tenant (one OneRoster server, several schools) read whole into one school, a host
name that rebinds to a private address after it was checked, and headers that look like
numbers but are not.

Over real HTTP (and TLS) to the fake OneRoster server on 127.0.0.1 (homelink/sync/testing.py).
Only DNS, which is outside the machine, is faked (``socket.getaddrinfo``, answering as a name
server would). Backoff between tries is 10 ms here.
"""

from __future__ import annotations

import datetime as dt
import socket
import tempfile
import threading
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from homelink.mis.formats.oneroster import open_oneroster
from homelink.mis.models import ImportRun
from homelink.mis.records import MemberRecord
from homelink.register.models import Adult, Member
from homelink.schools.models import School
from homelink.sync.models import SyncSource
from homelink.sync.sources import Fetched, SourceError
from homelink.sync.sources.oneroster_api import OneRosterSource
from homelink.sync.testing import FakeOneRoster, tls_for
from homelink.sync.tests.conftest import MakeOneRosterSync

QUICK = (0.01,)
OTHER = "o2-"  # the sourcedIds of the trust's other academy

pytestmark = pytest.mark.django_db


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def fetch(config: SyncSource, tmp_path: Path, **kw: Any) -> Fetched:
    kw.setdefault("backoff", QUICK)
    work = Path(tempfile.mkdtemp(dir=tmp_path))
    return OneRosterSource(config, now=kw.pop("at", None) or now(), **kw).fetch(work, dry_run=False)


def failure(config: SyncSource, tmp_path: Path, **kw: Any) -> SourceError:
    """The SourceError a fetch ends in; it leaves no file."""
    work = Path(tempfile.mkdtemp(dir=tmp_path))
    kw.setdefault("backoff", QUICK)
    with pytest.raises(SourceError) as caught:
        OneRosterSource(config, now=now(), **kw).fetch(work, dry_run=False)
    assert list(work.iterdir()) == []
    return caught.value


def zipped(fetched: Fetched) -> bytes:
    assert fetched.path is not None, fetched.unchanged
    return fetched.path.read_bytes()


def members(fetched: Fetched) -> dict[str, MemberRecord]:
    assert fetched.path is not None, fetched.unchanged
    return {m.mis_id: m for m in open_oneroster(fetched.path).members}


def orgs_csv(fetched: Fetched) -> list[str]:
    assert fetched.path is not None
    with zipfile.ZipFile(fetched.path) as zf:
        return zf.read("orgs.csv").decode().splitlines()[1:]


def synced(config: SyncSource, fetched: Fetched, at: dt.datetime) -> SyncSource:
    """What the runner keeps after a successful run."""
    config.cursor = fetched.cursor
    if fetched.full:
        config.last_full_at = at
    config.save()
    return config


def add_trust(fake: FakeOneRoster, *, students: int = 12) -> None:
    """Two academies of one trust in one tenant: Example Academy (org-1, URN 100001, the
    ``school`` fixture's) and Other Academy (org-2, URN 100002), each with its own pupils,
    parents, teachers and forms."""
    fake.add_school(students=students, seed=1)
    fake.add_school(
        students=students,
        seed=2,
        org="org-2",
        name="Other Academy",
        identifier="100002",
        prefix=OTHER,
    )


@pytest.fixture(params=["1.1", "1.2"])
def trust_fake(request: pytest.FixtureRequest) -> Iterator[FakeOneRoster]:
    """A started fake holding a trust's two academies (OneRoster 1.1 and 1.2)."""
    with FakeOneRoster(version=request.param) as fake:
        add_trust(fake)
        yield fake


# --------------------------------------------------------------------------- a trust's tenant


def test_a_trust_tenant_gives_the_file_of_this_schools_org_alone(
    school: School, trust_fake: FakeOneRoster, oneroster_sync: MakeOneRosterSync, tmp_path: Path
) -> None:
    """Byte for byte the file of a server that holds this school alone: the same records, so
    the rules and identity of a single school's export."""
    fetched = fetch(oneroster_sync(school, trust_fake), tmp_path)
    with FakeOneRoster(version=trust_fake.version) as alone:
        alone.add_school(students=12, seed=1)
        expected = fetch(oneroster_sync(school, alone), tmp_path)
    assert zipped(fetched) == zipped(expected)
    assert fetched.detail["org"] == "org-1"
    assert [line.split(",")[0] for line in orgs_csv(fetched)] == ["org-1"]
    read = members(fetched)
    assert len([m for m in read.values() if m.is_student]) == 12
    assert not [mis_id for mis_id in read if mis_id.startswith(OTHER)]


def test_a_parent_with_children_at_two_academies_comes_with_this_schools_child_only(
    school: School, trust_fake: FakeOneRoster, oneroster_sync: MakeOneRosterSync, tmp_path: Path
) -> None:
    ours, theirs = trust_fake.user("stu-000001"), trust_fake.user(f"{OTHER}stu-000001")
    parent = trust_fake.user(ours["agents"][0]["sourcedId"])
    theirs["agents"].insert(0, {"sourcedId": parent["sourcedId"], "type": "user"})
    parent["agents"].append({"sourcedId": theirs["sourcedId"], "type": "user"})

    fetched = fetch(oneroster_sync(school, trust_fake), tmp_path)
    read = members(fetched)
    assert theirs["sourcedId"] not in read
    assert next(c.mis_id for c in read["stu-000001"].contacts or ()) == parent["sourcedId"]
    assert not [
        c.mis_id for m in read.values() for c in m.contacts or () if c.mis_id.startswith(OTHER)
    ]
    # Not even as the parent's link to the other child: the file names none of its pupils.
    assert fetched.path is not None
    with zipfile.ZipFile(fetched.path) as zf:
        assert not [n for n in zf.namelist() if OTHER in zf.read(n).decode()]


def test_two_schools_of_one_tenant_each_import_their_own_pupils(
    school: School,
    fake_oneroster: FakeOneRoster,
    oneroster_sync: MakeOneRosterSync,
    settings: Any,
    tmp_path: Path,
) -> None:
    from homelink.sync.services import sync_run

    settings.MEDIA_ROOT = tmp_path / "media"
    add_trust(fake_oneroster)
    other = School.objects.create(urn="100002", name="Other Academy", la_code="838", estab="4513")
    for each in (school, other):
        oneroster_sync(each, fake_oneroster)
        outcome = sync_run(school=each, trigger=ImportRun.Trigger.SCHEDULED)
        assert outcome.status == ImportRun.Status.APPLIED, outcome.error

    for each, org, own in ((school, "org-1", "stu-"), (other, "org-2", f"{OTHER}stu-")):
        students = Member.objects.filter(school=each, kind=Member.Kind.STUDENT)
        assert students.count() == 12
        assert all(mis_id.startswith(own) for mis_id in students.values_list("mis_id", flat=True))
        each.refresh_from_db()
        assert each.oneroster_org_id == org  # so the other-school guard keeps watch from now on
    assert not Adult.objects.filter(school=school, mis_id__startswith=OTHER).exists()
    assert Adult.objects.filter(school=other).exclude(mis_id__startswith=OTHER).count() == 0


@pytest.mark.parametrize(
    ("recorded", "identifiers", "org"),
    [
        # The org the school's earlier imports recorded, whatever the identifiers say.
        ("org-2", ("", ""), "org-2"),
        # No record: the org whose identifier is the school's URN...
        ("", ("100002", "100001"), "org-2"),
        # ... or its DfE number, as the MIS writes it.
        ("", ("838/4512", "999/0001"), "org-1"),
        # Bound to the whole trust by an import before this check: the identifier decides.
        ("org-1,org-2", ("100002", "8384512"), "org-2"),
    ],
)
def test_which_org_is_the_schools(
    recorded: str,
    identifiers: tuple[str, str],
    org: str,
    school: School,
    fake_oneroster: FakeOneRoster,
    oneroster_sync: MakeOneRosterSync,
    tmp_path: Path,
) -> None:
    add_trust(fake_oneroster)
    for record, identifier in zip(fake_oneroster.orgs, identifiers, strict=True):
        record["identifier"] = identifier
    school.oneroster_org_id = recorded
    school.save()
    fetched = fetch(oneroster_sync(school, fake_oneroster), tmp_path)
    assert fetched.detail["org"] == org
    read = members(fetched)
    assert read
    assert {mis_id.startswith(OTHER) for mis_id in read} == {org == "org-2"}


@pytest.mark.parametrize(
    ("identifiers", "says"),
    [
        (("", "A12"), "and none is recorded for this school: "),
        (("100001", "8384512"), "and 2 of them (Example Academy, Other Academy) could be this "),
    ],
)
def test_a_trust_tenant_with_no_clear_org_for_the_school_reads_nothing_more(
    identifiers: tuple[str, str],
    says: str,
    school: School,
    fake_oneroster: FakeOneRoster,
    oneroster_sync: MakeOneRosterSync,
    tmp_path: Path,
) -> None:
    add_trust(fake_oneroster)
    for record, identifier in zip(fake_oneroster.orgs, identifiers, strict=True):
        record["identifier"] = identifier
    error = failure(oneroster_sync(school, fake_oneroster), tmp_path)
    assert str(error).startswith(
        "the OneRoster server holds 2 schools (Example Academy, Other Academy) " + says
    )
    assert "URN (100001) or DfE number" in str(error)
    assert error.retry is False
    assert {r.endpoint for r in fake_oneroster.requests} == {"token", "orgs"}


def test_one_school_under_its_district_is_still_read_whole(
    school: School, fake_oneroster: FakeOneRoster, oneroster_sync: MakeOneRosterSync, tmp_path: Path
) -> None:
    fake_oneroster.add_school(students=5)
    fake_oneroster.orgs.append(
        {"sourcedId": "la-838", "status": "active", "name": "The LA", "type": "district"}
    )
    fetched = fetch(oneroster_sync(school, fake_oneroster), tmp_path)
    assert "org" not in fetched.detail
    assert [line.split(",")[0] for line in orgs_csv(fetched)] == ["la-838", "org-1"]


def test_a_delta_of_a_trust_tenant_carries_only_this_schools_changes(
    school: School, trust_fake: FakeOneRoster, oneroster_sync: MakeOneRosterSync, tmp_path: Path
) -> None:
    first = now()
    config = oneroster_sync(school, trust_fake)
    config = synced(config, fetch(config, tmp_path, at=first), first)

    # The other academy's changes are nothing to this school.
    theirs = trust_fake.user(f"{OTHER}stu-000002")
    theirs["givenName"] = "Renamed"
    their_parent = trust_fake.user(theirs["agents"][0]["sourcedId"])
    their_parent["email"] = "moved@example.org"
    for record in (theirs, their_parent, trust_fake.user(f"{OTHER}tch-001")):
        trust_fake.touch(record)
    quiet = fetch(config, tmp_path)
    assert quiet.path is None
    assert quiet.unchanged.startswith("no changes in the OneRoster server since ")

    # With one of its own parents changed too, only its own students come.
    parent = trust_fake.user("con-000003")
    parent["email"] = "new.address@example.org"
    trust_fake.touch(parent)
    delta = fetch(config, tmp_path)
    assert not delta.full and delta.detail["org"] == "org-1"
    read = members(delta)
    assert sorted(m for m in read if read[m].is_student) == sorted(
        a["sourcedId"] for a in parent["agents"]
    )
    assert not [mis_id for mis_id in read if mis_id.startswith(OTHER)]


# --------------------------------------------------------------------------- DNS rebinding

HOST = "roster.school.example"
PUBLIC = "93.184.216.34"  # a global address


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> Callable[..., list[tuple[str, Any]]]:
    """``dns(*answers)``: the name server answers HOST's lookups with these addresses in turn
    (the last one from then on), as a name with a TTL of 0 can; returns the lookups made."""
    real = socket.getaddrinfo

    def answer(*answers: str) -> list[tuple[str, Any]]:
        asked: list[tuple[str, Any]] = []

        def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            if host != HOST:
                return real(host, port, *args, **kwargs)
            address = answers[min(len(asked), len(answers) - 1)]
            asked.append((host, port))
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port or 0))]

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
        return asked

    return answer


@pytest.fixture
def loopback_service() -> Iterator[tuple[int, list[str]]]:
    """A service on the server's own loopback that nobody outside may reach: its port, and
    who connected to it."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.1)
    reached: list[str] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, peer = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            reached.append(peer[0])
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1], reached
    stop.set()
    thread.join(timeout=2)
    listener.close()


def test_a_name_that_rebinds_to_a_private_address_after_the_check_is_never_connected_to(
    school: School,
    dns: Callable[..., list[tuple[str, Any]]],
    loopback_service: tuple[int, list[str]],
    settings: Any,
    tmp_path: Path,
) -> None:
    from homelink.sync.services import sync_set_oneroster

    settings.HOMELINK_SYNC_ALLOW_PRIVATE = False  # production
    port, reached = loopback_service
    # Public when the address is entered and checked, the server's loopback from then on.
    asked = dns(PUBLIC, "127.0.0.1")
    config = sync_set_oneroster(
        school=school,
        url=f"https://{HOST}:{port}/ims/oneroster/v1p1",
        client_id="homelink",
        secret="s3cret",
        actor_label="test",
    )

    error = failure(config, tmp_path, timeout=1.0, retries=0)
    assert str(error) == (
        f"the OneRoster server {HOST} now resolves to a private address (127.0.0.1): "
        "homelink will not connect to it"
    )
    assert error.retry is False
    assert reached == []
    assert len(asked) == 2  # the check when entered, and one lookup to connect


@pytest.fixture
def trusted_ca(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[[str], Any]:
    """``trusted_ca(name)``: a server-side TLS context with a certificate for ``name`` from an
    authority the client trusts (as a public CA would be)."""

    def make(name: str) -> Any:
        context, authority = tls_for(name, Path(tempfile.mkdtemp(dir=tmp_path)))
        monkeypatch.setenv("SSL_CERT_FILE", str(authority))
        return context

    return make


@pytest.mark.parametrize("certificate_for", [HOST, "elsewhere.example"])
def test_the_checked_address_is_connected_to_under_the_name_it_was_looked_up_by(
    certificate_for: str,
    school: School,
    oneroster_sync: MakeOneRosterSync,
    dns: Callable[..., list[tuple[str, Any]]],
    trusted_ca: Callable[[str], Any],
    tmp_path: Path,
) -> None:
    """Connected to the address checked, the name still goes as the TLS server name and the
    certificate is verified against it: a certificate for another name is refused."""
    with FakeOneRoster(tls=trusted_ca(certificate_for)) as fake:
        fake.add_school(students=3)
        base = fake.url.replace("127.0.0.1", HOST)
        assert base.startswith("https://")
        config = oneroster_sync(school, fake, url=base, token_url="")
        asked = dns("127.0.0.1")
        if certificate_for == HOST:
            fetched = fetch(config, tmp_path)
            assert fetched.detail["users"] > 3
            assert {r.status for r in fake.requests} == {200}
            # One lookup, for the one (kept-alive) connection: none to check the name again.
            assert len(asked) == 1
        else:
            error = failure(config, tmp_path)
            assert str(error).startswith(
                f"the OneRoster server {HOST} has a certificate that cannot be trusted"
            )
            assert error.retry is False
            assert fake.requests == []


# --------------------------------------------------------------------------- numbers that are not


def test_a_retry_after_that_is_no_number_is_waited_as_none(
    school: School, fake_oneroster: FakeOneRoster, oneroster_sync: MakeOneRosterSync, tmp_path: Path
) -> None:
    """``Retry-After: ²`` (str.isdigit() says yes, float() says no) is as if absent: the
    default wait (capped here at 0.05 s), and in the end the ordinary plain refusal."""
    fake_oneroster.add_school(students=3)
    config = oneroster_sync(school, fake_oneroster)
    fake_oneroster.fault("token", "429", retry_after="\u00b2")
    assert fetch(config, tmp_path, max_wait=0.05).detail["users"] > 3

    fake_oneroster.fault("users", "429", retry_after="\u00b2", times=50)
    error = failure(config, tmp_path, max_wait=0.05)
    assert str(error).startswith("the OneRoster server kept asking homelink to wait (HTTP 429")
    assert error.retry is True


def test_an_x_total_count_that_is_no_number_is_as_if_absent(
    school: School, fake_oneroster: FakeOneRoster, oneroster_sync: MakeOneRosterSync, tmp_path: Path
) -> None:
    fake_oneroster.add_school(students=12)
    config = oneroster_sync(school, fake_oneroster)
    whole = fetch(config, tmp_path)
    fake_oneroster.clear_log()
    fake_oneroster.fault("users", "header", header=("X-Total-Count", "\u00b2"), times=50)

    again = fetch(config, tmp_path, limit=10)
    users = len(fake_oneroster.users)
    # No total to stop at: the list ends at its first empty page.
    offsets = [int(r.params["offset"]) for r in fake_oneroster.requests_to("users")]
    assert offsets == [*range(0, users, 10), users]
    assert zipped(again) == zipped(whole)


def test_a_content_length_that_is_no_number_is_an_incomplete_page(
    school: School, fake_oneroster: FakeOneRoster, oneroster_sync: MakeOneRosterSync, tmp_path: Path
) -> None:
    """Nothing can say where such an answer ends: it is asked for again (not waited on until
    the connection times out), then refused in plain English."""
    fake_oneroster.add_school(students=12)
    config = oneroster_sync(school, fake_oneroster)
    whole = fetch(config, tmp_path)
    bad = ("Content-Length", "\u00b2")
    fake_oneroster.fault("users", "header", header=bad, after=1)
    assert zipped(fetch(config, tmp_path, limit=10, timeout=5.0)) == zipped(whole)

    fake_oneroster.fault("users", "header", header=bad, after=1, times=20)
    error = failure(config, tmp_path, limit=10, timeout=5.0)
    assert str(error).startswith(
        "the OneRoster server sent an incomplete page of users at offset 10 (its "
        "Content-Length was not a number), 4 times"
    )
    assert error.retry is True
