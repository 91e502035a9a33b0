"""The scheduled sync in the console: its state on the imports page and the dashboard for
everyone on the staff, its settings for administrators only, and its runs in the one history.

Real services, a real drop folder under ``tmp_path``, the real task queue (django_tasks' database
backend): "Run now" queues ``run_sync`` once the request commits, and the test then does the
worker's part by running the queued task.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
from pathlib import Path
from typing import Any, cast

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from homelink.audit.models import AuditEvent
from homelink.console.tests.conftest import make_user, member_of
from homelink.mis.models import ImportRun
from homelink.mis.tasks import run_console_import
from homelink.mis.tests.factories import pupil, run_import
from homelink.register.models import Member
from homelink.schools.models import School
from homelink.staff.models import Role
from homelink.sync.models import SyncSource
from homelink.sync.secrets import unseal
from homelink.sync.services import school_drop_folder, sync_run, sync_set_folder
from homelink.sync.tasks import run_sync
from homelink.sync.testing import FakeOneRoster

CTF = (
    Path(__file__).resolve().parents[2]
    / "mis"
    / "tests"
    / "data"
    / "ctf_spaced_and_local_numbers.xml"
)
#: A client secret as an administrator would paste it; it must never come back in a page.
SECRET = "Zq8-client-SECRET-value-41"
SYNC_URLS = ("sync_folder", "sync_oneroster", "sync_time", "sync_remove", "sync_run")


@pytest.fixture(autouse=True)
def _sync_in_tmp(settings: Any, tmp_path: Path) -> None:
    """Drop folders and stored files under the test's own folder; files are taken at once;
    tasks go to the database queue, as in production."""
    settings.HOMELINK_SYNC_ROOT = tmp_path / "sync"
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.HOMELINK_SYNC_SETTLE_SECONDS = 0
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}


def url(name: str, school: School) -> str:
    return reverse(f"console:{name}", kwargs={"urn": school.urn})


def imports_page(client: Client, school: School) -> str:
    response = client.get(url("imports", school))
    assert response.status_code == 200
    return response.content.decode()


def sync_section(html: str) -> str:
    """The Scheduled sync section of the imports page."""
    start = html.index('<section aria-labelledby="sync-heading"')
    return html[start : html.index("</section>", start)]


def local_hhmm(moment: dt.datetime | None) -> str:
    assert moment is not None
    return timezone.localtime(moment).strftime("%H:%M")


def oneroster_post(**changes: str) -> dict[str, str]:
    data = {
        "oneroster-url": "http://127.0.0.1:9/ims/oneroster/v1p1",
        "oneroster-token_url": "",
        "oneroster-client_id": "homelink-100001",
        "oneroster-secret": SECRET,
        "oneroster-at": "02:00",
    }
    data.update({f"oneroster-{k}": v for k, v in changes.items()})
    return data


# --- setting it up ---------------------------------------------------------------------------


def test_an_administrator_sets_the_schools_own_drop_folder_then_the_time(
    client: Client, school: School, admin_a: User, settings: Any
) -> None:
    client.force_login(admin_a)
    own = school_drop_folder(school)
    page = imports_page(client, school)
    assert "No scheduled sync" in page and "Set up a scheduled sync" in page
    # The office is shown where to point SIMS's export before anything is saved.
    assert str(own) in page
    assert not own.exists()

    # A path smuggled into the post is never read: the folder is the server's choice.
    response = client.post(
        url("sync_folder", school),
        {"folder-at": "03:30", "folder-folder": "/etc", "folder": "/etc"},
        follow=True,
    )

    assert response.redirect_chain[-1] == (url("imports", school) + "#sync", 302)
    config = SyncSource.objects.get(school=school)
    assert (config.kind, Path(config.folder), config.at) == ("folder", own, dt.time(3, 30))
    assert own.is_dir()
    assert local_hhmm(config.next_due_at) == "03:30"
    html = response.content.decode()
    assert (
        f"Saved: the register is updated from the drop folder {own} every night at 03:30." in html
    )
    state = sync_section(html)
    assert "Drop folder" in state and str(own) in state and "Every night at 03:30" in state
    assert "Not yet" in state  # no success, no attempt yet
    assert AuditEvent.objects.filter(school=school, action="sync.set").count() == 1

    response = client.post(url("sync_time", school), {"time-at": "04:15"}, follow=True)

    config.refresh_from_db()
    assert config.at == dt.time(4, 15) and Path(config.folder) == own
    assert local_hhmm(config.next_due_at) == "04:15"
    assert "Saved: the sync runs every night at 04:15." in response.content.decode()

    # A time that is not one is refused on the form, and changes nothing.
    response = client.post(url("sync_time", school), {"time-at": "25:99"})
    assert response.status_code == 400
    assert "24-hour clock, for example 02:00" in response.content.decode()
    assert 'aria-invalid="true"' in response.content.decode()
    config.refresh_from_db()
    assert config.at == dt.time(4, 15)


def test_oneroster_is_set_and_the_secret_never_comes_back_in_any_page(
    client: Client, school: School, admin_a: User
) -> None:
    client.force_login(admin_a)
    response = client.post(url("sync_oneroster", school), oneroster_post(at="01:45"), follow=True)

    assert response.status_code == 200
    config = SyncSource.objects.get(school=school)
    assert config.kind == "oneroster-api"
    assert config.url == "http://127.0.0.1:9/ims/oneroster/v1p1"
    assert config.at == dt.time(1, 45)
    assert config.secret != SECRET and unseal(config.secret) == SECRET  # sealed at rest
    html = response.content.decode()
    assert "Client secret stored" in html
    pages = [
        html,
        imports_page(client, school),
        client.get(url("dashboard", school)).content.decode(),
    ]
    for page in pages:
        assert SECRET not in page and config.secret not in page
    # The secret's input is empty: the browser is never sent it back.
    field = re.search(r'<input[^>]*name="oneroster-secret"[^>]*>', pages[1])
    assert field is not None and "value=" not in field.group(0)
    # Nor is it in the audit trail.
    assert not any(SECRET in str(e.detail) for e in AuditEvent.objects.filter(school=school))

    # Blank keeps the stored secret while the server and client id stay the same...
    client.post(url("sync_oneroster", school), oneroster_post(secret="", at="02:30"))
    config.refresh_from_db()
    assert unseal(config.secret) == SECRET and config.at == dt.time(2, 30)

    # ...but not for a new client id: the service says so on the secret's field.
    response = client.post(
        url("sync_oneroster", school), oneroster_post(secret="", client_id="someone-else")
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert (
        "Give the client secret (it is needed again when the address or client id changes)." in page
    )
    assert 'id="id_oneroster-secret_error"' in page
    config.refresh_from_db()
    assert config.client_id == "homelink-100001"

    # A bad address is refused on its field, and the secret typed with it is not sent back.
    response = client.post(
        url("sync_oneroster", school), oneroster_post(url="ftp://mis.example.org/oneroster")
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert "Give the full address, starting with https://." in page
    assert 'id="id_oneroster-url_error"' in page
    assert SECRET not in page
    config.refresh_from_db()
    assert config.url == "http://127.0.0.1:9/ims/oneroster/v1p1"


def test_a_oneroster_sync_set_in_the_console_runs_against_the_server_and_says_how(
    client: Client,
    school: School,
    admin_a: User,
    django_capture_on_commit_callbacks: Any,
) -> None:
    """A real run against the fake OneRoster server on 127.0.0.1: a full sync first, then a
    delta that finds nothing new; the pages say which, and never show the secret."""
    with FakeOneRoster() as fake:
        fake.add_school(students=8)
        client.force_login(admin_a)
        data = {
            "oneroster-url": fake.url,
            "oneroster-token_url": fake.token_url,
            "oneroster-client_id": fake.client_id,
            "oneroster-secret": fake.client_secret,
            "oneroster-at": "02:00",
        }
        assert client.post(url("sync_oneroster", school), data).status_code == 302
        with django_capture_on_commit_callbacks(execute=True):
            client.post(url("sync_run", school))
        [task] = DBTaskResult.objects.filter(task_path="homelink.sync.tasks.run_sync")
        assert run_sync.call(**task.args_kwargs["kwargs"]) == ImportRun.Status.APPLIED
        assert fake.issued  # it really asked the server
        again = sync_run(school=school, trigger=ImportRun.Trigger.SCHEDULED)

    full = ImportRun.objects.get(school=school, status=ImportRun.Status.APPLIED)
    assert again.status == ImportRun.Status.UNCHANGED
    html = imports_page(client, school)
    row = history_row(html, "oneroster-full.zip")
    assert "OneRoster API" in row and "By hand (office@a.example)" in row and "Applied" in row
    row = history_row(html, "oneroster-delta.zip")
    assert "OneRoster API" in row and "Scheduled" in row and "No changes" in row

    full_page = client.get(
        reverse("console:import_run", kwargs={"urn": school.urn, "run_id": full.pk})
    ).content.decode()
    assert "Full: everyone on roll" in full_page
    assert re.search(r"<dt>Pages fetched</dt><dd>\d+</dd>", full_page)
    assert re.search(
        r"<dt>Records fetched</dt><dd>1 organisation, \d+ classes, \d+ users, \d+ enrolments</dd>",
        full_page,
    )
    delta_page = client.get(
        reverse("console:import_run", kwargs={"urn": school.urn, "run_id": again.run.pk})
    ).content.decode()
    assert "Changes since the last sync only (nobody is marked as left)" in delta_page
    assert "No changes in the OneRoster server since" in delta_page
    dashboard = client.get(url("dashboard", school)).content.decode()
    assert "(OneRoster API, scheduled, no changes)." in dashboard
    for page in (html, full_page, delta_page, dashboard):
        assert fake.client_secret not in page
        assert not any(token in page for token in fake.issued)


def test_removing_needs_the_box_ticked_and_keeps_the_history(
    client: Client, school: School, admin_a: User
) -> None:
    config = sync_set_folder(school=school, actor_label="test")
    sync_run(school=school)  # an empty folder: a failed run in the history
    client.force_login(admin_a)
    assert "Stop syncing" in imports_page(client, school)

    response = client.post(url("sync_remove", school), {})
    assert response.status_code == 400
    assert "Tick the box to confirm." in response.content.decode()
    assert SyncSource.objects.filter(pk=config.pk).exists()

    response = client.post(url("sync_remove", school), {"remove-confirm": "on"}, follow=True)

    assert not SyncSource.objects.filter(school=school).exists()
    html = response.content.decode()
    assert "The scheduled sync was removed" in html
    assert "No scheduled sync" in sync_section(html)
    assert ImportRun.objects.filter(school=school, source="folder").count() == 1
    assert AuditEvent.objects.filter(school=school, action="sync.removed").exists()


def test_run_now_queues_the_sync_and_the_worker_runs_it(
    client: Client,
    school: School,
    admin_a: User,
    django_capture_on_commit_callbacks: Any,
) -> None:
    config = sync_set_folder(school=school, actor_label="test")
    shutil.copy(CTF, Path(config.folder) / "export.xml")
    client.force_login(admin_a)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url("sync_run", school), follow=True)

    assert "The sync will run in a moment" in response.content.decode()
    [task] = DBTaskResult.objects.filter(task_path="homelink.sync.tasks.run_sync")
    assert task.args_kwargs["kwargs"] == {
        "school_id": school.pk,
        "trigger": "manual",
        "user_id": admin_a.pk,
    }
    assert not ImportRun.objects.filter(school=school).exists()  # the worker's to do

    assert run_sync.call(**task.args_kwargs["kwargs"]) == ImportRun.Status.APPLIED

    run = ImportRun.objects.get(school=school, status=ImportRun.Status.APPLIED)
    assert (run.source, run.trigger, run.started_by) == ("folder", "manual", admin_a)
    assert Member.objects.filter(school=school).exists()
    row = history_row(imports_page(client, school), "export.xml")
    assert "Drop folder" in row and "By hand (office@a.example)" in row and "Applied" in row


def test_run_now_without_a_sync_is_refused(client: Client, school: School, admin_a: User) -> None:
    client.force_login(admin_a)
    response = client.post(url("sync_run", school), follow=True)
    assert response.redirect_chain[0][1] == 303
    assert "No sync is set up for this school." in response.content.decode()
    assert not DBTaskResult.objects.exists()


# --- who may ----------------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.VIEWER, Role.SENDER])
def test_viewers_and_senders_see_the_state_but_every_post_is_refused(
    client: Client, school: School, role: Role, django_capture_on_commit_callbacks: Any
) -> None:
    config = sync_set_folder(school=school, at=dt.time(2, 0), actor_label="test")
    user = make_user(f"{role}@a.example")
    member_of(user, school, role)
    client.force_login(cast(User, user))

    page = imports_page(client, school)
    state = sync_section(page)
    assert "Drop folder" in state and config.folder in state and "Every night at 02:00" in state
    assert "Run the sync now" not in page and "Sync from this folder" not in page
    assert "oneroster-secret" not in page

    posts = {
        "sync_folder": {"folder-at": "05:00"},
        "sync_oneroster": oneroster_post(),
        "sync_time": {"time-at": "05:00"},
        "sync_remove": {"remove-confirm": "on"},
        "sync_run": {},
    }
    with django_capture_on_commit_callbacks(execute=True):
        for name, data in posts.items():
            assert client.post(url(name, school), data).status_code == 403, name
    config.refresh_from_db()
    assert (config.kind, config.at) == ("folder", dt.time(2, 0))
    assert not DBTaskResult.objects.exists()
    assert AuditEvent.objects.filter(school=school, action__startswith="sync.").count() == 1


def test_another_schools_staff_get_404_on_every_sync_address(
    client: Client, school: School, admin_a: User
) -> None:
    sync_set_folder(school=school, actor_label="test")
    other = School.objects.create(urn="100002", name="Other Primary", la_code="838", estab="2001")
    outsider = make_user("head@other.example")
    member_of(outsider, other, Role.ADMINISTRATOR)
    client.force_login(cast(User, outsider))

    assert client.get(url("imports", school)).status_code == 404
    for name in SYNC_URLS:
        assert client.post(url(name, school), {"remove-confirm": "on"}).status_code == 404
        assert client.get(url(name, school)).status_code == 404
    assert SyncSource.objects.filter(school=school).exists()
    assert not SyncSource.objects.filter(school=other).exists()


def test_every_sync_form_needs_the_csrf_token(school: School, admin_a: User) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_a)
    page = client.get(url("imports", school)).content.decode()
    for name in ("sync_folder", "sync_oneroster"):
        assert (
            client.post(url(name, school), {"folder-at": "02:00", **oneroster_post()}).status_code
            == 403
        )
    assert not SyncSource.objects.filter(school=school).exists()

    # The page's own token is what lets the same post through.
    token = re.search(
        r'action="{}".*?name="csrfmiddlewaretoken" value="([^"]+)"'.format(
            re.escape(url("sync_folder", school))
        ),
        page,
        re.S,
    )
    assert token is not None
    response = client.post(
        url("sync_folder", school), {"folder-at": "02:00", "csrfmiddlewaretoken": token.group(1)}
    )
    assert response.status_code == 302
    assert SyncSource.objects.filter(school=school).exists()
    for name in ("sync_time", "sync_remove", "sync_run"):
        assert (
            client.post(url(name, school), {"time-at": "03:00", "remove-confirm": "on"}).status_code
            == 403
        )
    assert SyncSource.objects.get(school=school).at == dt.time(2, 0)


# --- state and history ---------------------------------------------------------------------


def history_row(html: str, text: str) -> str:
    """The history table's row that mentions ``text`` (the latest such run)."""
    table = html[html.index("<caption>Import runs, latest first</caption>") :]
    for row in re.findall(r"<tr>.*?</tr>", table, re.S):
        if text in row:
            return str(row)
    raise AssertionError(f"no history row mentions {text!r}")


def test_a_stale_sync_is_red_with_the_reason_on_the_imports_page_and_the_dashboard(
    client: Client, school: School, viewer_a: User
) -> None:
    config = sync_set_folder(school=school, actor_label="test")
    outcome = sync_run(school=school, trigger=ImportRun.Trigger.SCHEDULED)  # nothing dropped
    assert outcome.error.startswith("no file arrived in the drop folder")
    client.force_login(viewer_a)
    run_page = client.get(
        reverse("console:import_run", kwargs={"urn": school.urn, "run_id": outcome.run.pk})
    ).content.decode()
    assert "The sync could not fetch the register" in run_page
    assert "No file arrived in the drop folder since the sync was set up" in run_page
    assert "The sync tries again by itself" in run_page
    assert "The stored file was deleted" not in run_page  # there never was one

    # A failed night that is not yet stale: said, but not red.
    page = imports_page(client, school)
    state = sync_section(page)
    assert "The last attempt did not succeed. No file arrived in the drop folder" in state
    assert 'class="message error"' not in state

    SyncSource.objects.filter(pk=config.pk).update(
        created_at=timezone.now() - dt.timedelta(hours=40)
    )

    state = sync_section(imports_page(client, school))
    alert = re.search(
        r'<div class="messages" role="alert">\s*<p class="message error">(.*?)</p>', state, re.S
    )
    assert alert is not None
    assert "The register has not been updated from the MIS" in alert.group(1)
    assert "over 36 hours" in alert.group(1)
    assert "Why: No file arrived in the drop folder since the sync was set up" in alert.group(1)

    dashboard = client.get(url("dashboard", school)).content.decode()
    alert = re.search(r'<p class="message error">(.*?)</p>', dashboard, re.S)
    assert alert is not None
    assert "Why: No file arrived in the drop folder" in alert.group(1)
    assert f'href="{url("imports", school)}#sync"' in alert.group(1)


def test_the_dashboard_says_when_the_register_was_last_updated_and_how(
    client: Client, school: School, viewer_a: User
) -> None:
    client.force_login(viewer_a)
    dashboard = client.get(url("dashboard", school)).content.decode()
    assert "The register has not been updated from the MIS yet." in dashboard
    assert "No scheduled sync" in dashboard

    config = sync_set_folder(school=school, at=dt.time(2, 0), actor_label="test")
    shutil.copy(CTF, Path(config.folder) / "nightly.xml")
    run = sync_run(school=school, trigger=ImportRun.Trigger.SCHEDULED).run
    assert run.finished_at is not None

    dashboard = client.get(url("dashboard", school)).content.decode()
    when = timezone.localtime(run.finished_at).strftime("%-d %b %Y %H:%M")
    assert "Register last updated from the MIS: <time datetime=" in dashboard
    assert f">{when}</time> (Drop folder, scheduled)." in dashboard
    assert "Scheduled sync: Drop folder, every night at 02:00; next run" in dashboard
    assert 'class="message error"' not in dashboard


def test_the_history_shows_source_trigger_duration_and_no_changes(
    client: Client, school: School, viewer_a: User
) -> None:
    run_import(school, [pupil("K000000000001", "Ann", "Smith")])  # the command line's import
    config = sync_set_folder(school=school, actor_label="test")
    shutil.copy(CTF, Path(config.folder) / "nightly.xml")
    applied = sync_run(school=school, trigger=ImportRun.Trigger.SCHEDULED).run
    # The same export again the next night: nothing to import.
    shutil.copy(CTF, Path(config.folder) / "nightly-2.xml")
    same = sync_run(school=school, trigger=ImportRun.Trigger.SCHEDULED).run
    assert (applied.status, same.status) == ("applied", "unchanged")
    start = timezone.now() - dt.timedelta(hours=1)
    ImportRun.objects.filter(pk=applied.pk).update(
        started_at=start, finished_at=start + dt.timedelta(minutes=3, seconds=5)
    )
    ImportRun.objects.filter(pk=same.pk).update(
        finished_at=same.started_at + dt.timedelta(seconds=12)
    )
    client.force_login(viewer_a)

    html = imports_page(client, school)
    row = history_row(html, "nightly.xml")
    assert all(cell in row for cell in ("Drop folder", "Scheduled", "3 min", "Applied"))
    applied.refresh_from_db()
    issues = sum(applied.summary["data_issues"].values())
    assert issues > 0 and f"<td>{issues}</td>" in row
    row = history_row(html, "nightly-2.xml")
    assert all(cell in row for cell in ("Drop folder", "Scheduled", "12 s", "No changes"))
    row = history_row(html, "<td>File (command line)")
    assert "By hand (" in row and "Scheduled" not in row

    # The run pages say the same, and why nothing changed.
    page = client.get(reverse("console:import_run", kwargs={"urn": school.urn, "run_id": same.pk}))
    text = page.content.decode()
    assert "<dd>Drop folder</dd>" in text and "<dd>12 s</dd>" in text
    assert "Scheduled, <time" in text
    assert "No changes" in text and "The same file as the last sync: nothing to import." in text
    page = client.get(
        reverse("console:import_run", kwargs={"urn": school.urn, "run_id": applied.pk})
    )
    text = page.content.decode()
    assert "<dd>3 min</dd>" in text
    assert "File last changed" in text and "File size" in text


def test_a_stopped_scheduled_run_waits_for_the_same_decision_as_an_upload(
    client: Client,
    school: School,
    admin_a: User,
    viewer_a: User,
    django_capture_on_commit_callbacks: Any,
) -> None:
    run_import(school, [pupil(f"K{n:012d}", "Pupil", f"N{n}") for n in range(12)])
    config = sync_set_folder(school=school, actor_label="test")
    (Path(config.folder) / "roll.csv").write_text(
        "UPN,Forename,Surname,Year\nK000000000000,Pupil,N0,7\n"
    )
    outcome = sync_run(school=school, trigger=ImportRun.Trigger.SCHEDULED)
    stopped = outcome.run
    assert stopped.status == ImportRun.Status.STOPPED and not outcome.wrote

    client.force_login(viewer_a)
    html = imports_page(client, school)
    assert "Waiting for a decision" in html
    assert "stopped: it would mark 11 students as left" in html
    assert "An administrator can apply it anyway or discard it." in html
    assert (
        "Apply anyway, marking them left"
        not in client.get(
            reverse("console:import_run", kwargs={"urn": school.urn, "run_id": stopped.pk})
        ).content.decode()
    )

    client.force_login(admin_a)
    run_page = client.get(
        reverse("console:import_run", kwargs={"urn": school.urn, "run_id": stopped.pk})
    ).content.decode()
    assert "11 students would be marked as left" in run_page
    assert "Apply anyway, marking them left" in run_page and "Discard" in run_page
    assert "<dd>Drop folder</dd>" in run_page and "Scheduled, <time" in run_page
    assert Member.objects.filter(school=school, status="left").count() == 0
    page = imports_page(client, school)
    assert "The last attempt did not succeed. Waiting for a decision on the imports page" in page

    # The administrator's decision is an upload's: queued, then the worker's task applies it.
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            reverse("console:import_apply", kwargs={"urn": school.urn, "run_id": stopped.pk}),
            {"confirm_leavers": "1"},
        )
    [task] = DBTaskResult.objects.filter(task_path="homelink.mis.tasks.run_console_import")
    run_console_import.call(**task.args_kwargs["kwargs"])
    applied = ImportRun.objects.get(school=school, status=ImportRun.Status.APPLIED, source="folder")
    assert applied.options["confirm_leavers"] is True
    assert Member.objects.filter(school=school, status="left").count() == 11

    # Decided: nothing waits, and the sync's stop is no longer given as its latest news.
    page = imports_page(client, school)
    assert "Waiting for a decision" not in page
    assert "The last attempt did not succeed" not in page
    dashboard = client.get(url("dashboard", school)).content.decode()
    assert "(Drop folder, by hand)." in dashboard
    assert "The last attempt did not succeed" not in dashboard
