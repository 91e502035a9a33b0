"""The import upload form: the file, its format (or detect it), a CSV's mapping, update only."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.files.uploadedfile import UploadedFile
from django.template.defaultfilters import filesizeformat

from homelink.mis.records import Format
from homelink.mis.uploads import MAPPING_MAX_BYTES, max_upload_bytes


class ImportUploadForm(forms.Form):
    file = forms.FileField(
        label="MIS export",
        help_text="A CTF (.xml), a OneRoster export (.zip) or a CSV file.",
    )
    format = forms.ChoiceField(
        label="Format",
        required=False,
        choices=[
            ("", "Detect from the file"),
            (Format.CTF.value, "CTF (Common Transfer File)"),
            (Format.ONEROSTER.value, "OneRoster (zip)"),
            (Format.CSV.value, "CSV"),
        ],
    )
    mapping = forms.FileField(
        label="Column mapping (CSV only, optional)",
        required=False,
        help_text='A JSON file: {"layout": "members" or "contacts", "columns": {...}}. '
        "Without one, the columns are recognised from the header line.",
    )
    update_only = forms.BooleanField(
        label="Update only: add and update, never mark anyone as left or remove a link",
        required=False,
    )

    def clean_file(self) -> UploadedFile:
        upload: UploadedFile = self.cleaned_data["file"]
        cap = max_upload_bytes()
        if upload.size is not None and upload.size > cap:
            raise forms.ValidationError(
                f"This file is {filesizeformat(upload.size)}; the largest import accepted is "
                f"{filesizeformat(cap)}. Export one file per year group and import each with "
                "“update only”, or ask your administrator to raise the limit."
            )
        if not upload.size:
            raise forms.ValidationError("This file is empty.")
        return upload

    def clean_mapping(self) -> UploadedFile | None:
        mapping: UploadedFile | None = self.cleaned_data.get("mapping")
        size = 0 if mapping is None else mapping.size or 0
        if size > MAPPING_MAX_BYTES:
            raise forms.ValidationError(
                f"A mapping is a small JSON file; this one is {filesizeformat(size)}."
            )
        return mapping

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        chosen = data.get("format")
        if data.get("mapping") is not None and chosen and chosen != Format.CSV.value:
            self.add_error("mapping", "A column mapping is only for CSV files.")
        return data
