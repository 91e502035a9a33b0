"""Forms for a trust-wide send: the schools, the audience every school has (parents of all
students, of year groups or of registration groups; staff by role), the channel, the texts and
the time. Whether it can be sent as written (texts, merge fields, credits) is
:func:`homelink.trusts.sending.trust_message_preview`'s to say; the view shows its answer against
the same fields."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, cast

from django import forms
from django.utils import timezone

from homelink.console.forms import AccessibleForm
from homelink.console.messages.forms import MODE_CHOICES, PARENTS_CHOICES, STAFF_ROLES
from homelink.messaging import selectors
from homelink.messaging.audience import Audience
from homelink.messaging.models import Message
from homelink.messaging.services import MAX_SMS_LENGTH, SCHEDULE_SLACK, Draft
from homelink.register.years import year_label
from homelink.schools.models import School

WHO_CHOICES = [
    ("parents", "Parents and carers of students"),
    ("staff", "Staff and other adult members, by role"),
]
STUDENTS_CHOICES = [
    ("all", "All current students"),
    ("years", "Chosen year groups, in every school chosen"),
    ("groups", "Chosen registration groups, in every school chosen"),
]


def _radio(label: str, choices: Sequence[tuple[str, str]], initial: str, **kw: Any) -> Any:
    return forms.ChoiceField(
        label=label, choices=choices, initial=initial, widget=forms.RadioSelect, **kw
    )


def _checkboxes(label: str, **kw: Any) -> forms.MultipleChoiceField:
    return forms.MultipleChoiceField(
        label=label, required=False, widget=forms.CheckboxSelectMultiple, **kw
    )


class TrustComposeForm(AccessibleForm):
    """A trust-wide message. Bound from the compose page, and again from the preview's hidden
    fields when it is sent (everything is checked again then)."""

    schools = forms.MultipleChoiceField(
        label="Schools",
        widget=forms.CheckboxSelectMultiple,
        help_text="A parent with children at several of these schools gets one copy, sent by "
        "the first of their schools in this list.",
        error_messages={"required": "Choose at least one school."},
    )
    mode = _radio("Send by", MODE_CHOICES, Message.Mode.EMAIL_ELSE_SMS)
    who = _radio("Send to", WHO_CHOICES, "parents")
    parents = _radio("Which parents and carers", PARENTS_CHOICES, "all", required=False)
    students = _radio("Of which students", STUDENTS_CHOICES, "all", required=False)
    years = _checkboxes("Year groups")
    groups = _checkboxes("Registration groups")
    also_roles = _checkboxes(
        "Also send to staff with these roles",
        choices=STAFF_ROLES,
        help_text="Optional: for example teachers, to copy them in.",
    )
    staff_roles = _checkboxes(
        "Staff roles",
        choices=STAFF_ROLES,
        help_text="Choose none to send to every current adult member of each school.",
    )
    subject = forms.CharField(label="Email subject", required=False, max_length=200)
    email_body = forms.CharField(
        label="Email text", required=False, max_length=50_000, widget=forms.Textarea
    )
    sms_text = forms.CharField(
        label="SMS text",
        required=False,
        max_length=MAX_SMS_LENGTH,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text=(
            "160 characters make one SMS; longer texts take 153 per part. Curly quotes, emoji "
            "and some accented letters make it 70 per part."
        ),
    )
    urgent = forms.BooleanField(
        label="Urgent",
        required=False,
        help_text="A closure or an emergency: goes ahead of other messages waiting to be sent.",
    )
    send_date = forms.DateField(
        label="Date",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )
    send_time = forms.TimeField(
        label="Time",
        required=False,
        widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
    )

    def __init__(self, *args: Any, schools: list[School], **kwargs: Any) -> None:
        kwargs.setdefault("initial", {})
        kwargs["initial"].setdefault("schools", [s.urn for s in schools])
        super().__init__(*args, **kwargs)
        self.trust_schools = schools
        years, groups = selectors.trust_audience_choices(s.pk for s in schools)
        self._choices("schools", [(s.urn, f"{s.name} (URN {s.urn})") for s in schools])
        self._choices("years", [(y, year_label(y)) for y in years])
        self._choices("groups", [(g, g) for g in groups])
        self.fields["mode"].error_messages["required"] = "Choose how to send the message."
        self.fields["who"].error_messages["required"] = "Choose who the message is for."

    def _choices(self, name: str, choices: list[tuple[str, str]]) -> None:
        cast(forms.ChoiceField, self.fields[name]).choices = choices

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data is None:  # pragma: no cover - Form.clean returns cleaned_data
            return {}
        if data.get("who") == "parents":
            students = data["students"] = data.get("students") or "all"
            data["parents"] = data.get("parents") or "all"
            if students == "years" and not data.get("years"):
                self.add_error("years", "Choose at least one year group.")
            if students == "groups" and not data.get("groups"):
                self.add_error("groups", "Choose at least one registration group.")
        self._clean_send_at(data)
        return data

    def _clean_send_at(self, data: dict[str, Any]) -> None:
        day, time = data.get("send_date"), data.get("send_time")
        data["send_at"] = None
        if day is None and time is None:
            return
        if day is None:
            self.add_error("send_date", "Give the date to send on, or clear the time to send now.")
            return
        if time is None:
            self.add_error("send_time", "Give the time to send at, or clear the date to send now.")
            return
        zone = timezone.get_current_timezone()
        naive = dt.datetime.combine(day, time)
        when = timezone.make_aware(naive, zone)
        # The clocks going forward skip an hour: a time in it does not exist on that day.
        if when.astimezone(dt.UTC).astimezone(zone).replace(tzinfo=None) != naive:
            self.add_error("send_time", "That time does not exist on that day (the clocks change).")
            return
        if when < timezone.now() - SCHEDULE_SLACK:
            self.add_error("send_date", "That time has passed: choose a later one, or send now.")
            return
        data["send_at"] = when

    def chosen(self) -> list[School]:
        """The schools ticked, in the trust's order (by name); call after ``is_valid()``."""
        wanted = set(self.cleaned_data["schools"])
        return [s for s in self.trust_schools if s.urn in wanted]

    def audience(self) -> Audience:
        data = self.cleaned_data
        if data["who"] == "staff":
            return Audience(who="staff", roles=tuple(data.get("staff_roles") or ()))
        students = data.get("students") or "all"
        return Audience(
            who="parents",
            parents=data.get("parents") or "all",
            students=students,
            years=tuple(data.get("years") or ()) if students == "years" else (),
            groups=tuple(data.get("groups") or ()) if students == "groups" else (),
            roles=tuple(data.get("also_roles") or ()),
        )

    def draft(self) -> Draft:
        data = self.cleaned_data
        return Draft(
            mode=data["mode"],
            audience=self.audience(),
            subject=data.get("subject", ""),
            email_body=data.get("email_body", ""),
            sms_text=data.get("sms_text", ""),
            urgent=bool(data.get("urgent")),
            send_at=data.get("send_at"),
        )


class TrustSendForm(TrustComposeForm):
    """The preview's form: the draft again (hidden), its one-time token, and the confirmation a
    large send needs."""

    token = forms.CharField(max_length=64, widget=forms.HiddenInput)
    #: The total staff confirmed: a send that has grown since asks again.
    confirmed_large = forms.IntegerField(required=False, min_value=0)


class TrustCancelForm(AccessibleForm):
    trust_message = forms.IntegerField(widget=forms.HiddenInput)
    confirm = forms.BooleanField(
        label="Yes, cancel what has not been sent yet, at every school",
        error_messages={"required": "Tick the box to confirm you want to cancel this message."},
    )
