"""The trust-wide import in the console: a trust administrator uploads the trust's OneRoster
export, says once which school an unknown org is, sees every school's preview side by side, and
applies; each school's part is its ordinary console import (the worker's preview and apply, in
its own history, with its own decisions). Real HTTP through the test client; the worker's task
runs where the worker would, once the request's transaction commits.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from homelink.audit.models import AuditEvent
from homelink.console.trust_imports.forms import LEAVE_OUT, org_field
from homelink.mis.models import ImportRun
from homelink.mis.uploads import school_folder
from homelink.schools.models import School
from homelink.staff.models import Role
from homelink.staff.testing import confirm_email_directly
from homelink.trusts.imports import trust_folder
from homelink.trusts.models import Trust, TrustMembership, TrustSchool
from homelink.trusts.services import trust_add
from homelink.trusts.tests.factories import make_user, member_of
from homelink.trusts.tests.test_trust_import import (
    TrustWorld,
    make_trust,
    register,
    students,
    trust_roster,
)

ORG_OF = {"100101": "org-ash", "100102": "org-birch", "100103": "org-cedar"}


@pytest.fixture(autouse=True)
def _immediate_tasks_and_media(settings: Any, tmp_path: Path) -> None:
    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def trust_member(email: str, trust: Trust, role: str) -> Any:
    user: Any = make_user(email)
    confirm_email_directly(user)
    TrustMembership.objects.create(user=user, trust=trust, role=role)
    return user


@pytest.fixture
def world(db: None) -> TrustWorld:
    return make_trust()


@pytest.fixture
def central(world: TrustWorld) -> Any:
    return trust_member("central@northstar.example", world.trust, Role.ADMINISTRATOR)


def page(trust: Trust, name: str = "trust_import") -> str:
    return reverse(f"console:{name}", kwargs={"trust_id": trust.pk})


def upload(client: Client, trust: Trust, content: bytes, name: str = "trust.zip") -> Any:
    return client.post(page(trust), {"file": SimpleUploadedFile(name, content)})


def post(client: Client, trust: Trust, name: str, token: str, **data: Any) -> Any:
    return client.post(page(trust, name), {"f": token, **data})


def token_of(response: Any) -> str:
    """The import's token, from the redirect to its page."""
    location = response["Location"]
    assert "?f=" in location, location
    return str(location.split("?f=", 1)[1])


def upload_and_run(client: Client, trust: Trust, content: bytes, capture: Any) -> str:
    with capture(execute=True):
        response = upload(client, trust, content)
    assert response.status_code == 302, response.content.decode()[:2000]
    return token_of(response)


def newest(school: School) -> ImportRun:
    return ImportRun.objects.filter(school=school).latest("pk")


def test_upload_previews_each_school_then_applies_each(
    client: Client, world: TrustWorld, central: Any, django_capture_on_commit_callbacks: Any
) -> None:
    client.force_login(central)
    token = upload_and_run(
        client, world.trust, trust_roster().zip_bytes(), django_capture_on_commit_callbacks
    )

    # Every org was known: straight to each school's preview, made by the worker.
    for school in world.schools:
        preview = newest(school)
        assert preview.status == ImportRun.Status.PREVIEW
        assert preview.source == ImportRun.Source.UPLOAD
        assert preview.started_by == central
        assert preview.file_name == "trust.zip"
        assert preview.summary["students"]["created"] == 4
        assert students(school) == set()  # a preview writes nothing
    # The trust's copy of the file is gone: each school holds its own link to it.
    assert list(trust_folder(world.trust.pk).glob("*.zip")) == []
    assert all(len(list(school_folder(s.pk).iterdir())) == 1 for s in world.schools)
    assert AuditEvent.objects.filter(action="import.uploaded").count() == 3

    shown = client.get(page(world.trust, "trust_import_file") + f"?f={token}")
    text = shown.content.decode()
    assert shown.status_code == 200
    assert text.count("Preview ready") == 3
    assert "Students: 4 created" in text
    assert "Left out of this import" in text and "a district, not a school" in text
    assert "Apply every preview that is ready" in text
    # Each school's name opens its part in its own console.
    run_url = reverse(
        "console:import_run", kwargs={"urn": "100101", "run_id": newest(world.ash).pk}
    )
    assert run_url in text
    assert client.get(run_url).status_code == 200

    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, world.trust, "trust_import_apply", token)
    assert response.status_code == 302

    for school in world.schools:
        applied = newest(school)
        assert applied.status == ImportRun.Status.APPLIED
        assert applied.started_by == central
        assert applied.options["org"] == ORG_OF[school.urn]
        x = school.name[0].lower()
        assert students(school) == {f"stu-{x}{n}" for n in range(1, 5)}
        assert list(school_folder(school.pk).iterdir()) == []  # applied: the file is deleted
    text = client.get(page(world.trust, "trust_import_file") + f"?f={token}").content.decode()
    assert "3 schools: 3 applied" in text
    assert "Apply every preview" not in text
    listing = client.get(page(world.trust)).content.decode()
    assert "trust.zip" in listing and "3 schools: 3 applied" in listing


def test_one_schools_guard_stops_it_alone_and_it_waits_in_its_own_console(
    client: Client, world: TrustWorld, central: Any, django_capture_on_commit_callbacks: Any
) -> None:
    client.force_login(central)
    capture = django_capture_on_commit_callbacks
    first = upload_and_run(client, world.trust, trust_roster().zip_bytes(), capture)
    with capture(execute=True):
        post(client, world.trust, "trust_import_apply", first)
    roster = trust_roster()
    for n in (2, 3, 4):
        roster.drop(f"stu-b{n}")
    roster.student("stu-a5", "New", "Pupil", "org-ash", "par-a2")
    before = register([world.birch])

    token = upload_and_run(client, world.trust, roster.zip_bytes(), capture)

    stopped = newest(world.birch)
    assert stopped.status == ImportRun.Status.STOPPED
    text = client.get(page(world.trust, "trust_import_file") + f"?f={token}").content.decode()
    assert "Stopped by its leavers guard" in text
    assert "would mark 3 of 4 current students (75%) as left" in text
    assert "It waits for a decision in Birch Academy" in text
    assert text.count("Preview ready") == 2

    with capture(execute=True):
        post(client, world.trust, "trust_import_apply", token)

    assert newest(world.ash).status == ImportRun.Status.APPLIED
    assert "stu-a5" in students(world.ash)
    assert newest(world.cedar).status == ImportRun.Status.APPLIED
    assert newest(world.birch).pk == stopped.pk  # untouched, waiting
    assert register([world.birch]) == before

    # Birch's own decision, in Birch's console, as for any stopped import.
    with capture(execute=True):
        response = client.post(
            reverse("console:import_apply", kwargs={"urn": "100102", "run_id": stopped.pk}),
            {"confirm_leavers": "1"},
        )
    assert response.status_code == 302
    applied = newest(world.birch)
    assert applied.status == ImportRun.Status.APPLIED
    # It is still Birch's part of the file, not the whole trust's.
    assert applied.options["org"] == "org-birch"
    assert students(world.birch) == {"stu-b1"}
    text = client.get(page(world.trust, "trust_import_file") + f"?f={token}").content.decode()
    assert "3 schools: 3 applied" in text


def test_an_unmapped_org_is_asked_about_once_and_remembered(
    client: Client, central: Any, world: TrustWorld, django_capture_on_commit_callbacks: Any
) -> None:
    capture = django_capture_on_commit_callbacks
    TrustSchool.objects.filter(school=world.cedar).update(org_sourced_id="")
    roster = trust_roster()
    # An org nobody has mapped and nobody will: left out of this import.
    roster.orgs.append(("org-dell", "Dell Annexe", "school"))
    roster.student("stu-d1", "Dora", "Dell", "org-dell")
    client.force_login(central)

    response = upload(client, world.trust, roster.zip_bytes())
    token = token_of(response)
    text = client.get(response["Location"]).content.decode()
    assert "Cedar School (org-cedar)" in text and "Dell Annexe (org-dell)" in text
    assert "Not mapped to a school of the trust." in text
    # Only schools no other org of the file goes to are offered.
    assert 'value="100103"' in text and 'value="100102"' not in text
    assert not ImportRun.objects.exists()  # nothing starts before the answers

    cedar, dell = org_field("org-cedar"), org_field("org-dell")
    refused = post(client, world.trust, "trust_import_start", token, **{cedar: "100103"})
    assert refused.status_code == 400
    assert (
        "Say which school Dell Annexe (org-dell) is, or leave it out." in refused.content.decode()
    )
    refused = post(
        client, world.trust, "trust_import_start", token, **{cedar: "100103", dell: "100103"}
    )
    assert refused.status_code == 400
    assert "a school is one organisation of the export" in refused.content.decode()
    assert not ImportRun.objects.exists()
    assert TrustSchool.objects.get(school=world.cedar).org_sourced_id == ""

    with capture(execute=True):
        response = post(
            client, world.trust, "trust_import_start", token, **{cedar: "100103", dell: LEAVE_OUT}
        )
    assert response.status_code == 302
    assert TrustSchool.objects.get(school=world.cedar).org_sourced_id == "org-cedar"
    assert newest(world.cedar).status == ImportRun.Status.PREVIEW
    assert newest(world.cedar).summary["students"]["created"] == 4
    mapped = AuditEvent.objects.filter(school=world.cedar, action="trust.org_mapped")
    assert mapped.filter(actor_id=central.pk).count() == 1
    text = client.get(response["Location"]).content.decode()
    assert "Dell Annexe (org-dell): left out when the preview started" in text
    assert not ImportRun.objects.filter(options__org="org-dell").exists()

    # The next upload (without Dell Annexe) goes straight to the previews: the answer is
    # remembered.
    second = upload_and_run(client, world.trust, trust_roster().zip_bytes(), capture)
    assert second != token
    assert {newest(s).options["trust_import"] for s in world.schools} == {second}
    assert mapped.filter(actor_id=central.pk).count() == 1


def test_a_hostile_or_broken_file_changes_nothing_in_any_school(
    client: Client, central: Any, world: TrustWorld, django_capture_on_commit_callbacks: Any
) -> None:
    capture = django_capture_on_commit_callbacks
    client.force_login(central)
    first = upload_and_run(client, world.trust, trust_roster(pupils=2).zip_bytes(), capture)
    with capture(execute=True):
        post(client, world.trust, "trust_import_apply", first)
    before = register(world.schools)
    runs = ImportRun.objects.count()

    # Refused at the door, with the reason, and nothing kept.
    hostile = io.BytesIO()
    with zipfile.ZipFile(hostile, "w") as zf:
        zf.writestr("users.csv", "sourcedId\r\n")
        zf.writestr("../../../etc/cron.d/evil", "* * * * * root true\n")
    for content, says in (
        (hostile.getvalue(), "unsafe path"),
        (b"<CTfile>not a zip</CTfile>", "is not a zip file"),
        (trust_roster().zip_bytes().replace(b"orgs.csv", b"orgz.csv"), "has no orgs.csv"),
    ):
        response = upload(client, world.trust, content)
        assert response.status_code == 400
        assert says in response.content.decode()
        assert list(trust_folder(world.trust.pk).glob("*.zip")) == []
    assert ImportRun.objects.count() == runs

    # A file whose users.csv cannot be read: every school's preview fails alike, there is
    # nothing to apply, and nothing is written anywhere.
    files = trust_roster().files()
    files["users.csv"] = files["users.csv"].replace("givenName", "nom", 1)
    broken = io.BytesIO()
    with zipfile.ZipFile(broken, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    token = upload_and_run(client, world.trust, broken.getvalue(), capture)
    assert {newest(s).status for s in world.schools} == {ImportRun.Status.FAILED}
    text = client.get(page(world.trust, "trust_import_file") + f"?f={token}").content.decode()
    assert "givenName missing" in text
    response = post(client, world.trust, "trust_import_apply", token)
    assert response.status_code == 302
    assert (
        "No school&#x27;s preview is waiting to be applied."
        in client.get(response["Location"]).content.decode()
    )
    assert register(world.schools) == before
    assert all(list(school_folder(s.pk).iterdir()) == [] for s in world.schools)


def test_discarding_deletes_every_schools_part_unapplied(
    client: Client, central: Any, world: TrustWorld, django_capture_on_commit_callbacks: Any
) -> None:
    client.force_login(central)
    capture = django_capture_on_commit_callbacks
    token = upload_and_run(client, world.trust, trust_roster().zip_bytes(), capture)
    with capture(execute=True):
        response = post(client, world.trust, "trust_import_discard", token)
    assert response.status_code == 302
    assert {newest(s).status for s in world.schools} == {ImportRun.Status.DISCARDED}
    assert all(list(school_folder(s.pk).iterdir()) == [] for s in world.schools)
    assert all(students(s) == set() for s in world.schools)


def test_another_trusts_staff_and_a_schools_own_staff_get_404(
    client: Client, central: Any, world: TrustWorld, django_capture_on_commit_callbacks: Any
) -> None:
    client.force_login(central)
    token = upload_and_run(
        client, world.trust, trust_roster().zip_bytes(), django_capture_on_commit_callbacks
    )
    other_school = School.objects.create(urn="200201", name="Other Trust School")
    other = trust_add(name="Other Trust", schools=[other_school], actor="test")
    outsider = trust_member("central@other.example", other, Role.ADMINISTRATOR)
    ash_head: Any = make_user("head@ash.example")
    member_of(ash_head, world.ash, Role.ADMINISTRATOR)
    before = (ImportRun.objects.count(), register(world.schools))

    for user in (outsider, ash_head):
        client.force_login(user)
        for name in ("trust_import", "trust_import_file"):
            assert client.get(page(world.trust, name) + f"?f={token}").status_code == 404
        for name in ("trust_import_start", "trust_import_apply", "trust_import_discard"):
            assert post(client, world.trust, name, token).status_code == 404
        assert upload(client, world.trust, trust_roster().zip_bytes()).status_code == 404
    # Trust A's import named under the other trust's own pages: no such import there.
    client.force_login(outsider)
    assert client.get(page(other, "trust_import_file") + f"?f={token}").status_code == 404
    for name in ("trust_import_start", "trust_import_apply", "trust_import_discard"):
        response = post(client, other, name, token)
        assert response["Location"] == page(other)
        assert "There is no such import" in client.get(page(other)).content.decode()
    assert client.get(page(other, "trust_import_file") + "?f=../../etc").status_code == 404
    assert (ImportRun.objects.count(), register(world.schools)) == before
    assert {newest(s).status for s in world.schools} == {ImportRun.Status.PREVIEW}


def test_a_trust_viewer_sees_the_imports_but_cannot_act(
    client: Client, central: Any, world: TrustWorld, django_capture_on_commit_callbacks: Any
) -> None:
    client.force_login(central)
    token = upload_and_run(
        client, world.trust, trust_roster().zip_bytes(), django_capture_on_commit_callbacks
    )
    viewer = trust_member("viewer@northstar.example", world.trust, Role.VIEWER)
    client.force_login(viewer)
    text = client.get(page(world.trust, "trust_import_file") + f"?f={token}").content.decode()
    assert text.count("Preview ready") == 3 and "Apply every preview" not in text
    assert "Upload and preview" not in client.get(page(world.trust)).content.decode()
    assert post(client, world.trust, "trust_import_apply", token).status_code == 403
    assert upload(client, world.trust, trust_roster().zip_bytes()).status_code == 403
    assert {newest(s).status for s in world.schools} == {ImportRun.Status.PREVIEW}


@pytest.mark.django_db(transaction=True)
def test_the_database_worker_builds_each_schools_preview_and_apply(
    client: Client, settings: Any
) -> None:
    """The real queue: each page queues one task row per school once its request commits, by
    ids; ``homelink db_worker --batch`` carries them out."""
    from django.core.management import call_command

    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    world = make_trust()
    central = trust_member("central@northstar.example", world.trust, Role.ADMINISTRATOR)
    client.force_login(central)
    token = token_of(upload(client, world.trust, trust_roster().zip_bytes()))
    assert {newest(s).status for s in world.schools} == {ImportRun.Status.QUEUED}
    waiting = client.get(page(world.trust, "trust_import_file") + f"?f={token}")
    assert waiting["Refresh"] == "2"
    assert "3 schools: 3 waiting for the worker" in waiting.content.decode()

    call_command("db_worker", "--batch", "--no-startup-delay", verbosity=0)

    assert {newest(s).status for s in world.schools} == {ImportRun.Status.PREVIEW}
    post(client, world.trust, "trust_import_apply", token)
    call_command("db_worker", "--batch", "--no-startup-delay", verbosity=0)
    assert {newest(s).status for s in world.schools} == {ImportRun.Status.APPLIED}
    assert students(world.birch) == {f"stu-b{n}" for n in range(1, 5)}
