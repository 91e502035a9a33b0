"""``homelink otp enrol --user EMAIL``: set up an operator's (or staff member's) authenticator app
from the server's terminal.

On the web, an account's first authenticator is set up with its password alone, so whoever has
the password first can do it. From the terminal it needs shell access instead: run it right after
``homelink createsuperuser`` and the operator's account never has a moment without a second
factor. ``--replace`` rescues an operator who lost their phone when no other operator can delete
the device in the admin.

The secret is printed once, to this terminal only, and saved only once a code from the app
proves the app has it; until then no web page can show it.
"""

from __future__ import annotations

import io
import sys
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Q

from homelink.staff import otp

#: Tries at the code before giving up (a code changes every 30 seconds).
TRIES = 3


class Command(BaseCommand):
    help = "Set up an authenticator app (TOTP) for an operator or staff account, here."
    # Tests hand in the code through call_command(..., stdin=...), as ``homelink staff`` does.
    stealth_options = ("stdin",)

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        enrol = sub.add_parser(
            "enrol",
            help="print a new secret for the account's authenticator app, then save it once a "
            "code from the app (read from standard input) proves the app has it",
        )
        enrol.add_argument("--user", required=True, help="the account's email (its login)")
        enrol.add_argument(
            "--replace",
            action="store_true",
            help="replace the account's authenticator (the old one stops working)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        stdin = options.get("stdin") or sys.stdin
        user = self._user(options["user"])
        if not otp.may_use_second_factor(user):
            raise CommandError(
                f"{options['user']} is neither a site operator nor school staff: there is no "
                "second factor to set up"
            )
        if otp.confirmed_device(user) is not None and not options["replace"]:
            raise CommandError(
                f"{options['user']} already has an authenticator app; give --replace to replace "
                "it (the old one then stops working)"
            )
        device = otp.offline_device(user)
        uri = otp.otpauth_uri(device)
        self.stdout.write(
            "Add this account to the authenticator app: scan the QR code, or open the URI, or "
            "enter the secret by hand. It is shown only now."
        )
        self.stdout.write(self._qr(uri))
        self.stdout.write(f"URI:    {uri}")
        self.stdout.write(f"Secret: {otp.secret_text(device)}")
        for _ in range(TRIES):
            self.stdout.write("Code the app shows now: ", ending="")
            self.stdout.flush()
            token = stdin.readline().strip()
            if not token:
                break
            if otp.offline_device_install(device=device, token=token, replace=options["replace"]):
                self.stdout.write(
                    self.style.SUCCESS(f"The authenticator app of {options['user']} is set up.")
                )
                return
            if otp.confirmed_device(user) is not None and not options["replace"]:
                raise CommandError("another authenticator was set up meanwhile: nothing saved")
            self.stdout.write("That code was not accepted.")
        raise CommandError("no code accepted: nothing was saved")

    def _user(self, email: str) -> Any:
        wanted = email.strip()
        matches = list(
            get_user_model().objects.filter(Q(username__iexact=wanted) | Q(email__iexact=wanted))[
                :2
            ]
        )
        if len(matches) != 1:
            raise CommandError(f"no single account has the login or email {wanted!r}")
        return matches[0]

    @staticmethod
    def _qr(text: str) -> str:
        """The QR code in text, for a terminal (or "" without the ``qrcode`` package)."""
        try:
            import qrcode
        except ImportError:  # pragma: no cover - a dependency; the URI and secret suffice
            return ""
        code = qrcode.QRCode(border=2)
        code.add_data(text)
        out = io.StringIO()
        code.print_ascii(out=out, invert=True)
        return out.getvalue()
