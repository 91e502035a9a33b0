"""The subject access forms: when a request was received, and which logged request."""

from __future__ import annotations

import datetime as dt

from django import forms
from django.utils import timezone

from homelink.console.forms import AccessibleForm


class ReceivedForm(AccessibleForm):
    received_on = forms.DateField(
        label="Request received on",
        required=False,
        help_text="Leave empty for today. The answer is due one calendar month later.",
        widget=forms.DateInput(attrs={"type": "date"}),
    )

    def clean_received_on(self) -> dt.date | None:
        received: dt.date | None = self.cleaned_data.get("received_on")
        if received is not None and received > timezone.localdate():
            raise forms.ValidationError("The date a request was received cannot be in the future.")
        return received


class RequestForm(forms.Form):
    # A primary key, bounded so that junk never reaches the database as an overflowing number.
    request = forms.IntegerField(min_value=1, max_value=2**31 - 1)
