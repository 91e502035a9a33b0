"""The members list's filters and the member page's actions: thin, each naming what the
service it feeds needs."""

from __future__ import annotations

from django import forms

from homelink.register.models import Member
from homelink.register.selectors import MemberFilters


class MemberFilterForm(forms.Form):
    q = forms.CharField(label="Name, email, mobile or MIS id", required=False, max_length=100)
    year = forms.ChoiceField(label="Year", required=False)
    reg_group = forms.ChoiceField(label="Registration group", required=False)
    kind = forms.ChoiceField(
        label="Kind",
        required=False,
        choices=[("", "Everyone"), *Member.Kind.choices],
    )
    role = forms.ChoiceField(
        label="Role", required=False, choices=[("", "Any"), *Member.Role.choices]
    )
    status = forms.ChoiceField(
        label="On roll",
        required=False,
        choices=[("current", "Current"), ("left", "Left"), ("all", "Current and left")],
    )
    reachable = forms.ChoiceField(
        label="Reachable",
        required=False,
        choices=[("", "Either"), ("yes", "Reachable"), ("no", "Not reachable")],
    )

    def __init__(
        self, *args: object, years: list[str], reg_groups: list[str], **kwargs: object
    ) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fields["year"].choices = [("", "Any"), *((y, y) for y in years)]  # type: ignore[attr-defined]
        self.fields["reg_group"].choices = [("", "Any"), *((g, g) for g in reg_groups)]  # type: ignore[attr-defined]

    def filters(self) -> MemberFilters:
        """The filters as given; a value that is not one of the choices is ignored, not an
        error, so an old bookmark still opens the list."""
        if self.is_valid():
            data = self.cleaned_data
        else:
            data = {k: v for k, v in self.cleaned_data.items() if k not in self.errors}
        return MemberFilters(
            q=data.get("q", "") or "",
            year=data.get("year", "") or "",
            reg_group=data.get("reg_group", "") or "",
            kind=data.get("kind", "") or "",
            role=data.get("role", "") or "",
            status=data.get("status", "") or "current",
            reachable=data.get("reachable", "") or "",
        )


class PrimeForm(forms.Form):
    prime = forms.TypedChoiceField(
        choices=[("1", "prime"), ("0", "not prime")], coerce=lambda v: v == "1"
    )


class OptOutForm(forms.Form):
    opted_out = forms.TypedChoiceField(
        choices=[("1", "opt out"), ("0", "opt back in")], coerce=lambda v: v == "1"
    )
    asked = forms.BooleanField(
        label="The person asked for this themselves",
        error_messages={
            "required": "Record an opt-out (or undo one) only when the person asked for it."
        },
    )


class DecisionForm(forms.Form):
    decision = forms.ChoiceField(choices=[("approve", "Approve"), ("refuse", "Refuse")])
