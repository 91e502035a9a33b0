"""A trust's messages: the trust-wide sends with each school's delivery progress, compose →
preview (school by school) → send, and cancelling what has not gone yet.

Thin: the trust comes from :func:`~homelink.console.permissions.trust_view` (404 for anyone not
on the trust's staff), reads from :mod:`homelink.messaging.selectors`, writes from
:mod:`homelink.trusts.sending`. Any of the trust's staff may read; every POST needs the trust
sender role (administrators may do everything a sender may). A send is two requests, as at a
school: the preview writes nothing, and the send resolves every school's audience again and is
refused without the one-time token the preview issued, so a double click sends once.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db import transaction
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone

from homelink.console.messages.forms import initial_from
from homelink.console.messages.views import marked
from homelink.console.permissions import TrustRequest, trust_view
from homelink.console.trust_messages.forms import (
    TrustCancelForm,
    TrustComposeForm,
    TrustSendForm,
)
from homelink.messaging import merge, selectors
from homelink.messaging.audience import AudienceError
from homelink.messaging.models import Channel, Message, TrustMessage
from homelink.messaging.services import NeedsConfirmation, SendError
from homelink.messaging.sms import sms_size
from homelink.schools.models import School
from homelink.staff.models import Role
from homelink.trusts.models import TrustMembership
from homelink.trusts.selectors import role_at_least, trust_schools
from homelink.trusts.sending import (
    NotEnoughTrustCredits,
    TrustCopy,
    TrustPreview,
    trust_message_cancel,
    trust_message_preview,
    trust_message_send,
)

LIST_PAGE_SIZE = 20
#: How many rendered copies the preview shows, and of those shared by several schools.
EXAMPLES = 3
#: The preview lists at most this many people left out per school and reason.
LEFT_OUT_SHOWN = 50
SEND_TOKENS = "console_trust_send_tokens"
MAX_TOKENS = 20
#: Where a service's error about a draft shows on the form (None: at the top).
ERROR_FIELDS = {"send_at": "send_date", "audience": None}


def _context(request: TrustRequest, **extra: Any) -> dict[str, Any]:
    return {
        "trust": request.trust,
        "membership": request.trust_membership,
        "can_send": role_at_least(request.trust_membership.role, Role.SENDER),
        "merge_fields": merge.FIELDS,
        **extra,
    }


def _schools(request: TrustRequest) -> list[School]:
    return list(trust_schools(request.trust))


def _show_error(form: TrustComposeForm, error: ValidationError) -> None:
    if not hasattr(error, "error_dict"):
        for text in error.messages:
            form.add_error(None, text)
        return
    for name, errors in error.error_dict.items():
        target = ERROR_FIELDS.get(name, name if name in form.fields else None)
        for item in errors:
            for text in item.messages:
                form.add_error(target, text)


# --- the list -------------------------------------------------------------------------------------


@trust_view(post_role=Role.SENDER)
def trust_messages(request: TrustRequest) -> HttpResponse:
    page = Paginator(selectors.trust_messages_list(request.trust), LIST_PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    progress = selectors.trust_progress(page, timezone.now())
    rows = [
        (record, progress[record.pk], any(s.cancellable for s in progress[record.pk]))
        for record in page
    ]
    return render(
        request,
        "console/trust_messages.html",
        _context(request, page=page, rows=rows, cancel_form=TrustCancelForm()),
    )


# --- compose, preview, send ----------------------------------------------------------------------


def _compose_page(
    request: TrustRequest, form: TrustComposeForm, *, status: int = 200
) -> HttpResponse:
    return render(
        request, "console/trust_message_compose.html", _context(request, form=form), status=status
    )


@trust_view(post_role=Role.SENDER, methods=("GET", "HEAD", "POST"))
def trust_message_new(request: TrustRequest) -> HttpResponse:
    """The compose page; a POST is a preview, or a return from the preview to change it."""
    schools = _schools(request)
    if request.method != "POST":
        return _compose_page(request, TrustComposeForm(schools=schools))
    form = TrustComposeForm(request.POST, schools=schools)
    if request.POST.get("action") == "edit":
        # Shown again as typed, without judging it.
        form = TrustComposeForm(
            initial=initial_from(TrustComposeForm, request.POST), schools=schools
        )
        return _compose_page(request, form)
    if not form.is_valid():
        return _compose_page(request, form, status=400)
    try:
        draft = form.draft()
        preview = trust_message_preview(trust=request.trust, schools=form.chosen(), draft=draft)
    except AudienceError as error:
        form.add_error(None, str(error))
        return _compose_page(request, form, status=400)
    except SendError as error:
        _show_error(form, error)
        return _compose_page(request, form, status=400)
    return _preview_page(request, form, preview)


def _issue_token(request: TrustRequest) -> str:
    token = secrets.token_urlsafe(16)
    tokens: dict[str, int | None] = dict(request.session.get(SEND_TOKENS) or {})
    tokens[token] = None
    request.session[SEND_TOKENS] = dict(list(tokens.items())[-MAX_TOKENS:])
    return token


@dataclass(frozen=True)
class Example:
    copy: TrustCopy
    sms: str
    sms_parts: int
    subject: str
    email_body: str


def _examples(preview: TrustPreview, request_draft: Any) -> list[Example]:
    """A few copies as they will be sent: those shared by several schools first (what
    ``{school}`` says in them is the thing to check)."""
    ordered = sorted(preview.copies, key=lambda c: not c.shared)[:EXAMPLES]
    found = []
    for copy in ordered:
        fields = {"name": copy.name, "children": copy.children, "school": copy.school_names}
        sms = merge.render(request_draft.sms_text, **fields) if copy.channel == Channel.SMS else ""
        email = copy.channel == Channel.EMAIL
        found.append(
            Example(
                copy=copy,
                sms=sms,
                sms_parts=sms_size(sms).parts if sms else 0,
                subject=merge.render(request_draft.subject, **fields) if email else "",
                email_body=merge.render(request_draft.email_body, **fields) if email else "",
            )
        )
    return found


def _preview_page(
    request: TrustRequest,
    form: TrustComposeForm,
    preview: TrustPreview,
    *,
    problem: str = "",
    status: int = 200,
) -> HttpResponse:
    draft = form.draft()
    size = preview.text_size
    pool = preview.pool
    return render(
        request,
        "console/trust_message_preview.html",
        _context(
            request,
            form=form,
            hidden_fields=[form[name] for name in TrustComposeForm.base_fields],
            draft=draft,
            preview=preview,
            token=_issue_token(request),
            problem=problem,
            mode_label=Message.Mode(draft.mode).label,
            audience_label=draft.audience.label(),
            sms_runs=marked(draft.sms_text, size.ucs2_chars),
            examples=_examples(preview, draft),
            shortfalls=preview.shortfalls(),
            over=preview.over_threshold(),
            pool_after=pool - preview.credits - preview.notice_credits
            if pool is not None
            else None,
            left_out_shown=LEFT_OUT_SHOWN,
        ),
        status=status,
    )


@dataclass(frozen=True)
class _Outcome:
    kind: str  # "sent", "already", "expired", "preview", "compose"
    record: TrustMessage | None = None
    error: SendError | None = None


def _send_once(request: TrustRequest, form: TrustSendForm) -> _Outcome:
    """Send unless the token was used already; the token is marked in the transaction that
    queues the send, so exactly one of two racing posts sends."""
    token = form.cleaned_data["token"]
    with transaction.atomic():
        # One person's sends queue behind each other here, so the session read next is the
        # last one saved.
        TrustMembership.objects.select_for_update().filter(pk=request.trust_membership.pk).exists()
        tokens: dict[str, int | None] = dict(
            request.session.load().get(SEND_TOKENS) or request.session.get(SEND_TOKENS) or {}
        )
        if token not in tokens:
            return _Outcome("expired")
        if tokens[token] is not None:
            return _Outcome("already")
        try:
            record = trust_message_send(
                trust=request.trust,
                schools=form.chosen(),
                draft=form.draft(),
                actor=request.user,
                confirmed_up_to=form.cleaned_data["confirmed_large"],
            )
        except (NeedsConfirmation, NotEnoughTrustCredits) as error:
            return _Outcome("preview", error=error)
        except SendError as error:
            return _Outcome("compose", error=error)
        tokens[token] = record.pk
        request.session[SEND_TOKENS] = tokens
        request.session.save()
    return _Outcome("sent", record=record)


def _sent_notice(record: TrustMessage, schools: int) -> str:
    what = f"{record.total:,} message{'s' if record.total != 1 else ''}"
    where = f"{schools} school{'s' if schools != 1 else ''}"
    if record.scheduled:
        when = timezone.localtime(record.send_at).strftime("%-d %b %Y at %H:%M")
        return f"Scheduled: {what} to families of {where} will be sent on {when}."
    return f"Sending: {what} to families of {where} queued. This page shows how delivery goes."


@trust_view(post_role=Role.SENDER, methods=("POST",))
def trust_message_send_view(request: TrustRequest) -> HttpResponse:
    """Send (or schedule) what the preview showed, once."""
    schools = _schools(request)
    form = TrustSendForm(request.POST, schools=schools)
    if not form.is_valid():
        return _compose_page(request, form, status=400)
    try:
        form.draft()
    except AudienceError as error:
        form.add_error(None, str(error))
        return _compose_page(request, form, status=400)
    outcome = _send_once(request, form)
    if outcome.record is not None:
        messages.success(request, _sent_notice(outcome.record, len(outcome.record.summary)))
        return redirect("console:trust_messages", trust_id=request.trust.pk)
    if outcome.kind == "already":
        messages.info(
            request,
            "This message was already sent: the form was submitted again, and nothing more "
            "was sent.",
        )
        return redirect("console:trust_messages", trust_id=request.trust.pk)
    if outcome.kind == "compose" and outcome.error is not None:
        _show_error(form, outcome.error)
        return _compose_page(request, form, status=400)
    try:
        preview = trust_message_preview(
            trust=request.trust, schools=form.chosen(), draft=form.draft()
        )
    except SendError as error:
        _show_error(form, error)
        return _compose_page(request, form, status=400)
    problem = (
        " ".join(outcome.error.messages)
        if outcome.error is not None
        else "This preview is too old to send: check it again, then send."
    )
    return _preview_page(request, form, preview, problem=problem, status=400)


# --- cancel --------------------------------------------------------------------------------------


@trust_view(post_role=Role.SENDER, methods=("POST",))
def trust_message_cancel_view(request: TrustRequest) -> HttpResponse:
    form = TrustCancelForm(request.POST)
    if not form.is_valid():
        for text in form.errors.get("confirm") or form.errors.get("trust_message") or []:
            messages.error(request, str(text))
        return redirect("console:trust_messages", trust_id=request.trust.pk)
    # Named in the form, found within the trust only: another trust's id is 404.
    record = TrustMessage.objects.filter(
        trust=request.trust, pk=form.cleaned_data["trust_message"]
    ).first()
    if record is None:
        raise Http404("no such message")
    try:
        cancelled = trust_message_cancel(record=record, actor=request.user)
    except SendError as error:
        for text in error.messages:
            messages.error(request, text)
    else:
        messages.success(
            request,
            f"Cancelled: {cancelled:,} message{'s' if cancelled != 1 else ''} will not be sent, "
            "and their SMS credits went back.",
        )
    return redirect("console:trust_messages", trust_id=request.trust.pk)
