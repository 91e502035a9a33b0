"""The trust Staff page's forms: invite an address to a trust role, change a trust role."""

from __future__ import annotations

from django import forms

from homelink.console.forms import AccessibleForm
from homelink.staff.models import Role

TRUST_ROLES = [(role.value, f"Trust {role.label.lower()}") for role in Role]


class TrustStaffAddForm(AccessibleForm):
    email = forms.EmailField(
        label="Email",
        max_length=254,
        error_messages={
            "required": "Enter the person's email address.",
            "invalid": "Enter an email address like name@example.com.",
        },
    )
    role = forms.ChoiceField(label="Role", choices=TRUST_ROLES, initial=Role.VIEWER)


class TrustRoleForm(AccessibleForm):
    role = forms.ChoiceField(label="Role", choices=TRUST_ROLES)
