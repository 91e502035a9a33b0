"""Safe by default: a production install that forgets a setting fails closed.

Each test starts a fresh Python process with an environment made from nothing (not the test
run's, which has HOMELINK_DEV=1), as a server started by systemd with a thin environment file
would be, and asks it what it serves.
"""

from __future__ import annotations

import ast
import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

REPO = Path(__file__).resolve().parents[2]

#: Run in the fresh process: the settings it ended up with, and what /outbox/ answers.
PROBE = """
import json, django
django.setup()
from django.conf import settings
from django.test import Client
from homelink.mis.uploads import max_upload_bytes
response = Client().get("/outbox/", HTTP_HOST="localhost")
print(json.dumps({
    "outbox_status": response.status_code,
    "dev": settings.HOMELINK_DEV,
    "show_outbox": settings.HOMELINK_SHOW_OUTBOX,
    "session_cookie_secure": settings.SESSION_COOKIE_SECURE,
    "csrf_cookie_secure": settings.CSRF_COOKIE_SECURE,
    "import_max_bytes": max_upload_bytes(),
}))
"""


def fresh(tmp_path: Path, **environ: str) -> dict[str, str]:
    return {
        "PATH": os.environ["PATH"],
        "DJANGO_SETTINGS_MODULE": "homelink.settings",
        "HOMELINK_VAR_DIR": str(tmp_path),
        **environ,
    }


def production(tmp_path: Path, **extra: str) -> dict[str, str]:
    """Only what the issue says a careless operator sets: a key and a database."""
    return fresh(
        tmp_path,
        SECRET_KEY=secrets.token_urlsafe(50),
        DATABASE_URL=f"sqlite:///{tmp_path / 'prod.sqlite3'}",
        **extra,
    )


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, env=env, cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )


def probe(env: dict[str, str]) -> dict[str, object]:
    done = run([sys.executable, "-c", PROBE], env)
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_only_a_key_and_a_database_serves_no_outbox_and_secure_cookies(tmp_path) -> None:
    seen = probe(production(tmp_path))
    assert seen["outbox_status"] == 404
    assert seen["dev"] is False and seen["show_outbox"] is False
    assert seen["session_cookie_secure"] is True and seen["csrf_cookie_secure"] is True


def test_the_demo_and_tests_switch_the_conveniences_on(tmp_path) -> None:
    """What `homelink demo` and the test settings set, and nothing else, opens the outbox."""
    env = production(tmp_path, HOMELINK_DEV="1")
    migrated = run([sys.executable, "-m", "homelink.cli", "migrate", "--verbosity", "0"], env)
    assert migrated.returncode == 0, migrated.stderr
    seen = probe(env)
    assert seen["outbox_status"] == 200 and seen["dev"] is True


def test_without_a_secret_key_nothing_starts(tmp_path) -> None:
    done = run([sys.executable, "-c", PROBE], fresh(tmp_path))
    assert done.returncode != 0
    assert "SECRET_KEY is not set" in done.stderr
    assert "outbox_status" not in done.stdout


def test_the_demo_command_needs_no_settings(tmp_path) -> None:
    """`make demo` on a fresh machine: the CLI turns the conveniences on for the demo alone."""
    env = fresh(tmp_path, DATABASE_URL=f"sqlite:///{tmp_path / 'demo.sqlite3'}")
    done = run([sys.executable, "-m", "homelink.cli", "demo", "--help"], env)
    assert done.returncode == 0, done.stderr
    other = run([sys.executable, "-m", "homelink.cli", "check"], env)
    assert other.returncode != 0 and "SECRET_KEY is not set" in other.stderr


def deploy_check(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, "-m", "homelink.cli", "check", "--deploy"], env)


def test_check_deploy_fails_on_development_conveniences(tmp_path) -> None:
    # HOMELINK_DEV=1 and no SECRET_KEY: the demo's environment copied to a server.
    env = fresh(tmp_path, HOMELINK_DEV="1", DATABASE_URL=f"sqlite:///{tmp_path / 'p.sqlite3'}")
    done = deploy_check(env)
    assert done.returncode != 0
    for code in ("homelink.E001", "homelink.E002", "homelink.E003"):
        assert code in done.stderr, code
    outbox_only = deploy_check(production(tmp_path, HOMELINK_SHOW_OUTBOX="1"))
    assert outbox_only.returncode != 0 and "homelink.E002" in outbox_only.stderr


def test_check_deploy_warns_about_what_a_bare_install_left_unset(tmp_path) -> None:
    done = deploy_check(production(tmp_path))
    assert done.returncode == 0, done.stderr
    said = done.stdout + done.stderr
    for code in ("W101", "W102", "W105", "W106", "W108", "W001"):
        assert f"homelink.{code}" in said, code
    assert "homelink.E" not in said


def test_check_deploy_is_quiet_about_what_was_set(tmp_path) -> None:
    done = deploy_check(
        production(
            tmp_path,
            EMAIL_HOST="smtp.example.org",
            HOMELINK_SMS_GATEWAY="homelink.messaging.gateways.twilio.TwilioGateway",
            HOMELINK_SMS_RATE="10",
            HOMELINK_PUBLIC_URL="https://homelink.example.org",
            ADMINS="Ops <ops@example.org>",
            HOMELINK_TRUSTED_PROXIES="127.0.0.1",
            HOMELINK_SYNC_KEY=Fernet.generate_key().decode(),
        )
    )
    assert done.returncode == 0, done.stderr
    assert "homelink." not in done.stdout + done.stderr


@pytest.mark.parametrize("rate", ["inf", "nan", "-1", "0.000001", "ten"])
def test_a_rate_that_is_a_typo_stops_the_start(tmp_path, rate: str) -> None:
    done = run(
        [sys.executable, "-m", "homelink.cli", "check"],
        production(tmp_path, HOMELINK_SMS_RATE=rate),
    )
    assert done.returncode != 0
    assert "HOMELINK_SMS_RATE must be 0" in done.stderr


def test_check_deploy_asks_for_the_sms_accounts_rate(tmp_path) -> None:
    done = deploy_check(
        production(
            tmp_path, HOMELINK_SMS_GATEWAY="homelink.messaging.gateways.twilio.TwilioGateway"
        )
    )
    assert done.returncode == 0, done.stderr
    assert "homelink.W107" in done.stdout + done.stderr


def documented_settings() -> set[str]:
    text = (REPO / ".env.example").read_text()
    return set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", text, flags=re.MULTILINE))


def settings_read() -> set[str]:
    """Every environment variable the settings module reads, from its syntax tree."""
    tree = ast.parse((REPO / "homelink" / "settings.py").read_text())
    readers = {"get", "env_bool", "_json_setting", "_rate"}
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in readers and node.args and isinstance(node.args[0], ast.Constant):
                names.add(str(node.args[0].value))
        elif (
            isinstance(node, ast.Subscript)
            and isinstance(node.slice, ast.Constant)
            and ast.unparse(node.value) == "os.environ"
        ):
            names.add(str(node.slice.value))
    return names


def test_every_setting_env_example_documents_is_read() -> None:
    documented = documented_settings()
    assert len(documented) > 30, "the .env.example parse found too few settings"
    unread = sorted(documented - settings_read())
    assert not unread, f".env.example documents settings nothing reads: {unread}"


def test_the_upload_limit_is_read_from_the_environment(tmp_path) -> None:
    seen = probe(production(tmp_path, HOMELINK_IMPORT_MAX_BYTES="1234"))
    assert seen["import_max_bytes"] == 1234
