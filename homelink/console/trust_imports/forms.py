"""The trust import's forms: the upload, and the school each unmapped org of the file is."""

from __future__ import annotations

import hashlib
from typing import Any

from django import forms
from django.core.files.uploadedfile import UploadedFile
from django.template.defaultfilters import filesizeformat

from homelink.console.forms import AccessibleForm
from homelink.console.refusals import sentence
from homelink.mis.uploads import max_upload_bytes
from homelink.schools.models import School
from homelink.trusts.imports import OrgPlace

#: The choice that leaves an org out of this import.
LEAVE_OUT = "-"


class TrustImportUploadForm(AccessibleForm):
    file = forms.FileField(
        label="The trust's OneRoster export",
        help_text="The zip your MIS makes for the whole trust (orgs.csv, users.csv…). Each "
        "school's records go to that school; you see each school's preview before anything "
        "is written.",
    )

    def clean_file(self) -> UploadedFile:
        upload: UploadedFile = self.cleaned_data["file"]
        cap = max_upload_bytes()
        if upload.size is not None and upload.size > cap:
            raise forms.ValidationError(
                f"This file is {filesizeformat(upload.size)}; the largest import accepted is "
                f"{filesizeformat(cap)}. Ask your administrator to raise the limit."
            )
        if not upload.size:
            raise forms.ValidationError("This file is empty.")
        return upload


def org_field(org: str) -> str:
    """A field's name for an org: its sourcedId may hold any character."""
    return "org_" + hashlib.sha256(org.encode()).hexdigest()[:16]


class OrgMappingForm(AccessibleForm):
    """For each org of the file that goes to no school yet: which school of the trust it is,
    or leave it out. A school chosen here is remembered for the trust's next imports."""

    def __init__(
        self, *args: Any, places: list[OrgPlace], schools: list[School], **kwargs: Any
    ) -> None:
        self.places = [p for p in places if p.needs_mapping]
        self.schools = {s.urn: s for s in schools}
        super().__init__(*args, **kwargs)
        choices = [
            ("", "Choose…"),
            (LEAVE_OUT, "Leave it out of this import"),
            *((s.urn, f"{s.name} (URN {s.urn})") for s in schools),
        ]
        for place in self.places:
            self.fields[org_field(place.org.sourced_id)] = forms.ChoiceField(
                label=place.label,
                choices=choices,
                help_text=f"Organisation type: {place.org.type or 'not given'}. "
                f"{sentence(place.reason)}",
                error_messages={"required": f"Say which school {place.label} is, or leave it out."},
            )
        self._describe()

    def decisions(self) -> dict[str, School | None]:
        """org sourcedId -> the school chosen, or None to leave it out."""
        chosen: dict[str, School | None] = {}
        for place in self.places:
            value = self.cleaned_data[org_field(place.org.sourced_id)]
            chosen[place.org.sourced_id] = None if value == LEAVE_OUT else self.schools[value]
        return chosen
