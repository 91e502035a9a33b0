"""Code redemptions per second, against a hello-world view on the same server.

``run()`` starts this module as a child process on a throwaway SQLite file (settings are read
once, at ``django.setup()``). The child makes a school of students, a letter and a signed-in
parent for each, and serves the site with Django's threaded WSGI server on 127.0.0.1. One
keep-alive HTTP client then times GET ``/healthz/`` (the floor: a view that does nothing) and
POST ``/account/link/`` — each a real redemption: the limits, the code's hash, the locks, the new
link and its audit event — one per parent. The site-wide attempt budget is raised for the run,
since what is measured is the redemption itself, not the slowing that protects it.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

PARENTS = 300
HELLO = 2_000


def run(parents: int = PARENTS) -> dict[str, float]:
    print(f"Code redemption benchmark ({parents:,} redemptions, SQLite, Django's threaded server)")
    with tempfile.TemporaryDirectory(prefix="homelink-bench-redeem-") as tmp:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "homelink.settings",
            "DATABASE_URL": f"sqlite:///{Path(tmp) / 'redeem.sqlite3'}",
            "HOMELINK_VAR_DIR": tmp,
            "HOMELINK_CODE_BUDGET_PER_MINUTE": "1000000",
        }
        proc = subprocess.run(
            [sys.executable, "-m", "homelink.bench.redeem", str(parents)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
    if proc.returncode:
        raise SystemExit(f"redemption benchmark failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"  hello world     {result['hello_rps']:8.0f} requests/s  (GET /healthz/)")
    print(
        f"  redemptions     {result['redeem_rps']:8.0f} requests/s  (POST /account/link/, each a new link)"
    )
    print(f"  ratio           {result['redeem_rps'] / result['hello_rps']:8.2f}")
    return result


def _child(parents: int) -> dict[str, float]:
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
    from django.core.wsgi import get_wsgi_application
    from django.middleware.csrf import _get_new_csrf_string
    from django.test import Client
    from django.utils import timezone

    from homelink.accounts.models import Parent
    from homelink.mis.records import FileHeader, Format, MemberRecord, ParsedFile
    from homelink.mis.services import import_parsed
    from homelink.register.models import Link, Member
    from homelink.registration.services import codes_issue
    from homelink.schools.models import School

    call_command("migrate", verbosity=0)
    school = School.objects.create(urn="100001", name="Bench Academy", la_code="838", estab="4512")
    records = [
        # No contacts: every redemption makes a student's first link.
        MemberRecord(
            mis_id=f"B{i:012}", forename="Pupil", surname=f"Number{i}", year="7", contacts=()
        )
        for i in range(parents)
    ]
    header = FileHeader(format=Format.CTF, qualifier="full", source_urn=school.urn)
    import_parsed(
        school=school,
        opener=lambda: ParsedFile(header, iter(records)),
        file_format=Format.CTF,
        file_name="bench",
    )
    students = list(Member.objects.filter(school=school).order_by("mis_id"))
    codes = [code for _, code in codes_issue(school=school, members=students, actor="bench")]
    now = timezone.now()
    sessions = []
    for i in range(parents):
        user = User.objects.create_user(
            username=f"p{i}@example.org",
            email=f"p{i}@example.org",
            first_name="Parent",
            last_name=f"Number{i}",
        )
        Parent.objects.create(user=user, email_verified_at=now)
        client = Client()
        client.force_login(user)
        sessions.append(client.cookies["sessionid"].value)

    class QuietHandler(WSGIRequestHandler):
        # Headers and body leave as two writes; with Nagle on, delayed ACKs cost 40 ms a request.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadedWSGIServer(("127.0.0.1", 0), QuietHandler)
    server.set_app(get_wsgi_application())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    conn = http.client.HTTPConnection("127.0.0.1", port)

    started = time.perf_counter()
    for _ in range(HELLO):
        conn.request("GET", "/healthz/")
        response = conn.getresponse()
        response.read()
        assert response.status == 200
    hello_rps = HELLO / (time.perf_counter() - started)

    csrf = _get_new_csrf_string()
    started = time.perf_counter()
    for session, code in zip(sessions, codes, strict=True):
        body = urlencode({"csrfmiddlewaretoken": csrf, "code": code})
        conn.request(
            "POST",
            "/account/link/",
            body=body,
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Cookie": f"sessionid={session}; csrftoken={csrf}",
                "Referer": f"http://127.0.0.1:{port}/account/link/",
                "Host": f"127.0.0.1:{port}",
            },
        )
        response = conn.getresponse()
        response.read()
        assert response.status in (200, 302), response.status
    redeem_rps = parents / (time.perf_counter() - started)
    server.shutdown()
    linked = Link.objects.filter(source="web").count()
    if linked != parents:
        raise SystemExit(f"only {linked} of {parents} redemptions made a link")
    return {"hello_rps": hello_rps, "redeem_rps": redeem_rps}


if __name__ == "__main__":
    print(json.dumps(_child(int(sys.argv[1]))))
