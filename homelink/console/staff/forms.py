"""The Staff page's forms (invite an address, change a role) and the invitation page's: a
password chosen twice, or nothing but the button."""

from __future__ import annotations

from typing import Any

from django import forms

from homelink.console.forms import AccessibleForm
from homelink.staff.models import Role


class InvitationForm(AccessibleForm):
    """Accept an invitation. With ``choose_password``, the person chooses the account's password
    (Django's validators run in the service, against the account it is for)."""

    password1 = forms.CharField(
        label="Password",
        strip=False,
        help_text="At least 8 characters. Not a common password, not only numbers, and not like "
        "your email address.",
        error_messages={"required": "Choose a password."},
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    password2 = forms.CharField(
        label="Password again",
        strip=False,
        error_messages={"required": "Type the password again."},
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def __init__(self, *args: Any, choose_password: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not choose_password:
            del self.fields["password1"]
            del self.fields["password2"]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        first, second = data.get("password1"), data.get("password2")
        if first and second and first != second:
            self.add_error("password2", "The two passwords are not the same.")
        return data


class StaffAddForm(AccessibleForm):
    email = forms.EmailField(
        label="Email",
        max_length=254,
        error_messages={
            "required": "Enter the person's email address.",
            "invalid": "Enter an email address like name@example.com.",
        },
    )
    role = forms.ChoiceField(label="Role", choices=Role.choices, initial=Role.VIEWER)


class StaffRoleForm(AccessibleForm):
    role = forms.ChoiceField(label="Role", choices=Role.choices)
