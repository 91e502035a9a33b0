"""The OneRoster REST source, over real HTTP to the fake OneRoster server the tests run
(homelink/sync/testing.py), and a scheduled sync through it into the register.

Backoff between tries is 10 ms here (production waits 1 s, 4 s, 10 s); Retry-After is 1 s.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import email.utils
import random
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

from homelink.mis.formats.oneroster import open_oneroster
from homelink.mis.models import ImportRun
from homelink.mis.records import FileHeader, MemberRecord
from homelink.register.models import Adult, Link, Member
from homelink.schools.models import School
from homelink.sync.models import SyncSource
from homelink.sync.secrets import seal
from homelink.sync.sources import Fetched, SourceError
from homelink.sync.sources.oneroster_api import SCOPE_V1P2, OneRosterSource
from homelink.sync.testing import FakeOneRoster
from homelink.sync.tests.conftest import MakeOneRosterSync

DATA = Path(__file__).resolve().parents[2] / "mis" / "tests" / "data"
FIXTURES = sorted(p.name for p in DATA.glob("oneroster_*"))
QUICK = (0.01,)

pytestmark = pytest.mark.django_db


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def fetch(config: SyncSource, tmp_path: Path, *, dry_run: bool = False, **kw: Any) -> Fetched:
    kw.setdefault("backoff", QUICK)
    work = Path(tempfile.mkdtemp(dir=tmp_path))
    return OneRosterSource(config, now=kw.pop("at", None) or now(), **kw).fetch(
        work, dry_run=dry_run
    )


def failure(config: SyncSource, fake: FakeOneRoster, tmp_path: Path, **kw: Any) -> SourceError:
    """The SourceError a fetch ends in; it names no secret and no token, and leaves no file."""
    work = Path(tempfile.mkdtemp(dir=tmp_path))
    kw.setdefault("backoff", QUICK)
    with pytest.raises(SourceError) as caught:
        OneRosterSource(config, now=now(), **kw).fetch(work, dry_run=False)
    text = f"{caught.value} {caught.value!r}"
    assert fake.client_secret not in text
    assert not [token for token in fake.issued if token in text]
    assert list(work.iterdir()) == []
    return caught.value


def path_of(fetched: Fetched) -> Path:
    assert fetched.path is not None, fetched.unchanged
    return fetched.path


def zipped(fetched: Fetched) -> bytes:
    return path_of(fetched).read_bytes()


def _plain(member: MemberRecord) -> MemberRecord:
    """A record without the line it was read from (the REST zip is in sourcedId order)."""
    contacts = member.contacts
    if contacts is not None:
        contacts = tuple(dataclasses.replace(c, where="") for c in contacts)
    return dataclasses.replace(member, where="", contacts=contacts)


def read(source: Path) -> tuple[FileHeader, dict[str, MemberRecord]]:
    parsed = open_oneroster(source)
    members = {m.mis_id: _plain(m) for m in parsed.members}
    return parsed.header, members


def manifest(fetched: Fetched) -> dict[str, str]:
    with zipfile.ZipFile(path_of(fetched)) as zf:
        lines = zf.read("manifest.csv").decode().splitlines()[1:]
    return dict(line.split(",", 1) for line in lines)


@pytest.fixture(autouse=True)
def _nothing_secret_logged(caplog: pytest.LogCaptureFixture) -> Any:
    caplog.set_level("DEBUG")
    yield
    assert FakeOneRoster().client_secret not in caplog.text


@pytest.fixture
def school_fake(fake_oneroster: FakeOneRoster) -> FakeOneRoster:
    """The fake, serving a small real-shaped school: 25 students, ~45 contacts, 5 teachers."""
    fake_oneroster.add_school(students=25)
    return fake_oneroster


# --------------------------------------------------------------------------- the same records


@pytest.mark.parametrize("name", FIXTURES)
def test_the_rest_source_gives_the_csv_readers_records(
    name: str, school: School, oneroster_sync: MakeOneRosterSync, tmp_path: Path
) -> None:
    """Each in-tree OneRoster CSV fixture (1.1 and 1.2), served as REST, reads as the CSV does:
    the same members, contacts in the same priority, registration groups, org ids."""
    with FakeOneRoster.from_csv_folder(DATA / name) as fake:
        fetched = fetch(oneroster_sync(school, fake), tmp_path)
        assert fake.base_path.endswith("v1p2" if fake.version == "1.2" else "v1p1")
    assert fetched.full and fetched.file_name == "oneroster-full.zip"
    rest_header, rest = read(path_of(fetched))
    csv_header, csv = read(DATA / name)
    assert rest == csv
    assert rest_header.version == csv_header.version == fake.version
    assert rest_header.qualifier == "bulk"
    assert set(rest_header.org_ids) == set(csv_header.org_ids)
    assert (rest_header.carries_contacts, rest_header.carries_students) == (
        csv_header.carries_contacts,
        csv_header.carries_students,
    )
    assert rest_header.carries_staff == csv_header.carries_staff


def test_homerooms_and_links_from_both_sides_survive_the_rest_trip(
    school: School, oneroster_sync: MakeOneRosterSync, tmp_path: Path
) -> None:
    # Spelled out once, so the comparison above cannot pass on two empty readings.
    with FakeOneRoster.from_csv_folder(DATA / "oneroster_homerooms") as fake:
        _, members = read(path_of(fetch(oneroster_sync(school, fake), tmp_path)))
    assert members["stu-1"].reg_group == "Form R Kestrel"
    assert members["stu-2"].reg_group == "1B"
    assert [(c.mis_id, c.priority) for c in members["stu-1"].contacts or ()] == [
        ("par-2", 1),
        ("par-1", 2),
        ("par-3", 3),
    ]
    assert "old-1" not in members


def test_a_1p2_server_gets_roles_and_the_roster_core_scope(
    school: School, oneroster_sync: MakeOneRosterSync, tmp_path: Path
) -> None:
    with FakeOneRoster.from_csv_folder(DATA / "oneroster_v1p2_typo_headers") as fake:
        fetched = fetch(oneroster_sync(school, fake), tmp_path)
        assert fake.token_scopes == [SCOPE_V1P2]
    assert manifest(fetched)["oneroster.version"] == "1.2"
    assert fetched.path is not None
    with zipfile.ZipFile(fetched.path) as zf:
        assert "roles.csv" in zf.namelist()


def test_a_server_that_refuses_the_scope_is_asked_without_one(
    school: School, oneroster_sync: MakeOneRosterSync, tmp_path: Path
) -> None:
    with FakeOneRoster(version="1.2") as fake:
        fake.add_school(students=3)
        fake.scopes = {"https://example.org/scope/other"}
        fetched = fetch(oneroster_sync(school, fake), tmp_path)
        assert fake.token_scopes == [SCOPE_V1P2, ""]
    assert fetched.detail["users"] > 3


# --------------------------------------------------------------------------- paging


def test_paging_across_several_pages_gives_the_same_zip(
    school: School, school_fake: FakeOneRoster, oneroster_sync: MakeOneRosterSync, tmp_path: Path
) -> None:
    config = oneroster_sync(school, school_fake)
    whole = fetch(config, tmp_path)
    school_fake.clear_log()

    paged = fetch(config, tmp_path, limit=10)
    users = len(school_fake.users)
    assert users > 60
    offsets = [int(r.params["offset"]) for r in school_fake.requests_to("users")]
    assert offsets == list(range(0, users, 10))  # and no request past the X-Total-Count
    assert {r.params["limit"] for r in school_fake.requests_to("users")} == {"10"}
    assert paged.detail["pages"] > 10
    assert zipped(paged) == zipped(whole)


@pytest.mark.parametrize("total_count", [True, False])
def test_a_server_capping_the_page_size_is_still_read_to_the_end(
    total_count: bool,
    school: School,
    school_fake: FakeOneRoster,
    oneroster_sync: MakeOneRosterSync,
    tmp_path: Path,
) -> None:
    config = oneroster_sync(school, school_fake)
    whole = fetch(config, tmp_path)
    school_fake.max_limit, school_fake.total_count = 7, total_count
    school_fake.clear_log()

    capped = fetch(config, tmp_path, limit=10)
    offsets = [int(r.params["offset"]) for r in school_fake.requests_to("users")]
    users = len(school_fake.users)
    # Without a total, the list ends at the first empty page.
    assert offsets == list(range(0, users, 7)) + ([] if total_count else [users])
    assert zipped(capped) == zipped(whole)


def test_a_page_short_of_records_is_continued_from_where_it_ended(
    school: School, school_fake: FakeOneRoster, oneroster_sync: MakeOneRosterSync, tmp_path: Path
) -> None:
    config = oneroster_sync(school, school_fake)
    whole = fetch(config, tmp_path)
    school_fake.fault("users", "short", drop=3, after=1)
    assert zipped(fetch(config, tmp_path, limit=10)) == zipped(whole)


# --------------------------------------------------------------------------- tokens


def test_a_token_expiring_mid_sync_is_renewed_and_the_sync_continues(
    school: School, school_fake: FakeOneRoster, oneroster_sync: MakeOneRosterSync, tmp_path: Path
) -> None:
    config = oneroster_sync(school, school_fake)
    whole = fetch(config, tmp_path)
    school_fake.clear_log()
    school_fake.fault("users", "expire_tokens", after=2)

    again = fetch(config, tmp_path, limit=10)
    assert [r.auth for r in school_fake.requests if r.status == 401] == ["bearer-invalid"]
    assert len(school_fake.requests_to("token")) == 2
    assert zipped(again) == zipped(whole)


def test_a_token_is_renewed_before_its_expires_in_runs_out(
    school: School, school_fake: FakeOneRoster, oneroster_sync: MakeOneRosterSync, tmp_path: Path
) -> None:
    # Renewed at half its 2 s life, so a sync of about 2.5 s needs a second token.
    school_fake.token_lifetime = 2
    school_fake.latency = 0.1
    fetch(oneroster_sync(school, school_fake), tmp_path, limit=5)
    assert [r for r in school_fake.requests if r.status == 401] == []
    assert len(school_fake.requests_to("token")) >= 2


def test_a_refused_client_id_is_final_and_names_no_secret(
    school: School, fake_oneroster: FakeOneRoster, oneroster_sync: MakeOneRosterSync, tmp_path: Path
) -> None:
    wrong = "wrong-secret-do-not-show"
    config = oneroster_sync(school, fake_oneroster, secret=seal(wrong))
    error = failure(config, fake_oneroster, tmp_path)
    assert str(error).startswith(
        f"the OneRoster server refused the client id {fake_oneroster.client_id!r} (invalid_client)"
    )
    assert wrong not in str(error)
    assert error.retry is False
    # Basic first, then the credentials as form fields, as some servers only take them.
    assert [(r.auth, r.status) for r in fake_oneroster.requests] == [("basic", 401), ("form", 400)]


def test_a_server_taking_credentials_only_as_form_fields(
    school: School, oneroster_sync: MakeOneRosterSync, tmp_path: Path
) -> None:
    with FakeOneRoster(auth_methods=("form",)) as fake:
        fake.add_school(students=2)
        fetch(oneroster_sync(school, fake), tmp_path)
        assert [r.auth for r in fake.requests_to("token")] == ["basic", "form"]
        assert {r.auth for r in fake.requests if r.endpoint != "token"} == {"bearer"}


def test_the_token_url_defaults_to_the_base_url_and_token(
    school: School, school_fake: FakeOneRoster, oneroster_sync: MakeOneRosterSync, tmp_path: Path
) -> None:
    fetch(oneroster_sync(school, school_fake, token_url=""), tmp_path)
    assert [r.path for r in school_fake.requests_to("token")] == [school_fake.base_path + "/token"]


# --------------------------------------------------------------------------- faults


@pytest.mark.parametrize("retry_after", ["1", "date"])
def test_429_waits_for_retry_after_and_continues(
    retry_after: str,
    school: School,
    school_fake: FakeOneRoster,
    oneroster_sync: MakeOneRosterSync,
    tmp_path: Path,
) -> None:
    config = oneroster_sync(school, school_fake)
    whole = fetch(config, tmp_path)
    if retry_after == "date":
        # An HTTP date has whole seconds: 2 s ahead is a wait of at least 1 s.
        retry_after = email.utils.format_datetime(now() + dt.timedelta(seconds=2), usegmt=True)
    school_fake.fault("users", "429", retry_after=retry_after, after=1)
    started = time.monotonic()
    again = fetch(config, tmp_path, limit=10)
    assert time.monotonic() - started >= 0.95
    assert zipped(again) == zipped(whole)
    assert [r.status for r in school_fake.requests_to("users")].count(429) == 1


def test_a_long_retry_after_is_capped(
    school: School, school_fake: FakeOneRoster, oneroster_sync: MakeOneRosterSync, tmp_path: Path
) -> None:
    school_fake.fault("orgs", "429", retry_after="3600")
    started = time.monotonic()
    fetch(oneroster_sync(school, school_fake), tmp_path, max_wait=0.2)
    assert time.monotonic() - started < 5


def test_a_server_that_keeps_saying_429_is_given_up(
    school: School, school_fake: FakeOneRoster, oneroster_sync: MakeOneRosterSync, tmp_path: Path
) -> None:
    school_fake.fault("orgs", "429", retry_after="0", times=50)
    error = failure(oneroster_sync(school, school_fake), school_fake, tmp_path)
    assert "kept asking homelink to wait (HTTP 429" in str(error)
    assert error.retry is True


def test_5xx_is_tried_again_then_reported_in_plain_english(
    school: School, school_fake: FakeOneRoster, oneroster_sync: MakeOneRosterSync, tmp_path: Path
) -> None:
    config = oneroster_sync(school, school_fake)
    whole = fetch(config, tmp_path)
    school_fake.fault("users", "status", status=503, times=3)
    assert zipped(fetch(config, tmp_path)) == zipped(whole)

    school_fake.fault("users", "status", status=503, times=4)
    error = failure(config, school_fake, tmp_path)
    assert str(error).startswith("the OneRoster server is not answering (HTTP 503; tried 4 times")
    assert "nothing was imported" in str(error)
    assert error.retry is True


def test_a_dropped_connection_and_a_timeout_are_not_answering(
    school: School, school_fake: FakeOneRoster, oneroster_sync: MakeOneRosterSync, tmp_path: Path
) -> None:
    config = oneroster_sync(school, school_fake)
    school_fake.fault("users", "drop", times=10)
    error = failure(config, school_fake, tmp_path)
    assert "not answering (the connection was closed without an answer" in str(error)
    assert error.retry is True

    school_fake.clear_faults()
    school_fake.fault("users", "slow", delay=1.0, times=10)
    error = failure(config, school_fake, tmp_path, timeout=0.2, retries=1)
    assert "not answering (no answer within 0.2 seconds" in str(error)


@pytest.mark.parametrize("kind", ["truncate", "garbage"])
def test_a_cut_off_or_undecodable_page_is_asked_for_again(
    kind: str,
    school: School,
    school_fake: FakeOneRoster,
    oneroster_sync: MakeOneRosterSync,
    tmp_path: Path,
) -> None:
    config = oneroster_sync(school, school_fake)
    whole = fetch(config, tmp_path)
    school_fake.fault("users", kind, after=1)  # type: ignore[arg-type]
    assert zipped(fetch(config, tmp_path, limit=10)) == zipped(whole)


@pytest.mark.parametrize("kind", ["truncate", "garbage", "empty"])
def test_a_page_that_stays_incomplete_refuses_the_whole_sync(
    kind: str,
    school: School,
    school_fake: FakeOneRoster,
    oneroster_sync: MakeOneRosterSync,
    tmp_path: Path,
) -> None:
    school_fake.fault("users", kind, after=1, times=20)  # type: ignore[arg-type]
    error = failure(oneroster_sync(school, school_fake), school_fake, tmp_path, limit=10)
    assert str(error).startswith("the OneRoster server sent an incomplete page of users")
    assert "a partial roll would mark students as left" in str(error)
    assert error.retry is True


def test_a_listing_short_of_its_total_is_read_again_then_refused(
    school: School, school_fake: FakeOneRoster, oneroster_sync: MakeOneRosterSync, tmp_path: Path
) -> None:
    config = oneroster_sync(school, school_fake)
    whole = fetch(config, tmp_path)
    # A page that loses a record from its middle: the next page repeats one, and one is lost.
    school_fake.fault("users", "lose")
    assert zipped(fetch(config, tmp_path, limit=10)) == zipped(whole)

    school_fake.fault("users", "lose", times=20)
    error = failure(config, school_fake, tmp_path, limit=10)
    assert str(error).startswith("the OneRoster server sent an incomplete list of users (")
    assert error.retry is True


def test_a_redirect_is_refused_and_the_token_goes_nowhere_else(
    school: School, school_fake: FakeOneRoster, oneroster_sync: MakeOneRosterSync, tmp_path: Path
) -> None:
    with FakeOneRoster() as elsewhere:
        location = elsewhere.url + "/users"
        school_fake.fault("users", "redirect", location=location + "?token=x")
        error = failure(oneroster_sync(school, school_fake), school_fake, tmp_path)
        assert elsewhere.requests == []
    assert str(error).startswith(
        f"the OneRoster server answered with a redirect (HTTP 302 to {location}): homelink "
        "does not follow redirects"
    )
    assert error.retry is False


def test_refusals_that_need_someone_to_act_are_final(
    school: School, school_fake: FakeOneRoster, oneroster_sync: MakeOneRosterSync, tmp_path: Path
) -> None:
    school_fake.fault("users", "status", status=403)
    error = failure(oneroster_sync(school, school_fake), school_fake, tmp_path)
    assert str(error).startswith("the OneRoster server does not let this client id read users")
    assert error.retry is False

    wrong = oneroster_sync(school, school_fake, url=school_fake.origin + "/ims/oneroster/v9")
    error = failure(wrong, school_fake, tmp_path)
    assert str(error).startswith("the OneRoster server has no orgs at ")
    assert error.retry is False


def test_a_private_address_is_refused_before_connecting(
    school: School,
    school_fake: FakeOneRoster,
    oneroster_sync: MakeOneRosterSync,
    tmp_path: Path,
    settings: Any,
) -> None:
    settings.HOMELINK_SYNC_ALLOW_PRIVATE = False
    error = failure(oneroster_sync(school, school_fake), school_fake, tmp_path)
    assert "private address" in str(error)
    assert school_fake.requests == []


def test_no_secret_or_token_in_any_failure(
    school: School, school_fake: FakeOneRoster, oneroster_sync: MakeOneRosterSync, tmp_path: Path
) -> None:
    """Every way a sync can fail after the server has handed out a token or seen the secret."""
    config = oneroster_sync(school, school_fake)
    messages = []
    for endpoint, kind, status in [
        ("token", "status", 500),
        ("token", "status", 400),
        ("users", "status", 401),
        ("users", "status", 418),
        ("users", "status", 502),
        ("users", "truncate", 200),
        ("users", "redirect", 302),
    ]:
        school_fake.clear_faults()
        school_fake.fault(endpoint, kind, status=status, times=20)  # type: ignore[arg-type]
        messages.append(str(failure(config, school_fake, tmp_path)))
    assert school_fake.issued
    assert len(set(messages)) == len(messages)


# --------------------------------------------------------------------------- full or delta


def _synced(config: SyncSource, fetched: Fetched, at: dt.datetime) -> SyncSource:
    """What the runner keeps after a successful run."""
    config.cursor = fetched.cursor
    if fetched.full:
        config.last_full_at = at
    config.save()
    return config


@pytest.mark.parametrize(
    ("days_since_full", "cursor", "full"),
    [(None, True, True), (1, False, True), (8, True, True), (6.9, True, False)],
)
def test_a_delta_follows_a_recent_full_sync_and_a_full_one_comes_weekly(
    days_since_full: float | None,
    cursor: bool,
    full: bool,
    school: School,
    school_fake: FakeOneRoster,
    oneroster_sync: MakeOneRosterSync,
    tmp_path: Path,
) -> None:
    at = now()
    config = oneroster_sync(
        school,
        school_fake,
        cursor="2025-01-06T01:50:00.000Z" if cursor else "",
        last_full_at=None if days_since_full is None else at - dt.timedelta(days=days_since_full),
    )
    fetched = fetch(config, tmp_path, at=at)
    assert fetched.full is full
    filters = [r.params.get("filter") for r in school_fake.requests_to("users")]
    expected: list[str | None] = [None] if full else ["dateLastModified>'2025-01-06T01:50:00.000Z'"]
    assert filters == expected
    assert fetched.cursor == (at - dt.timedelta(minutes=10)).isoformat(
        timespec="milliseconds"
    ).replace("+00:00", "Z")


def test_a_delta_with_no_changes_is_unchanged(
    school: School, school_fake: FakeOneRoster, oneroster_sync: MakeOneRosterSync, tmp_path: Path
) -> None:
    first = now()
    config = oneroster_sync(school, school_fake)
    config = _synced(config, fetch(config, tmp_path, at=first), first)
    fetched = fetch(config, tmp_path)
    assert fetched.path is None
    assert fetched.full is False
    assert fetched.unchanged.startswith("no changes in the OneRoster server since ")
    assert fetched.cursor > config.cursor
    assert fetched.detail["mode"] == "delta"


def test_a_delta_sends_the_filter_and_writes_a_delta_file(
    school: School, school_fake: FakeOneRoster, oneroster_sync: MakeOneRosterSync, tmp_path: Path
) -> None:
    first = now()
    config = oneroster_sync(school, school_fake)
    config = _synced(config, fetch(config, tmp_path, at=first), first)
    student = school_fake.user("stu-000003")
    student["givenName"] = "Renamed"
    school_fake.touch(student)
    school_fake.clear_log()

    fetched = fetch(config, tmp_path)
    assert not fetched.full and fetched.file_name == "oneroster-delta.zip"
    assert [r.params.get("filter") for r in school_fake.requests_to("users")] == [
        f"dateLastModified>'{config.cursor}'",
        None,  # everyone, to find each contact naming the student
    ]
    assert [r.params["filter"] for r in school_fake.requests_to("enrollments")] == [
        f"dateLastModified>'{config.cursor}'"
    ]
    assert manifest(fetched)["file.users"] == "delta"
    header, members = read(path_of(fetched))
    assert header.qualifier == "delta"
    students = [m for m in members.values() if m.is_student]
    assert [(m.mis_id, m.forename) for m in students] == [("stu-000003", "Renamed")]
    assert students[0].contacts  # with its contacts, read by id


def _as_full_sync_reads_them(
    config: SyncSource, delta: Fetched, tmp_path: Path
) -> dict[str, MemberRecord]:
    """The members a delta names, each checked equal to a full read of the same data (but for
    a registration group the delta leaves alone: its enrolment did not change)."""
    assert not delta.full
    _, changed = read(path_of(delta))
    fresh = SyncSource(
        url=config.url, token_url=config.token_url, client_id=config.client_id, secret=config.secret
    )
    _, everyone = read(path_of(fetch(fresh, tmp_path)))
    for mis_id, member in changed.items():
        expected = everyone[mis_id]
        if member.reg_group is None:
            expected = dataclasses.replace(expected, reg_group=None)
        assert member == expected
    return changed


def test_a_changed_parent_brings_its_students_complete(
    school: School, oneroster_sync: MakeOneRosterSync, tmp_path: Path
) -> None:
    """The homerooms fixture links some contacts from one side only, and names an agent the
    server does not have: the delta reads everyone to find each student's contacts, and gives
    each student the record a full sync gives it (the same priorities)."""
    with FakeOneRoster.from_csv_folder(DATA / "oneroster_homerooms") as fake:
        first = now()
        config = oneroster_sync(school, fake)
        config = _synced(config, fetch(config, tmp_path, at=first), first)
        parent = fake.user("par-3")  # names stu-2 and stu-1; only stu-2 names it back
        parent["sms"] = "07700 900199"
        fake.touch(parent)
        delta = fetch(config, tmp_path)
        changed = _as_full_sync_reads_them(config, delta, tmp_path)
    assert sorted(m for m in changed if changed[m].is_student) == ["stu-1", "stu-2"]
    assert delta.detail["students"] == 2
    phones = {c.mis_id: c.phones for c in changed["stu-2"].contacts or ()}
    assert phones["par-3"][0].number == "07700 900199"


def test_a_delta_carries_only_the_students_a_change_concerns(
    school: School, school_fake: FakeOneRoster, oneroster_sync: MakeOneRosterSync, tmp_path: Path
) -> None:
    first = now()
    config = oneroster_sync(school, school_fake)
    config = _synced(config, fetch(config, tmp_path, at=first), first)
    parent = school_fake.user("con-000004")
    parent["email"] = "new.address@example.org"
    school_fake.touch(parent)
    school_fake.clear_log()

    delta = fetch(config, tmp_path)
    # What changed, then every user (the only way to find each contact naming a student), but
    # only the enrolments that changed.
    assert [r.params.get("filter") for r in school_fake.requests_to("users")] == [
        f"dateLastModified>'{config.cursor}'",
        None,
    ]
    assert [r.params.get("filter") for r in school_fake.requests_to("enrollments")] == [
        f"dateLastModified>'{config.cursor}'"
    ]
    changed = _as_full_sync_reads_them(config, delta, tmp_path)
    students = sorted(m for m in changed if changed[m].is_student)
    assert students == sorted(a["sourcedId"] for a in parent["agents"])
    assert delta.detail["students"] == len(students)
    emails = {c.mis_id: c.email for s in students for c in changed[s].contacts or ()}
    assert emails["con-000004"] == "new.address@example.org"


def test_a_staff_change_alone_reads_nothing_more(
    school: School, school_fake: FakeOneRoster, oneroster_sync: MakeOneRosterSync, tmp_path: Path
) -> None:
    first = now()
    config = oneroster_sync(school, school_fake)
    config = _synced(config, fetch(config, tmp_path, at=first), first)
    teacher = school_fake.user("tch-002")
    teacher["familyName"] = "Newname"
    school_fake.touch(teacher)
    school_fake.clear_log()

    delta = fetch(config, tmp_path)
    assert [r.params.get("filter") for r in school_fake.requests_to("users")] == [
        f"dateLastModified>'{config.cursor}'"
    ]
    _, members = read(path_of(delta))
    assert [(m.mis_id, m.surname) for m in members.values()] == [("tch-002", "Newname")]


def test_a_changed_homeroom_brings_its_student(
    school: School, oneroster_sync: MakeOneRosterSync, tmp_path: Path
) -> None:
    with FakeOneRoster.from_csv_folder(DATA / "oneroster_homerooms") as fake:
        first = now()
        config = oneroster_sync(school, fake)
        config = _synced(config, fetch(config, tmp_path, at=first), first)
        moved = next(e for e in fake.enrollments if e["sourcedId"] == "enr-3")
        moved["class"] = {"sourcedId": "cls-hr-1", "type": "class"}
        fake.touch(moved)
        changed = _as_full_sync_reads_them(config, fetch(config, tmp_path), tmp_path)
    assert changed["stu-2"].reg_group == "Form R Kestrel"
    assert [m for m in changed if changed[m].is_student] == ["stu-2"]


def test_a_server_without_filters_gets_a_full_sync(
    school: School, school_fake: FakeOneRoster, oneroster_sync: MakeOneRosterSync, tmp_path: Path
) -> None:
    first = now()
    config = oneroster_sync(school, school_fake)
    whole = fetch(config, tmp_path, at=first)
    config = _synced(config, whole, first)
    school_fake.supports_filter = False
    fetched = fetch(config, tmp_path)
    assert fetched.full is True
    assert zipped(fetched) == zipped(whole)


# --------------------------------------------------------------------------- the file


def test_the_same_roster_gives_the_same_bytes(
    school: School, school_fake: FakeOneRoster, oneroster_sync: MakeOneRosterSync, tmp_path: Path
) -> None:
    config = oneroster_sync(school, school_fake)
    first = fetch(config, tmp_path)
    random.Random(1).shuffle(school_fake.users)  # served in another order
    random.Random(2).shuffle(school_fake.enrollments)
    dry = fetch(config, tmp_path, dry_run=True, at=now() + dt.timedelta(days=1))
    assert zipped(dry) == zipped(first)
    assert first.path is not None
    with zipfile.ZipFile(first.path) as zf:
        assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        users = zf.read("users.csv").decode()
    assert "password" not in users.splitlines()[0]
    assert school_fake.client_secret not in users
    assert not [token for token in school_fake.issued if token in users]


# --------------------------------------------------------------------------- end to end


def _register(school: School) -> tuple[list[tuple[str, str, dt.datetime]], int, int]:
    members = sorted(
        Member.objects.filter(school=school).values_list("mis_id", "status", "updated_at")
    )
    return (
        members,
        Adult.objects.filter(school=school).count(),
        Link.objects.filter(school=school).count(),
    )


def test_a_scheduled_sync_imports_a_school_from_oneroster_and_then_only_what_changed(
    school: School,
    fake_oneroster: FakeOneRoster,
    oneroster_sync: MakeOneRosterSync,
    tmp_path: Path,
    settings: Any,
) -> None:
    from homelink.sync.services import sync_run

    settings.MEDIA_ROOT = tmp_path / "media"
    fake_oneroster.add_school(students=36)
    oneroster_sync(school, fake_oneroster)

    def scheduled() -> ImportRun:
        outcome = sync_run(school=school, trigger=ImportRun.Trigger.SCHEDULED)
        assert outcome.run.source == ImportRun.Source.ONEROSTER_API
        assert outcome.run.trigger == ImportRun.Trigger.SCHEDULED
        return outcome.run

    run = scheduled()
    assert run.status == ImportRun.Status.APPLIED, run.error
    assert run.file_name == "oneroster-full.zip"
    assert run.options["sync"]["mode"] == "full"
    students = Member.objects.filter(school=school, kind=Member.Kind.STUDENT)
    assert students.filter(status=Member.Status.CURRENT).count() == 36
    assert set(students.values_list("reg_group", flat=True)) >= {"7A", "11A"}
    # Each student's priority-1 contact, as its prime parent (lower priorities are a setting).
    assert Link.objects.filter(school=school, prime=True).count() == 36
    config = SyncSource.objects.get(school=school)
    assert config.last_full_at is not None and config.cursor
    register = _register(school)

    # The next night: a delta finds nothing new; nothing is written.
    again = scheduled()
    assert again.status == ImportRun.Status.UNCHANGED
    assert again.summary["unchanged"].startswith("no changes in the OneRoster server since")
    assert _register(school) == register

    # A parent's new mobile comes through the next delta.
    parent = fake_oneroster.user("con-000001")
    parent["sms"] = "07700 900999"
    fake_oneroster.touch(parent)
    delta = scheduled()
    assert delta.status == ImportRun.Status.APPLIED, delta.error
    assert delta.file_name == "oneroster-delta.zip"
    assert Adult.objects.get(school=school, mis_id="con-000001").mobile == "+447700900999"
    assert students.filter(status=Member.Status.CURRENT).count() == 36
