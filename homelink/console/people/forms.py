"""Forms for the console's people, letters and settings pages: thin, each naming what the
service it feeds needs, with the checks a person can correct shown against their field."""

from __future__ import annotations

import re
from typing import Any, cast

import phonenumbers
from django import forms
from django.db.models import QuerySet

from homelink.console.forms import AccessibleForm
from homelink.mis.phones import normalise_mobile
from homelink.register.identity import clean_text, normalise_email
from homelink.register.models import Adult
from homelink.schools.logos import LOGO_MAX_BYTES, Logo, logo_clean
from homelink.schools.services import office_phone_normalise

RELATIONSHIP_MAX = 32

#: Names for the regions a school is most likely to be in; the rest show their code.
REGION_NAMES = {
    "GB": "United Kingdom",
    "GG": "Guernsey",
    "JE": "Jersey",
    "IM": "Isle of Man",
    "IE": "Ireland",
    "US": "United States",
    "GI": "Gibraltar",
}

SMS_SENDER = re.compile(r"^[A-Za-z0-9 .&_-]{1,11}$")


def region_choices() -> list[tuple[str, str]]:
    """Every region libphonenumber supports, the likely ones first."""

    def label(region: str) -> str:
        name = REGION_NAMES.get(region)
        code = phonenumbers.country_code_for_region(region)
        return f"{region} — {name} (+{code})" if name else f"{region} (+{code})"

    first = [r for r in REGION_NAMES if r in phonenumbers.SUPPORTED_REGIONS]
    rest = sorted(r for r in phonenumbers.SUPPORTED_REGIONS if r not in REGION_NAMES)
    return [(r, label(r)) for r in (*first, *rest)]


class _LinkFields(AccessibleForm):
    relationship = forms.CharField(
        label="Relationship to the student",
        required=False,
        max_length=RELATIONSHIP_MAX,
        help_text="For example mother, father, carer, grandparent.",
    )
    prime = forms.BooleanField(label="Prime parent", required=False)
    parental_responsibility = forms.BooleanField(
        label="Has parental responsibility", required=False
    )

    def clean_relationship(self) -> str:
        return clean_text(self.cleaned_data.get("relationship", ""))


class AdultSearchForm(AccessibleForm):
    q = forms.CharField(
        label="Name or email",
        max_length=100,
        min_length=2,
        error_messages={
            "required": "Type part of a name or an email address.",
            "min_length": "Type at least two letters.",
        },
    )


class LinkExistingForm(_LinkFields):
    adult = forms.ModelChoiceField(
        label="Adult",
        queryset=Adult.objects.none(),
        widget=forms.RadioSelect,
        error_messages={
            "required": "Choose the adult to link.",
            "invalid_choice": "Choose one of the adults found.",
        },
    )

    field_order = ["adult", "relationship", "prime", "parental_responsibility"]

    def __init__(self, *args: Any, adults: QuerySet[Adult], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ModelChoiceField, self.fields["adult"]).queryset = adults


class NewAdultForm(_LinkFields):
    title = forms.CharField(label="Title", required=False, max_length=20)
    forename = forms.CharField(label="First name", required=False, max_length=100)
    surname = forms.CharField(label="Last name", max_length=100)
    email = forms.CharField(
        label="Email",
        required=False,
        max_length=254,
        widget=forms.EmailInput(attrs={"autocomplete": "off"}),
    )
    mobile = forms.CharField(
        label="Mobile",
        required=False,
        max_length=32,
        widget=forms.TextInput(attrs={"inputmode": "tel", "autocomplete": "off"}),
    )

    field_order = [
        "title",
        "forename",
        "surname",
        "email",
        "mobile",
        "relationship",
        "prime",
        "parental_responsibility",
    ]

    def __init__(self, *args: Any, phone_region: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.phone_region = phone_region
        self.fields["surname"].error_messages["required"] = "Enter the adult's last name."

    def clean_email(self) -> str:
        email = normalise_email(self.cleaned_data.get("email", ""))
        if email is None:
            raise forms.ValidationError("Enter an email address like name@example.com.")
        return email

    def clean_mobile(self) -> str:
        raw = self.cleaned_data.get("mobile", "").strip()
        if raw and not normalise_mobile(raw, self.phone_region):
            raise forms.ValidationError("That is not a mobile number, so it could not receive SMS.")
        return raw


class ReviewForm(AccessibleForm):
    decision = forms.ChoiceField(choices=[("release", "Release"), ("keep", "Keep held")])


class LettersForm(AccessibleForm):
    year = forms.ChoiceField(label="Year", required=False)
    reg_group = forms.ChoiceField(label="Registration group", required=False)
    unregistered_only = forms.BooleanField(
        label="Only students with no registered adult", required=False
    )

    def __init__(self, *args: Any, years: list[str], reg_groups: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ChoiceField, self.fields["year"]).choices = [
            ("", "All years"),
            *((y, y) for y in years),
        ]
        cast(forms.ChoiceField, self.fields["reg_group"]).choices = [
            ("", "All registration groups"),
            *((g, g) for g in reg_groups),
        ]


class SettingsForm(AccessibleForm):
    name = forms.CharField(label="School name", max_length=200)
    import_lower_priority = forms.BooleanField(
        label="Import lower-priority contacts",
        required=False,
        help_text="Also import priority 2 and below from the MIS, as non-prime parents.",
    )
    code_expiry_days = forms.IntegerField(
        label="Letter codes expire after (days)",
        min_value=1,
        max_value=365,
        help_text="Between 1 and 365 days. Applies to letters printed from now on.",
    )
    sms_sender = forms.CharField(
        label="SMS sender name",
        required=False,
        max_length=11,
        help_text=(
            "Up to 11 characters: letters, digits, spaces and . & _ - (at least one letter). "
            "A named sender cannot receive replies."
        ),
    )
    phone_region = forms.ChoiceField(
        label="Phone region",
        help_text="The country whose numbering the MIS uses for numbers without +.",
    )
    large_send_threshold = forms.IntegerField(
        label="Large send: ask again above (messages)",
        min_value=1,
        max_value=1_000_000,
        help_text=(
            "A send of more messages than this needs a second confirmation on the preview, "
            "against sending to the whole school by mistake."
        ),
    )
    require_second_factor = forms.BooleanField(
        label="Require a second factor",
        required=False,
        help_text="Staff must also give a code from an authenticator app to use the console.",
    )
    office_phone = forms.CharField(
        label="Office phone",
        required=False,
        max_length=32,
        help_text="Shown to parents on their account page, at the foot of message emails and "
        "on letters.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "inputmode": "tel"}),
    )
    logo = forms.FileField(
        label="Logo",
        required=False,
        help_text=f"A PNG or JPEG image of at most {LOGO_MAX_BYTES // 1024} KB. Shown on "
        "parents' pages and printed on letters.",
        widget=forms.FileInput(attrs={"accept": "image/png,image/jpeg"}),
    )
    remove_logo = forms.BooleanField(label="Remove the logo", required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ChoiceField, self.fields["phone_region"]).choices = region_choices()
        self.fields["name"].error_messages["required"] = "Enter the school's name."
        self.fields["code_expiry_days"].error_messages.update(
            {
                "required": "Enter a number of days between 1 and 365.",
                "invalid": "Enter a whole number of days between 1 and 365.",
                "min_value": "Enter a number of days between 1 and 365.",
                "max_value": "Enter a number of days between 1 and 365.",
            }
        )
        threshold_error = "Enter a whole number of messages, at least 1."
        self.fields["large_send_threshold"].error_messages.update(
            {
                "required": threshold_error,
                "invalid": threshold_error,
                "min_value": threshold_error,
                "max_value": "Enter at most 1,000,000 messages.",
            }
        )
        self.fields["sms_sender"].error_messages["max_length"] = (
            "An SMS sender name is at most 11 characters."
        )

    def clean_name(self) -> str:
        name = clean_text(self.cleaned_data.get("name", ""))
        if not name:
            raise forms.ValidationError("Enter the school's name.")
        return name

    def clean_logo(self) -> Logo | None:
        upload = self.cleaned_data.get("logo")
        if upload is None:
            return None
        if (upload.size or 0) > LOGO_MAX_BYTES:
            # Said before reading it: the cap is the point.
            raise forms.ValidationError(
                f"A logo can be at most {LOGO_MAX_BYTES // 1024} KB; this file is "
                f"{(upload.size or 0) // 1024} KB."
            )
        return logo_clean(upload.read())

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        raw = data.get("office_phone")
        if raw is not None and "phone_region" in data:
            try:
                data["office_phone"] = office_phone_normalise(raw, data["phone_region"])
            except forms.ValidationError as error:
                self.add_error("office_phone", error)
        if data.get("logo") is not None and data.get("remove_logo"):
            self.add_error("remove_logo", "Choose a new logo or remove the logo, not both.")
        return data

    def clean_sms_sender(self) -> str:
        sender = self.cleaned_data.get("sms_sender", "").strip()
        if not sender:
            return ""
        if not SMS_SENDER.fullmatch(sender):
            raise forms.ValidationError(
                "Use only letters A to Z, digits, spaces and . & _ - (at most 11 characters)."
            )
        if not any(ch.isalpha() for ch in sender):
            raise forms.ValidationError(
                "Include at least one letter: phones take a sender of digits for a number."
            )
        return sender
