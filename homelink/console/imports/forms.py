"""The import upload form (the file, its format or detect it, a CSV's mapping, update only),
and the scheduled sync's forms (the school's drop folder, a OneRoster API, the time, removing it)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.template.defaultfilters import filesizeformat

from homelink.console.forms import AccessibleForm
from homelink.console.refusals import sentence
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


# --- the scheduled sync (homelink/sync/services.py does the work) -----------------------------

#: The time a browser's time input sends (and, with seconds, one set to a finer step).
TIME_FORMATS = ["%H:%M", "%H:%M:%S"]


def _at_field() -> forms.TimeField:
    return forms.TimeField(
        label="Every night at",
        input_formats=TIME_FORMATS,
        widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
        help_text="24-hour clock, for example 02:00: after the MIS's own nightly export.",
        error_messages={
            "required": "Give the time, for example 02:00.",
            "invalid": "Give the time as hours and minutes on the 24-hour clock, for example 02:00.",
        },
    )


class SyncForm(AccessibleForm):
    """A sync form: the services refuse with errors keyed by their own names (folder, url,
    token_url, client_id, secret), which land on the field of that name, else above the form."""

    def refuse(self, error: ValidationError) -> None:
        if hasattr(error, "error_dict"):
            for name, messages in error.message_dict.items():
                field = name if name in self.fields else None
                for message in messages:
                    self.add_error(field, sentence(message))
        else:
            for message in error.messages:
                self.add_error(None, sentence(message))
        self._describe()


class SyncFolderForm(SyncForm):
    """The school's own drop folder: its path is the server's to choose, never the browser's."""

    prefix = "folder"
    at = _at_field()


#: A text input (full width, as the console styles them) with a keyboard for web addresses.
ADDRESS_ATTRS = {"inputmode": "url", "autocomplete": "off", "spellcheck": "false"}


class SyncOneRosterForm(SyncForm):
    prefix = "oneroster"
    url = forms.CharField(
        label="OneRoster address",
        max_length=500,
        help_text="The base address the MIS gives for its OneRoster 1.1 or 1.2 API, for example "
        "https://mis.example.com/ims/oneroster/v1p1.",
        widget=forms.TextInput(attrs=ADDRESS_ATTRS),
        error_messages={"required": "Give the OneRoster address the MIS gives."},
    )
    token_url = forms.CharField(
        label="Token address",
        max_length=500,
        required=False,
        help_text="Only if the MIS gives a separate address for its OAuth 2.0 tokens; left "
        "blank, it is the address above followed by /token.",
        widget=forms.TextInput(attrs=ADDRESS_ATTRS),
    )
    client_id = forms.CharField(
        label="Client id",
        max_length=255,
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
        error_messages={"required": "Give the client id the MIS issued."},
    )
    secret = forms.CharField(
        label="Client secret",
        required=False,
        strip=False,
        max_length=1000,
        help_text="Stored encrypted and never shown again. Once one is stored, leave this blank "
        "to keep it; it is needed again if the address or the client id changes.",
        # Never sent back to the browser, not even after an error in another field.
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
    )
    at = _at_field()


class SyncTimeForm(SyncForm):
    prefix = "time"
    at = _at_field()


class SyncRemoveForm(SyncForm):
    prefix = "remove"
    confirm = forms.BooleanField(
        label="Yes, stop the scheduled sync (its imports stay in the history)",
        error_messages={"required": "Tick the box to confirm."},
    )
