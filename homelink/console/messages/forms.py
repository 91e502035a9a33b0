"""Forms for the console's message pages: what staff write and to whom, and templates.

The compose form checks what a person can correct on the form itself (the audience's choices,
the scheduled time); whether the message can be sent as written (the texts, the merge fields,
the credits) is :func:`homelink.messaging.services.message_preview`'s to say, and the view shows
its answer against the same fields.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from typing import Any, cast

from django import forms
from django.http import QueryDict
from django.utils import timezone

from homelink.console.forms import AccessibleForm
from homelink.messaging import selectors
from homelink.messaging.audience import Audience
from homelink.messaging.models import Message
from homelink.messaging.services import MAX_SMS_LENGTH, SCHEDULE_SLACK, Draft
from homelink.register.models import Member
from homelink.register.years import year_label
from homelink.schools.models import School

WHO_CHOICES = [
    ("parents", "Parents and carers of students"),
    ("staff", "Staff and other adult members, by role"),
    ("individuals", "Chosen people"),
]
PARENTS_CHOICES = [
    ("all", "All their linked parents and carers"),
    ("prime", "Prime parents only"),
    ("responsibility", "Only those with parental responsibility"),
]
STUDENTS_CHOICES = [
    ("all", "All current students"),
    ("years", "Chosen year groups"),
    ("groups", "Chosen registration groups"),
    ("chosen", "Chosen students"),
]
STAFF_ROLES = [(r.value, r.label.capitalize()) for r in Member.Role if r != Member.Role.STUDENT]
MODE_CHOICES = [
    (Message.Mode.EMAIL_ELSE_SMS, "Email, else SMS (cheapest: SMS only to those without email)"),
    (Message.Mode.EMAIL, "Email only"),
    (Message.Mode.SMS, "SMS only"),
    (Message.Mode.BOTH, "Both email and SMS"),
]
_MIS_ID_SPLIT = re.compile(r"[\s,;]+")
#: At most this many MIS ids in one paste: a whole year group is better chosen as a year.
MAX_PASTED_IDS = 500


def _radio(label: str, choices: Sequence[tuple[str, str]], initial: str, **kwargs: Any) -> Any:
    return forms.ChoiceField(
        label=label, choices=choices, initial=initial, widget=forms.RadioSelect, **kwargs
    )


def _checkboxes(label: str, **kwargs: Any) -> forms.MultipleChoiceField:
    return forms.MultipleChoiceField(
        label=label, required=False, widget=forms.CheckboxSelectMultiple, **kwargs
    )


def _subject_field() -> forms.CharField:
    return forms.CharField(label="Email subject", required=False, max_length=200)


def _email_body_field() -> forms.CharField:
    return forms.CharField(
        label="Email text", required=False, max_length=50_000, widget=forms.Textarea
    )


def _sms_text_field(**kwargs: Any) -> forms.CharField:
    return forms.CharField(
        label="SMS text",
        required=False,
        max_length=MAX_SMS_LENGTH,
        widget=forms.Textarea(attrs={"rows": 4}),
        **kwargs,
    )


def _student_label(student: Member) -> str:
    where = ", ".join(
        p for p in (f"year {student.year}" if student.year else "", student.reg_group) if p
    )
    name = f"{student.surname}, {student.forename}"
    return (
        f"{name} ({where}; MIS id {student.mis_id})"
        if where
        else f"{name} (MIS id {student.mis_id})"
    )


class ComposeForm(AccessibleForm):
    """A message and its audience. Bound from the compose page, and again from the preview's
    hidden fields when it is sent (everything is checked again then)."""

    mode = _radio("Send by", MODE_CHOICES, Message.Mode.EMAIL_ELSE_SMS)
    who = _radio("Send to", WHO_CHOICES, "parents")
    parents = _radio("Which parents and carers", PARENTS_CHOICES, "all", required=False)
    students = _radio("Of which students", STUDENTS_CHOICES, "all", required=False)
    years = _checkboxes("Year groups")
    groups = _checkboxes("Registration groups")
    student_q = forms.CharField(
        label="Find students by name or MIS id", required=False, max_length=100
    )
    student_mis_ids = forms.CharField(
        label="Or paste MIS ids",
        required=False,
        max_length=20_000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="UPNs or other MIS ids, one per line or separated by commas or spaces.",
    )
    student_ids = forms.TypedMultipleChoiceField(
        label="Chosen students",
        coerce=int,
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    also_roles = _checkboxes(
        "Also send to staff with these roles",
        choices=STAFF_ROLES,
        help_text="Optional: for example teachers, to copy them in.",
    )
    staff_roles = _checkboxes(
        "Staff roles",
        choices=STAFF_ROLES,
        help_text="Choose none to send to every current adult member.",
    )
    person_q = forms.CharField(label="Find people by name or email", required=False, max_length=100)
    people = _checkboxes("Chosen people")
    subject = _subject_field()
    email_body = _email_body_field()
    sms_text = _sms_text_field(
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

    #: The fields that say whom a draft reaches, on which channel: the unreachable list's query.
    AUDIENCE_FIELDS = (
        "mode",
        "who",
        "parents",
        "students",
        "years",
        "groups",
        "student_ids",
        "also_roles",
        "staff_roles",
        "people",
    )

    def __init__(
        self,
        *args: Any,
        school: School,
        found_students: list[Member] | None = None,
        found_people: list[selectors.PersonChoice] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.school = school
        years, groups = selectors.audience_choices(school)
        self._choices("years", [(y, year_label(y)) for y in years])
        self._choices("groups", [(g, g) for g in groups])
        # The students and people offered: those already chosen, then what a search found.
        chosen_ids = self._submitted("student_ids")
        chosen = selectors.students_by_id(school, [int(i) for i in chosen_ids if str(i).isdigit()])
        students = {s.pk: s for s in [*chosen, *(found_students or [])]}
        self._choices("student_ids", [(pk, _student_label(s)) for pk, s in students.items()])
        people = {
            p.key: p
            for p in [
                *selectors.people_by_key(school, [str(k) for k in self._submitted("people")]),
                *(found_people or []),
            ]
        }
        self._choices(
            "people",
            [(key, f"{p.name} ({p.note})" if p.note else p.name) for key, p in people.items()],
        )
        self.fields["mode"].error_messages["required"] = "Choose how to send the message."
        self.fields["who"].error_messages["required"] = "Choose who the message is for."
        self.fields["student_ids"].error_messages["invalid_choice"] = (
            "Choose students from the list (one of them is no longer a current student)."
        )
        self.fields["people"].error_messages["invalid_choice"] = "Choose people from the list."

    def _choices(self, name: str, choices: list[tuple[Any, str]]) -> None:
        cast(forms.ChoiceField, self.fields[name]).choices = choices

    def _submitted(self, name: str) -> list[Any]:
        """A multiple field's values as submitted, or as given initially."""
        if self.is_bound:
            data = self.data
            return (
                list(data.getlist(name)) if hasattr(data, "getlist") else list(data.get(name, []))
            )
        return list(self.initial.get(name) or [])

    @property
    def chosen_students(self) -> bool:
        return bool(cast(forms.ChoiceField, self.fields["student_ids"]).choices)

    def clean_student_mis_ids(self) -> list[str]:
        raw = self.cleaned_data.get("student_mis_ids", "")
        ids = list(dict.fromkeys(i for i in _MIS_ID_SPLIT.split(raw) if i))
        if len(ids) > MAX_PASTED_IDS:
            raise forms.ValidationError(
                f"Paste at most {MAX_PASTED_IDS} MIS ids at once, or choose year groups instead."
            )
        return ids

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data is None:  # pragma: no cover - Form.clean returns cleaned_data
            return {}
        self._clean_audience(data)
        self._clean_send_at(data)
        return data

    def _clean_audience(self, data: dict[str, Any]) -> None:
        who = data.get("who")
        if who == "parents":
            students = data.get("students") or "all"
            data["students"] = students
            data["parents"] = data.get("parents") or "all"
            if students == "years" and not data.get("years"):
                self.add_error("years", "Choose at least one year group.")
            if students == "groups" and not data.get("groups"):
                self.add_error("groups", "Choose at least one registration group.")
            if students == "chosen":
                pasted = data.get("student_mis_ids") or []
                found = selectors.students_by_mis_id(self.school, pasted)
                missing = [i for i in pasted if i not in found]
                if missing:
                    shown = ", ".join(missing[:10]) + (" …" if len(missing) > 10 else "")
                    self.add_error(
                        "student_mis_ids",
                        f"No current student has the MIS id{'s' if len(missing) > 1 else ''} "
                        f"{shown}.",
                    )
                ids = list(
                    dict.fromkeys(
                        [*(data.get("student_ids") or []), *(s.pk for s in found.values())]
                    )
                )
                data["student_ids"] = ids
                if not ids and "student_mis_ids" not in self.errors:
                    self.add_error(
                        "student_ids", "Choose at least one student: search, or paste MIS ids."
                    )
        elif who == "individuals" and not data.get("people"):
            self.add_error("people", "Choose at least one person: search by name or email.")

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

    def audience(self) -> Audience:
        """The audience chosen; call after ``is_valid()``. Raises AudienceError if it does not
        hold together (the form's own checks leave that to a tampered submission)."""
        data = self.cleaned_data
        who = data["who"]
        if who == "staff":
            return Audience(who="staff", roles=tuple(data.get("staff_roles") or ()))
        if who == "individuals":
            adult_ids, member_ids = selectors.split_person_keys(data.get("people") or [])
            return Audience(
                who="individuals", adult_ids=tuple(adult_ids), member_ids=tuple(member_ids)
            )
        students = data.get("students") or "all"
        return Audience(
            who="parents",
            parents=data.get("parents") or "all",
            students=students,
            years=tuple(data.get("years") or ()) if students == "years" else (),
            groups=tuple(data.get("groups") or ()) if students == "groups" else (),
            student_ids=tuple(data.get("student_ids") or ()) if students == "chosen" else (),
            roles=tuple(data.get("also_roles") or ()),
        )

    def draft(self) -> Draft:
        """The draft to preview or send; call after ``is_valid()``."""
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

    def audience_query(self) -> str:
        """The audience and channel as a query string, for the unreachable list's address."""
        query = QueryDict(mutable=True)
        data = self.cleaned_data
        for name in self.AUDIENCE_FIELDS:
            value = data.get(name)
            if isinstance(value, list | tuple):
                query.setlist(name, [str(v) for v in value])
            elif value:
                query[name] = str(value)
        return query.urlencode()


def initial_from(form_class: type[forms.Form], data: QueryDict) -> dict[str, Any]:
    """Submitted values as a form's initial values: the page shown again without judging it
    (after a search, or to change the message from its preview)."""
    initial: dict[str, Any] = {}
    for name, field in form_class.base_fields.items():
        if name not in data:
            continue
        if isinstance(field, forms.MultipleChoiceField):
            initial[name] = data.getlist(name)
            continue
        value = data.get(name)
        try:
            initial[name] = field.to_python(value)
        except forms.ValidationError:
            initial[name] = value
    return initial


class SendForm(ComposeForm):
    """The preview's form: the draft again (hidden), its one-time token, and the second
    confirmation a large send needs."""

    token = forms.CharField(max_length=64, widget=forms.HiddenInput)
    #: The count staff confirmed (the box's value): a send that has grown since asks again.
    confirmed_large = forms.IntegerField(required=False, min_value=0)


class CancelForm(AccessibleForm):
    confirm = forms.BooleanField(
        label="Yes, cancel what has not been sent yet",
        error_messages={"required": "Tick the box to confirm you want to cancel this message."},
    )


class DeliveryFilterForm(forms.Form):
    status = forms.ChoiceField(
        label="Show",
        required=False,
        choices=[("", "Everyone"), *((key, label) for key, label, _ in selectors.PROGRESS)],
    )


class TemplateForm(AccessibleForm):
    name = forms.CharField(label="Name", max_length=100)
    subject = _subject_field()
    email_body = _email_body_field()
    sms_text = _sms_text_field()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["name"].error_messages["required"] = "Give the template a name."
