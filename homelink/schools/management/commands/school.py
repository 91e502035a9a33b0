from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from homelink.schools.selectors import school_by_urn_or_error
from homelink.schools.services import school_create, school_update

ON_OFF = {"on": True, "off": False}


class Command(BaseCommand):
    help = "Add a school, change its settings, or list schools."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        add = sub.add_parser("add", help="add a school (the tenant)")
        add.add_argument("--urn", required=True, help="the school's URN (6 digits)")
        add.add_argument("--name", required=True, help="the school's name")
        add.add_argument("--la", default="", help="LA code (3 digits): matches CTF headers")
        add.add_argument("--estab", default="", help="establishment number (4 digits)")
        add.add_argument(
            "--region", default="GB", help="phone region for local numbers (default GB)"
        )
        setp = sub.add_parser("set", help="change a school's settings")
        setp.add_argument("urn", help="the school's URN")
        setp.add_argument(
            "--import-lower-priority",
            choices=ON_OFF,
            help="also import priority 2+ contacts as non-prime",
        )
        setp.add_argument("--name", help="the school's name")
        setp.add_argument("--region", help="phone region for local numbers")
        setp.add_argument(
            "--code-expiry-days", type=int, help="days a security letter's code stays valid"
        )
        credits = sub.add_parser(
            "credits", help="show a school's SMS credits, or add (or remove) some"
        )
        credits.add_argument("urn", help="the school's URN")
        credits.add_argument(
            "change", nargs="?", type=int, help="credits to add (negative to remove)"
        )
        sub.add_parser("list", help="list the schools")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        try:
            if action == "add":
                school = school_create(
                    urn=options["urn"],
                    name=options["name"],
                    la_code=options["la"],
                    estab=options["estab"],
                    phone_region=options["region"],
                )
                self.stdout.write(self.style.SUCCESS(f"Added {school}"))
            elif action == "set":
                school = school_by_urn_or_error(options["urn"])
                values: dict[str, Any] = {}
                if options["import_lower_priority"] is not None:
                    values["import_lower_priority"] = ON_OFF[options["import_lower_priority"]]
                if options["name"] is not None:
                    values["name"] = options["name"]
                if options["region"] is not None:
                    values["phone_region"] = options["region"]
                if options["code_expiry_days"] is not None:
                    values["code_expiry_days"] = options["code_expiry_days"]
                if not values:
                    raise CommandError("nothing to set: give at least one setting")
                school_update(school=school, **values)
                self.stdout.write(
                    self.style.SUCCESS(
                        f"Updated {school}: " + ", ".join(f"{k}={v}" for k, v in values.items())
                    )
                )
            elif action == "credits":
                # Imported here: the messaging app is not needed to add a school.
                from homelink.messaging.services import credits_add

                school = school_by_urn_or_error(options["urn"])
                if options["change"] is not None:
                    credits_add(school=school, amount=options["change"], actor="cli")
                self.stdout.write(f"{school}: {school.sms_credits:,} SMS credits")
            else:
                from homelink.schools.models import School

                for school in School.objects.all():
                    flag = "on" if school.import_lower_priority else "off"
                    self.stdout.write(
                        f"{school.urn}  {school.name}  (region {school.phone_region}, lower-priority import {flag})"
                    )
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
