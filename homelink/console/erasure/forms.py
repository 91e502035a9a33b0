"""The erasure pages' forms: confirming an erasure, lifting a tombstone, the retention periods."""

from __future__ import annotations

from django import forms

from homelink.privacy.retention import AUDIT_YEARS_MIN, LIMITS


class EraseForm(forms.Form):
    asked = forms.BooleanField(
        label="The person asked for their data to be erased",
        error_messages={"required": "Erase someone only when they asked for it: tick the box."},
    )
    unreachable_ok = forms.BooleanField(
        label="Erase anyway: I know these students will have no adult who can receive messages",
        required=False,
    )

    def __init__(self, *args: object, unreachable: bool = False, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.unreachable = unreachable
        if unreachable:
            self.fields["unreachable_ok"].required = True
            self.fields["unreachable_ok"].error_messages["required"] = (
                "Tick the box to erase them anyway, or add another contact for these students "
                "first."
            )


class LiftForm(forms.Form):
    erasure = forms.CharField(max_length=32)
    confirm = forms.BooleanField(
        error_messages={"required": "Tick the box to lift the tombstone."},
    )


def _months(name: str, label: str, help_text: str) -> forms.IntegerField:
    low, high = LIMITS[name]
    return forms.IntegerField(label=label, min_value=low, max_value=high, help_text=help_text)


class RetentionForm(forms.Form):
    leavers_months = _months(
        "leavers_months",
        "Leavers: months after leaving",
        "Members who left, with their links and letters, and adults linked only to them.",
    )
    messages_months = _months(
        "messages_months",
        "Messages: months after writing",
        "Message bodies, their delivery rows, and replies texted to the school.",
    )
    audit_years = _months(
        "audit_years",
        "Audit trail: years",
        f"Who did what, and when. At least {AUDIT_YEARS_MIN} years: the trail cannot be cut "
        "short, only kept longer.",
    )
    audit_years.error_messages["min_value"] = (
        f"The audit trail is kept at least {AUDIT_YEARS_MIN} years: you can keep it longer, "
        "not shorter."
    )
