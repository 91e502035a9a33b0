"""Console pages for messages: the list, compose → preview → send, the unreachable list, each
message's deliveries (and their CSV), replies and blocked numbers, and templates.

Thin: the school and every record come from
:func:`~homelink.console.permissions.staff_view`, reads from
:mod:`homelink.messaging.selectors`, writes from :mod:`homelink.messaging.services`. Anyone on
the staff may read; every POST needs the sender role (administrators may do everything a sender
may).

A send is two requests: the preview, which writes nothing, and the send, which resolves the
audience again (the register may have changed meanwhile) and is refused without a one-time
token the preview issued, so a double click or a reposted form never sends twice.
"""

from __future__ import annotations

import csv
import datetime as dt
import secrets
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db import transaction
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone

from homelink.console.messages.forms import (
    CancelForm,
    ComposeForm,
    DeliveryFilterForm,
    SendForm,
    TemplateForm,
    initial_from,
)
from homelink.console.permissions import StaffRequest, get_template, staff_view
from homelink.messaging import merge, selectors
from homelink.messaging.audience import AudienceError, Copy
from homelink.messaging.models import Channel, Message, Template
from homelink.messaging.services import (
    NOTICE_NOT_CANCELLED,
    Draft,
    NeedsConfirmation,
    NotEnoughCredits,
    Preview,
    SendError,
    message_cancel,
    message_export_record,
    message_preview,
    message_send,
    template_delete,
    template_save,
)
from homelink.messaging.sms import sms_size
from homelink.staff.models import Role

LIST_PAGE_SIZE = 50
DELIVERY_PAGE_SIZE = 100
REPLIES_PAGE_SIZE = 100
#: How many rendered copies the preview shows.
EXAMPLES = 3
#: The preview's lists of who is left out start open up to this many people (a long list
#: starts closed, so the send button is not pages away), and of shared copies show this many.
LEFT_OUT_OPEN = 40
SHARED_SHOWN = 10
#: The session keeps the preview tokens it issued (token → the message it sent, or None).
SEND_TOKENS = "console_send_tokens"
MAX_TOKENS = 20
#: Where a service's error about a draft shows on the compose form (None: at the top).
ERROR_FIELDS = {"send_at": "send_date", "audience": None}


def _context(request: StaffRequest, **extra: Any) -> dict[str, Any]:
    return {
        "school": request.school,
        "membership": request.membership,
        "can_send": request.membership.can(Role.SENDER),
        **extra,
    }


def _show_error(form: ComposeForm, error: ValidationError) -> None:
    """A service's refusal, against the fields it names."""
    if not hasattr(error, "error_dict"):
        for message in error.messages:
            form.add_error(None, message)
        return
    for name, errors in error.error_dict.items():
        target = ERROR_FIELDS.get(name, name if name in form.fields else None)
        for item in errors:
            for message in item.messages:
                form.add_error(target, message)


# --- the list -------------------------------------------------------------------------------------


@staff_view(post_role=Role.SENDER)
def messages_list(request: StaffRequest) -> HttpResponse:
    page = Paginator(selectors.messages_list(request.school), LIST_PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    progress = selectors.progress_of(m.pk for m in page)
    now = timezone.now()
    rows = [(m, progress[m.pk], selectors.message_state(m, progress[m.pk], now)) for m in page]
    return render(request, "console/messages.html", _context(request, page=page, rows=rows))


# --- compose, preview, send ----------------------------------------------------------------------


def _compose_page(
    request: StaffRequest, form: ComposeForm, *, status: int = 200, **extra: Any
) -> HttpResponse:
    return render(
        request,
        "console/messages_compose.html",
        _context(
            request,
            form=form,
            templates=list(selectors.school_templates(request.school)),
            merge_fields=merge.FIELDS,
            **extra,
        ),
        status=status,
    )


def _template_initial(request: StaffRequest) -> tuple[dict[str, Any], Template | None]:
    raw = request.GET.get("template", "")
    if not raw:
        return {}, None
    if not raw.isdigit():
        raise Http404("no such template")
    template = get_template(request.school, int(raw))
    initial = {
        "subject": template.subject,
        "email_body": template.email_body,
        "sms_text": template.sms_text,
    }
    return initial, template


@staff_view(post_role=Role.SENDER, methods=("GET", "HEAD", "POST"))
def message_new(request: StaffRequest) -> HttpResponse:
    """The compose page. A POST is a search for students or people, a return from the preview
    to change the message (both shown again as typed), or a preview."""
    school = request.school
    if request.method != "POST":
        initial, template = _template_initial(request)
        form = ComposeForm(initial=initial, school=school)
        return _compose_page(request, form, template=template)
    action = request.POST.get("action", "preview")
    if action in ("find", "edit"):
        found_students = found_people = None
        if action == "find":
            found_students = selectors.student_search(school, request.POST.get("student_q", ""))
            found_people = selectors.people_search(school, request.POST.get("person_q", ""))
        form = ComposeForm(
            initial=initial_from(ComposeForm, request.POST),
            school=school,
            found_students=found_students,
            found_people=found_people,
        )
        return _compose_page(
            request,
            form,
            searched=action == "find",
            found_students=found_students,
            found_people=found_people,
        )
    form = ComposeForm(request.POST, school=school)
    if not form.is_valid():
        return _compose_page(request, form, status=400)
    try:
        draft = form.draft()
        preview = message_preview(school=school, draft=draft)
    except AudienceError as error:
        form.add_error(None, str(error))
        return _compose_page(request, form, status=400)
    except SendError as error:
        _show_error(form, error)
        return _compose_page(request, form, status=400)
    return _preview_page(request, form, draft, preview)


def _issue_token(request: StaffRequest) -> str:
    token = secrets.token_urlsafe(16)
    tokens: dict[str, int | None] = dict(request.session.get(SEND_TOKENS) or {})
    tokens[token] = None
    # Only the newest few: a preview left open for days can simply be previewed again.
    request.session[SEND_TOKENS] = dict(list(tokens.items())[-MAX_TOKENS:])
    return token


@dataclass(frozen=True)
class Example:
    copy: Copy
    sms: str
    sms_parts: int
    subject: str
    email_body: str


def _examples(draft: Draft, preview: Preview, request: StaffRequest) -> list[Example]:
    school = request.school
    examples = []
    for copy in preview.resolved.copies[:EXAMPLES]:
        fields = {"name": copy.name, "children": copy.children, "school": school.name}
        sms = merge.render(draft.sms_text, **fields) if copy.channel == Channel.SMS else ""
        examples.append(
            Example(
                copy=copy,
                sms=sms,
                sms_parts=sms_size(sms).parts if sms else 0,
                subject=merge.render(draft.subject, **fields)
                if copy.channel == Channel.EMAIL
                else "",
                email_body=merge.render(draft.email_body, **fields)
                if copy.channel == Channel.EMAIL
                else "",
            )
        )
    return examples


def marked(text: str, forcing: tuple[str, ...]) -> list[tuple[str, bool]]:
    """The text in runs, each flagged when its characters force UCS-2 (shown in ``<mark>``)."""
    runs: list[tuple[str, bool]] = []
    for char in text:
        forced = char in forcing
        if runs and runs[-1][1] == forced:
            runs[-1] = (runs[-1][0] + char, forced)
        else:
            runs.append((char, forced))
    return runs


def _character_name(char: str) -> str:
    name = unicodedata.name(char, "")
    code = f"U+{ord(char):04X}"
    return f"{code} {name.lower()}" if name else code


def _preview_page(
    request: StaffRequest,
    form: ComposeForm,
    draft: Draft,
    preview: Preview,
    *,
    problem: str = "",
    status: int = 200,
) -> HttpResponse:
    size = preview.text_size
    return render(
        request,
        "console/messages_preview.html",
        _context(
            request,
            form=form,
            # The draft travels to the send as the compose form's own fields, checked again.
            hidden_fields=[form[name] for name in ComposeForm.base_fields],
            draft=draft,
            preview=preview,
            token=_issue_token(request),
            problem=problem,
            mode_label=Message.Mode(draft.mode).label,
            audience_label=draft.audience.label(),
            sms_runs=marked(draft.sms_text, size.ucs2_chars),
            forcing=[(c, _character_name(c)) for c in size.ucs2_chars],
            examples=_examples(draft, preview, request),
            unreachable=len(preview.resolved.unreachable),
            unreachable_query=form.audience_query(),
            # Who the audience names but no copy reaches, by reason; and who shares a copy.
            left_out=preview.resolved.left_out_groups(),
            left_out_open=len(preview.resolved.left_out) <= LEFT_OUT_OPEN,
            shared=preview.resolved.shared[:SHARED_SHOWN],
            shared_more=max(len(preview.resolved.shared) - SHARED_SHOWN, 0),
            credits_after=preview.credits_available - preview.credits - preview.notice_credits,
        ),
        status=status,
    )


@dataclass(frozen=True)
class _Outcome:
    kind: str  # "sent", "already", "expired", "preview", "compose"
    message_id: int | None = None
    message: Message | None = None
    error: SendError | None = None


def _send_once(request: StaffRequest, form: SendForm, draft: Draft) -> _Outcome:
    """Send the draft unless its token was used already; the token is marked in the same
    transaction as the message is queued, so exactly one of two racing posts sends."""
    token = form.cleaned_data["token"]
    with transaction.atomic():
        # One staff member's sends queue behind each other here (PostgreSQL; SQLite's
        # transactions are serial anyway), so the session read next is the last one saved.
        # The account's row, not the membership's: a trust's staff hold an unsaved one (pk None).
        user_id = request.user.pk
        assert user_id is not None  # staff_view let only a signed-in user through
        get_user_model().objects.select_for_update().filter(pk=user_id).exists()
        tokens: dict[str, int | None] = dict(
            request.session.load().get(SEND_TOKENS) or request.session.get(SEND_TOKENS) or {}
        )
        if token not in tokens:
            return _Outcome("expired")
        if tokens[token] is not None:
            return _Outcome("already", message_id=tokens[token])
        try:
            message = message_send(
                school=request.school,
                draft=draft,
                actor=request.user,
                confirmed_up_to=form.cleaned_data["confirmed_large"],
            )
        except (NeedsConfirmation, NotEnoughCredits) as error:
            return _Outcome("preview", error=error)
        except SendError as error:
            return _Outcome("compose", error=error)
        tokens[token] = message.pk
        request.session[SEND_TOKENS] = tokens
        request.session.save()
    return _Outcome("sent", message_id=message.pk, message=message)


def _sent_notice(message: Message) -> str:
    total = message.sms_count + message.email_count
    parts = []
    if message.email_count:
        parts.append(f"{message.email_count:,} email{'s' if message.email_count != 1 else ''}")
    if message.sms_count:
        parts.append(f"{message.sms_count:,} SMS")
    what = f"{total:,} message{'s' if total != 1 else ''} ({' and '.join(parts)})"
    if message.scheduled:
        when = timezone.localtime(message.send_at).strftime("%-d %b %Y at %H:%M")
        return f"Scheduled: {what} will be sent on {when}."
    return f"Sending: {what} queued. This page shows how delivery goes."


@staff_view(post_role=Role.SENDER, methods=("POST",))
def message_send_view(request: StaffRequest) -> HttpResponse:
    """Send (or schedule) what the preview showed, once."""
    school = request.school
    form = SendForm(request.POST, school=school)
    if not form.is_valid():
        return _compose_page(request, form, status=400)
    try:
        draft = form.draft()
    except AudienceError as error:
        form.add_error(None, str(error))
        return _compose_page(request, form, status=400)
    outcome = _send_once(request, form, draft)
    if outcome.message is not None:
        messages.success(request, _sent_notice(outcome.message))
        return redirect("console:message", urn=school.urn, message_id=outcome.message.pk)
    if outcome.kind == "already" and outcome.message_id is not None:
        messages.info(
            request,
            "This message was already sent: the form was submitted again, and nothing more "
            "was sent. Here is the message.",
        )
        return redirect("console:message", urn=school.urn, message_id=outcome.message_id)
    if outcome.kind == "compose" and outcome.error is not None:
        _show_error(form, outcome.error)
        return _compose_page(request, form, status=400)
    # "preview" (a refusal the preview page explains) or "expired": preview it again, fresh.
    try:
        preview = message_preview(school=school, draft=draft)
    except SendError as error:
        _show_error(form, error)
        return _compose_page(request, form, status=400)
    if outcome.error is not None:
        problem = " ".join(outcome.error.messages)
    else:
        problem = "This preview is too old to send: check it again, then send."
    return _preview_page(request, form, draft, preview, problem=problem, status=400)


# --- the unreachable list ------------------------------------------------------------------------


@staff_view(post_role=Role.SENDER, methods=("GET", "HEAD", "POST"))
def draft_unreachable(request: StaffRequest) -> HttpResponse:
    """The printable list of who a draft would not reach, from the draft's audience."""
    data = request.POST if request.method == "POST" else request.GET
    form = ComposeForm(data or None, school=request.school)
    if not form.is_bound:
        # Nothing asked: the page says where the list comes from.
        return render(
            request, "console/messages_unreachable.html", _context(request, form=form, rows=None)
        )
    resolved = None
    if form.is_valid():
        try:
            resolved = selectors.draft_unreachable(
                request.school, form.audience(), form.cleaned_data["mode"]
            )
        except AudienceError as error:
            form.add_error(None, str(error))
    if resolved is None:
        return render(
            request,
            "console/messages_unreachable.html",
            _context(request, form=form, rows=None),
            status=400,
        )
    return render(
        request,
        "console/messages_unreachable.html",
        _context(
            request,
            form=form,
            rows=resolved.unreachable,
            students=resolved.students,
            audience_label=form.audience().label(),
            mode_label=Message.Mode(form.cleaned_data["mode"]).label,
            now=timezone.now(),
        ),
    )


@staff_view(post_role=Role.SENDER)
def message_unreachable(request: StaffRequest, message: Message) -> HttpResponse:
    resolved = selectors.message_unreachable(message)
    return render(
        request,
        "console/messages_unreachable.html",
        _context(
            request,
            message=message,
            rows=resolved.unreachable,
            students=resolved.students,
            audience_label=message.audience_label,
            mode_label=message.get_mode_display(),
            now=timezone.now(),
        ),
    )


# --- one message ---------------------------------------------------------------------------------


def _message_page(
    request: StaffRequest,
    message: Message,
    *,
    cancel_form: CancelForm | None = None,
    status: int = 200,
) -> HttpResponse:
    filters = DeliveryFilterForm(request.GET or None)
    progress_key = filters.cleaned_data["status"] if filters.is_valid() else ""
    progress = selectors.message_progress(message)
    page = Paginator(
        selectors.message_deliveries(message, progress=progress_key), DELIVERY_PAGE_SIZE
    ).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    replies = selectors.replies_with_senders(request.school, selectors.message_replies(message))
    can_cancel = message.status != Message.Status.CANCELLED and progress.cancellable > 0
    # The privacy notice goes first and cannot be cancelled: the page says why, not a button.
    cannot_cancel = (
        NOTICE_NOT_CANCELLED if can_cancel and message.kind == Message.Kind.NOTICE else ""
    )
    can_cancel = can_cancel and not cannot_cancel
    return render(
        request,
        "console/messages_detail.html",
        _context(
            request,
            message=message,
            progress=progress,
            state=selectors.message_state(message, progress, timezone.now()),
            filters=filters,
            page=page,
            query=query.urlencode(),
            replies=replies,
            can_cancel=can_cancel,
            cannot_cancel=cannot_cancel,
            cancel_form=cancel_form or CancelForm(),
            sms_size=sms_size(message.sms_text) if message.sms_text else None,
        ),
        status=status,
    )


@staff_view(post_role=Role.SENDER)
def message_detail(request: StaffRequest, message: Message) -> HttpResponse:
    return _message_page(request, message)


@staff_view(post_role=Role.SENDER, methods=("POST",))
def message_cancel_view(request: StaffRequest, message: Message) -> HttpResponse:
    form = CancelForm(request.POST)
    if not form.is_valid():
        return _message_page(request, message, cancel_form=form, status=400)
    try:
        cancelled = message_cancel(message=message, actor=request.user)
    except SendError as error:
        for text in error.messages:
            messages.error(request, text)
    else:
        refunded = message.credits_refunded
        notice = f"Cancelled: {cancelled:,} message{'s' if cancelled != 1 else ''} will not be sent"
        if refunded:
            notice += f", and {refunded:,} SMS credit{'s' if refunded != 1 else ''} went back"
        messages.success(request, notice + ".")
    return redirect("console:message", urn=request.school.urn, message_id=message.pk)


class _Echo:
    """A file that hands back what is written to it: csv.writer's rows as strings to stream."""

    def write(self, value: str) -> str:
        return value


def _csv_cell(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return timezone.localtime(value).isoformat(timespec="seconds")
    if value is None:
        return ""
    # A spreadsheet runs a cell that starts like a formula; a name or a number from the
    # register must stay text (a leading ' is how spreadsheets mark text).
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


@staff_view(post_role=Role.SENDER)
def message_csv(request: StaffRequest, message: Message) -> StreamingHttpResponse:
    """Every copy of the message as CSV, streamed; the download is recorded in the audit trail
    as an export of personal data."""
    rows = selectors.message_deliveries(message).count()
    if request.method == "GET":  # a HEAD takes no data away
        message_export_record(message=message, rows=rows, actor=request.user)
    writer = csv.writer(_Echo())

    def lines() -> Iterator[str]:
        # The byte-order mark tells spreadsheets the file is UTF-8 (names with accents).
        yield "\ufeff" + writer.writerow(selectors.CSV_HEADER)
        for row in selectors.message_csv_rows(message):
            yield writer.writerow([_csv_cell(v) for v in row])

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    filename = f"message-{request.school.urn}-{message.pk}-deliveries.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response


# --- replies -------------------------------------------------------------------------------------


@staff_view(post_role=Role.SENDER)
def replies(request: StaffRequest) -> HttpResponse:
    page = Paginator(selectors.school_inbound(request.school), REPLIES_PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    return render(
        request,
        "console/messages_replies.html",
        _context(
            request,
            page=page,
            rows=selectors.replies_with_senders(request.school, list(page)),
            blocks=selectors.school_blocks(request.school),
        ),
    )


# --- templates -----------------------------------------------------------------------------------


@staff_view(post_role=Role.SENDER)
def templates(request: StaffRequest) -> HttpResponse:
    rows = [
        (t, sms_size(t.sms_text) if t.sms_text else None)
        for t in selectors.school_templates(request.school)
    ]
    return render(
        request,
        "console/messages_templates.html",
        _context(request, rows=rows, merge_fields=merge.FIELDS),
    )


def _template_page(
    request: StaffRequest, form: TemplateForm, template: Template | None, *, status: int = 200
) -> HttpResponse:
    return render(
        request,
        "console/messages_template_form.html",
        _context(request, form=form, template=template),
        status=status,
    )


def _template_save(request: StaffRequest, template: Template | None) -> HttpResponse:
    form = TemplateForm(request.POST)
    if form.is_valid():
        try:
            saved = template_save(
                school=request.school,
                template=template,
                actor=request.user,
                **form.cleaned_data,
            )
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, f"The template “{saved.name}” is saved.")
            return redirect("console:templates", urn=request.school.urn)
    return _template_page(request, form, template, status=400)


@staff_view(post_role=Role.SENDER, methods=("GET", "HEAD", "POST"))
def template_new(request: StaffRequest) -> HttpResponse:
    if request.method == "POST":
        return _template_save(request, None)
    return _template_page(request, TemplateForm(), None)


@staff_view(post_role=Role.SENDER, methods=("GET", "HEAD", "POST"))
def template_edit(request: StaffRequest, template: Template) -> HttpResponse:
    if request.method == "POST":
        return _template_save(request, template)
    form = TemplateForm(
        initial={
            "name": template.name,
            "subject": template.subject,
            "email_body": template.email_body,
            "sms_text": template.sms_text,
        }
    )
    return _template_page(request, form, template)


@staff_view(post_role=Role.SENDER, methods=("POST",))
def template_delete_view(request: StaffRequest, template: Template) -> HttpResponse:
    name = template.name
    template_delete(template=template, actor=request.user)
    messages.success(request, f"The template “{name}” is deleted.")
    return redirect("console:templates", urn=request.school.urn)
