"""Forms for the parent's pages. They check what was typed; the writes are in services.py."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import password_validation
from django.contrib.auth.forms import PasswordResetForm, SetPasswordForm
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError

from homelink.accounts import services
from homelink.register.identity import normalise_email
from homelink.registration.linking import RELATIONSHIP_MAX, RELATIONSHIPS, relationship_clean

EMAIL_INVALID = "Enter an email address, like name@example.com."


class UntypedTextInput(forms.TextInput):
    """Never writes back what was typed: a code must not sit in the page (or the browser's
    cache) after a failed attempt, and every refusal then looks the same."""

    def format_value(self, value: Any) -> str | None:
        return None


def _email_field(**kwargs: Any) -> forms.EmailField:
    return forms.EmailField(
        label="Email address",
        max_length=254,
        error_messages={"required": "Enter your email address.", "invalid": EMAIL_INVALID},
        widget=forms.EmailInput(attrs={"autocomplete": "email", "spellcheck": "false"}),
        **kwargs,
    )


class RegisterForm(forms.Form):
    email = _email_field(help_text="We will send you a link to confirm it.")
    forename = forms.CharField(
        label="First name",
        max_length=100,
        error_messages={"required": "Enter your first name."},
        widget=forms.TextInput(attrs={"autocomplete": "given-name"}),
    )
    surname = forms.CharField(
        label="Last name",
        max_length=100,
        error_messages={"required": "Enter your last name."},
        widget=forms.TextInput(attrs={"autocomplete": "family-name"}),
    )
    password1 = forms.CharField(
        label="Password",
        strip=False,
        help_text="At least 8 characters. Not a common password, not only numbers, and not "
        "like your name or email.",
        error_messages={"required": "Enter a password."},
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    password2 = forms.CharField(
        label="Password again",
        strip=False,
        error_messages={"required": "Enter the password again."},
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def clean_email(self) -> str:
        address = normalise_email(self.cleaned_data["email"])
        if not address:
            raise ValidationError(EMAIL_INVALID)
        if services.email_in_use(address):
            raise ValidationError(services.EmailTaken().message)
        return address

    def clean(self) -> dict[str, Any] | None:
        data = super().clean() or {}
        first, second = data.get("password1"), data.get("password2")
        if first and second and first != second:
            self.add_error("password2", "The passwords do not match. Type them again.")
        elif first:
            # The similarity check compares with what the parent typed, not a saved user.
            candidate = User(
                username=data.get("email", ""),
                email=data.get("email", ""),
                first_name=data.get("forename", ""),
                last_name=data.get("surname", ""),
            )
            try:
                password_validation.validate_password(first, user=candidate)
            except ValidationError as exc:
                self.add_error("password1", exc)
        return data


class LoginForm(forms.Form):
    email = _email_field()
    password = forms.CharField(
        label="Password",
        strip=False,
        error_messages={"required": "Enter your password."},
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )


class LinkCodeForm(forms.Form):
    code = forms.CharField(
        label="Security code",
        max_length=64,
        help_text="It is printed on the letter, like 7KQ2-M9XD-4RTW-PBH3. Capital or small "
        "letters, with or without dashes.",
        error_messages={"required": "Enter the code from your letter."},
        widget=UntypedTextInput(
            attrs={"autocomplete": "off", "autocapitalize": "characters", "spellcheck": "false"}
        ),
    )
    relationship = forms.ChoiceField(
        label="What are you to the child?",
        choices=list(RELATIONSHIPS.items()),
        widget=forms.RadioSelect,
        error_messages={"required": "Choose what you are to the child."},
    )
    relationship_other = forms.CharField(
        label="If other, what are you to the child?",
        required=False,
        max_length=RELATIONSHIP_MAX,
        help_text="For example aunt, step-father or foster carer. (A letter for your own staff "
        "record: choose Other and write “myself”.)",
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        choice = data.get("relationship")
        if choice:
            try:
                data["relationship"] = relationship_clean(
                    choice, data.get("relationship_other", "")
                )
            except ValueError:
                self.add_error(
                    "relationship_other", "Write what you are to the child, or choose one above."
                )
        return data


class DetailsForm(forms.Form):
    email = _email_field(help_text="A new address is used once you follow the link we send to it.")
    mobile = forms.CharField(
        label="Mobile number",
        required=False,
        max_length=32,
        help_text="For text messages from the school. We send a code to check it. Leave it "
        "empty for no text messages.",
        widget=forms.TextInput(attrs={"autocomplete": "tel", "inputmode": "tel"}),
    )

    def clean_email(self) -> str:
        address = normalise_email(self.cleaned_data["email"])
        if not address:
            raise ValidationError(EMAIL_INVALID)
        return address

    def clean_mobile(self) -> str:
        raw = self.cleaned_data["mobile"].strip()
        if raw:
            problem = services.mobile_problem(raw)
            if problem:
                raise ValidationError(problem)
        return raw


class VerifyMobileForm(forms.Form):
    code = forms.CharField(
        label="Code from the text message",
        max_length=16,
        help_text="6 digits.",
        error_messages={"required": "Enter the code from the text message."},
        widget=UntypedTextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "pattern": "[0-9 ]*"}
        ),
    )

    def clean_code(self) -> str:
        code = "".join(self.cleaned_data["code"].split())
        if not (len(code) == 6 and code.isascii() and code.isdigit()):
            raise ValidationError("Enter the 6-digit code from the text message.")
        return code


class PreferencesForm(forms.Form):
    channels = forms.ChoiceField(
        label="How should the school contact you?",
        choices=[
            ("both", "Email and text message"),
            ("email", "Email only"),
            ("sms", "Text message only"),
        ],
        widget=forms.RadioSelect,
        error_messages={"required": "Choose how the school should contact you."},
    )


class DeleteAccountForm(forms.Form):
    password = forms.CharField(
        label="Your password",
        strip=False,
        help_text="To check it is you.",
        error_messages={"required": "Enter your password."},
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )


class ResetForm(PasswordResetForm):
    """Django's reset form, with our wording."""

    email = _email_field()


class NewPasswordForm(SetPasswordForm):
    """Django's set-password form; its fields are new_password1 and new_password2."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["new_password1"].label = "New password"
        self.fields["new_password1"].help_text = (
            "At least 8 characters. Not a common password, not only numbers, and not like your "
            "name or email."
        )
        self.fields["new_password2"].label = "New password again"
