"""The console's privacy notice form."""

from __future__ import annotations

from django import forms

from homelink.console.forms import AccessibleForm
from homelink.privacy.notices import MAX_TEXT


class NoticeForm(AccessibleForm):
    text = forms.CharField(
        label="The school's privacy notice",
        max_length=MAX_TEXT,
        widget=forms.Textarea(attrs={"rows": 24}),
        help_text="Saving makes a new version: parents see it from now on, and the earlier "
        "versions stay below with their dates. Fill in your data protection officer's contact.",
        error_messages={"required": "Write the notice."},
    )
