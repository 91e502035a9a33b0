"""The audit trail's filters: ids, codes and dates only (a GET form: nothing personal in a URL)."""

from __future__ import annotations

from typing import Any

from django import forms

from homelink.audit.selectors import AuditFilter, action_choices, actor_choices
from homelink.register.models import Adult, Member
from homelink.schools.models import School


class AuditFilterForm(forms.Form):
    actor = forms.ChoiceField(label="Who", required=False)
    action = forms.ChoiceField(label="Action", required=False)
    since = forms.DateField(
        label="From", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    until = forms.DateField(
        label="To", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    # Set by the links on a member's page (and kept while other filters change).
    member = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)
    adult = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)

    def __init__(self, data: Any = None, *, school: School) -> None:
        super().__init__(data)
        self.school = school
        self.fields["actor"].choices = [("", "Anyone"), *actor_choices(school)]  # type: ignore[attr-defined]
        self.fields["action"].choices = [("", "Any action"), *action_choices(school)]  # type: ignore[attr-defined]

    def clean_member(self) -> Member | None:
        pk = self.cleaned_data.get("member")
        if pk is None:
            return None
        # Another school's member is the same as no member at all.
        member = Member.objects.filter(school=self.school, pk=pk).first()
        if member is None:
            raise forms.ValidationError("There is no such member at this school.")
        return member

    def clean_adult(self) -> Adult | None:
        pk = self.cleaned_data.get("adult")
        if pk is None:
            return None
        adult = Adult.objects.filter(school=self.school, pk=pk).first()
        if adult is None:
            raise forms.ValidationError("There is no such person at this school.")
        return adult

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        since, until = data.get("since"), data.get("until")
        if since and until and since > until:
            raise forms.ValidationError("“From” must not be after “To”.")
        return data

    def chosen(self) -> AuditFilter:
        """The filter (call after is_valid())."""
        data = self.cleaned_data
        return AuditFilter(
            actor=data.get("actor") or "",
            member=data.get("member"),
            adult=data.get("adult"),
            action=data.get("action") or "",
            since=data.get("since"),
            until=data.get("until"),
        )
