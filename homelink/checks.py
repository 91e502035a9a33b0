"""``homelink check --deploy``: what a production install left unsafe or unfinished.

Errors are settings that expose personal data or weaken every secret (the process still starts:
the operator may be mid-way through setting up, and ``check --deploy`` exits non-zero for them).
Warnings are settings that leave the install working badly: mail or texts that never leave the
server, receipts that cannot be checked, operators nobody alerts. Django's own deploy checks
(HSTS, secure cookies, DEBUG) run beside these.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

OUTBOX_EMAIL = "homelink.messaging.email_backend.OutboxEmailBackend"
OUTBOX_SMS = "homelink.messaging.gateways.outbox.OutboxGateway"
LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", ""}


def check_development_conveniences(**kwargs: Any) -> list[checks.CheckMessage]:
    from homelink.settings import DEVELOPMENT_SECRET_KEY

    found: list[checks.CheckMessage] = []
    if getattr(settings, "HOMELINK_DEV", False):
        found.append(
            checks.Error(
                "HOMELINK_DEV is on: development conveniences (a built-in secret key, cookies "
                "over plain http, the readable outbox) are meant for the demo and tests only.",
                hint="Remove HOMELINK_DEV from the environment (or set HOMELINK_DEV=0).",
                id="homelink.E001",
            )
        )
    if getattr(settings, "HOMELINK_SHOW_OUTBOX", False):
        found.append(
            checks.Error(
                "HOMELINK_SHOW_OUTBOX is on: /outbox/ shows every kept email and text, with "
                "password-reset links and verification codes, to anyone who asks.",
                hint="Remove HOMELINK_SHOW_OUTBOX from the environment.",
                id="homelink.E002",
            )
        )
    if settings.SECRET_KEY == DEVELOPMENT_SECRET_KEY:
        found.append(
            checks.Error(
                "SECRET_KEY is the development key everyone can read in homelink's source: "
                "sessions, reset links and security codes could be forged.",
                hint="Set SECRET_KEY to a long random value (see .env.example).",
                id="homelink.E003",
            )
        )
    return found


def check_delivery(**kwargs: Any) -> list[checks.CheckMessage]:
    found: list[checks.CheckMessage] = []
    if settings.EMAIL_BACKEND == OUTBOX_EMAIL:
        found.append(
            checks.Warning(
                "Email is kept in the local outbox and never sent: parents get no confirmation "
                "or password-reset email, staff no invitation.",
                hint="Set EMAIL_HOST (SMTP) or EMAIL_BACKEND (an ESP through django-anymail).",
                id="homelink.W101",
            )
        )
    if settings.HOMELINK_SMS_GATEWAY == OUTBOX_SMS:
        found.append(
            checks.Warning(
                "Text messages are kept in the local outbox and never sent.",
                hint="Set HOMELINK_SMS_GATEWAY to Twilio's or the HTTP gateway "
                "(docs/deployment.md, 'SMS gateways').",
                id="homelink.W102",
            )
        )
    if settings.HOMELINK_SMS_GATEWAY.endswith(".HttpGateway") and not (
        settings.HOMELINK_HTTP_SMS.get("RECEIPT_SECRET")
    ):
        found.append(
            checks.Warning(
                "HOMELINK_HTTP_SMS has no RECEIPT_SECRET: delivery receipts are refused.",
                hint="Add a long random RECEIPT_SECRET to HOMELINK_HTTP_SMS.",
                id="homelink.W103",
            )
        )
    if settings.HOMELINK_SMS_GATEWAY != OUTBOX_SMS and not settings.HOMELINK_SMS_RATE:
        found.append(
            checks.Warning(
                "HOMELINK_SMS_RATE is not set: texts go as fast as the provider answers, and "
                "every worker finds the account's limit by being refused (429).",
                hint="Set HOMELINK_SMS_RATE to the messages per second your SMS account "
                "allows (Twilio: 1 per long code; more for short codes and messaging services).",
                id="homelink.W107",
            )
        )
    found.extend(_email_events())
    return found


def _email_events() -> list[checks.CheckMessage]:
    from anymail.utils import get_anymail_setting

    from homelink.messaging.email_events import TRACKING_VIEWS, events_esp

    esp = events_esp()
    if not esp:
        return []
    if esp not in TRACKING_VIEWS:
        return [
            checks.Error(
                f"HOMELINK_EMAIL_EVENTS_ESP names {esp!r}, which django-anymail has no "
                "tracking webhook for.",
                hint=f"One of: {', '.join(sorted(TRACKING_VIEWS))}.",
                id="homelink.E004",
            )
        ]
    if not get_anymail_setting("webhook_secret", default=""):
        return [
            checks.Warning(
                f"Email events from {esp} are ignored: ANYMAIL_WEBHOOK_SECRET is not set, so "
                "bounces are never recorded.",
                hint="Set ANYMAIL_WEBHOOK_SECRET (user:password) and give the provider the "
                "webhook address with it (docs/deployment.md).",
                id="homelink.W104",
            )
        ]
    view_class = getattr(TRACKING_VIEWS[esp], "view_class", None)
    try:
        if view_class is not None:
            view_class()
    except ImproperlyConfigured as exc:
        return [
            checks.Error(
                f"The {esp} webhook cannot run: {exc}",
                hint="Add the setting anymail asks for to ANYMAIL (JSON).",
                id="homelink.E005",
            )
        ]
    return []


def check_public_url(**kwargs: Any) -> list[checks.CheckMessage]:
    public = urlsplit(settings.HOMELINK_PUBLIC_URL)
    if public.scheme == "https" and (public.hostname or "") not in LOCAL_HOSTS:
        return []
    return [
        checks.Warning(
            f"HOMELINK_PUBLIC_URL is {settings.HOMELINK_PUBLIC_URL!r}: letters, emails and SMS "
            "providers' callbacks need the public https address of the site.",
            hint="Set HOMELINK_PUBLIC_URL, e.g. https://homelink.example.org",
            id="homelink.W105",
        )
    ]


def check_operators(**kwargs: Any) -> list[checks.CheckMessage]:
    if settings.ADMINS:
        return []
    return [
        checks.Warning(
            "ADMINS is empty: nobody is told when guessing or texting goes over the site-wide "
            "budgets.",
            hint='Set ADMINS="Name <ops@example.org>".',
            id="homelink.W106",
        )
    ]


def check_sync(**kwargs: Any) -> list[checks.CheckMessage]:
    """The scheduled MIS sync (homelink/sync/): the key for OneRoster secrets, and whether an
    administrator could make the server connect to its own network."""
    from homelink.sync.secrets import SyncKeyMissing, seal

    found: list[checks.CheckMessage] = []
    if settings.HOMELINK_SYNC_ALLOW_PRIVATE:
        found.append(
            checks.Error(
                "HOMELINK_SYNC_ALLOW_PRIVATE is on: a school administrator can make the server "
                "connect to addresses on its own network (a OneRoster URL of http://10.0.0.1/…).",
                hint="Remove HOMELINK_SYNC_ALLOW_PRIVATE; OneRoster servers are then reached "
                "over https at public addresses only.",
                id="homelink.E006",
            )
        )
    if not settings.HOMELINK_SYNC_KEYS:
        found.append(
            checks.Warning(
                "HOMELINK_SYNC_KEY is not set: OneRoster API syncs cannot be set up or run "
                "(drop folders work without it).",
                hint="Set HOMELINK_SYNC_KEY to a Fernet key (see .env.example).",
                id="homelink.W108",
            )
        )
    else:
        try:
            seal("check")
        except SyncKeyMissing:
            found.append(
                checks.Error(
                    "HOMELINK_SYNC_KEY is not a Fernet key: OneRoster secrets cannot be stored.",
                    hint="Each key is 32 url-safe base64-encoded bytes (see .env.example).",
                    id="homelink.E007",
                )
            )
    return found


def register() -> None:
    for check in (
        check_development_conveniences,
        check_delivery,
        check_public_url,
        check_operators,
        check_sync,
    ):
        checks.register(check, checks.Tags.security, deploy=True)
