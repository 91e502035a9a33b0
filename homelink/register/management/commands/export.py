from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from homelink.audit.services import audit_record
from homelink.register.selectors import export_register
from homelink.schools.selectors import school_by_urn_or_error


class Command(BaseCommand):
    help = "Export a school's register (members and their linked adults) as JSON on stdout."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--school", required=True, metavar="URN", help="the school's URN")
        parser.add_argument(
            "--json", action="store_true", required=True, help="write JSON (the only format)"
        )
        parser.add_argument("--indent", type=int, default=None, help="indent the JSON for reading")

    def handle(self, *args: Any, **options: Any) -> None:
        school = school_by_urn_or_error(options["school"])
        data = export_register(school)
        # An export is personal data leaving the system: the trail records who took it.
        audit_record(
            school=school,
            actor_label="cli",
            action="register.exported",
            detail={"members": len(data["members"])},
        )
        self.stdout.write(json.dumps(data, indent=options["indent"], ensure_ascii=False))
