"""A service's refusal (a ``ValidationError``) shown to staff: as a message above the page, or
against a form. Each of its messages becomes a sentence."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.forms import Form
from django.http import HttpRequest


def sentence(text: str) -> str:
    text = text.strip()
    return (text[:1].upper() + text[1:]).rstrip(".") + "." if text else text


def refused(request: HttpRequest, error: ValidationError) -> None:
    for message in error.messages:
        messages.error(request, sentence(message))


def form_refused(form: Form, error: ValidationError) -> None:
    for message in error.messages:
        form.add_error(None, sentence(message))
