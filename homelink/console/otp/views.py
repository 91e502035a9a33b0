"""The second factor's pages: set up an authenticator app, give a code once per session, remove
it. They are about the account, not a school, so they sit outside the school's URN. They serve
school staff and site operators (the admin sends operators here); anyone else signed in gets 404
(the pages do not exist for them)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST

from homelink.staff import otp


class TokenForm(forms.Form):
    token = forms.CharField(
        label="Code from your authenticator app",
        max_length=16,
        widget=forms.TextInput(
            attrs={
                "inputmode": "numeric",
                "autocomplete": "one-time-code",
                "pattern": "[0-9 ]*",
                "size": "8",
                "autofocus": True,
            }
        ),
    )

    def clean_token(self) -> str:
        token = "".join(self.cleaned_data["token"].split())
        if not otp.TOKEN_RE.match(token):
            raise ValidationError("Enter the 6 digits your authenticator app shows.")
        return token


def _refuse_others(request: HttpRequest) -> HttpResponse | None:
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    if not otp.may_use_second_factor(request.user):
        raise Http404("no such page")
    return None


def _context(request: HttpRequest, **extra: Any) -> dict[str, Any]:
    return {"next": otp.safe_next(request), "operator": otp.is_operator(request.user), **extra}


@never_cache
@require_http_methods(["GET", "HEAD"])
def index(request: HttpRequest) -> HttpResponse:
    """Whether the account has an authenticator, which schools require one, and removal."""
    refused = _refuse_others(request)
    if refused is not None:
        return refused
    required = otp.schools_requiring(request.user)
    return render(
        request,
        "console/otp_index.html",
        _context(
            request,
            device=otp.confirmed_device(request.user),
            required=required,
            verified=otp.session_verified(request),
            form=TokenForm(),
        ),
    )


@sensitive_post_parameters("token")
@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def setup(request: HttpRequest) -> HttpResponse:
    """Show a new secret (text, otpauth URI and QR code); confirm it with the first code. The
    secret is shown only while no device is confirmed: never again afterwards."""
    refused = _refuse_others(request)
    if refused is not None:
        return refused
    if otp.confirmed_device(request.user) is not None:
        # One authenticator per account: another could be added by someone with the password
        # alone, and would then pass the second factor.
        messages.info(request, "You already have an authenticator app set up.")
        return redirect("console_otp:index")
    if not otp.web_enrolment_allowed(request.user):
        return render(request, "console/otp_setup_on_server.html", _context(request), status=403)
    device = otp.pending_device(request.user)
    form = TokenForm(request.POST if request.method == "POST" else None)
    if form.is_bound and form.is_valid():
        if otp.device_confirm(request=request, device=device, token=form.cleaned_data["token"]):
            messages.success(
                request,
                "Your authenticator app is set up. The console will ask for a code from it "
                "each time you sign in.",
            )
            return otp.device_remember(request, redirect(otp.safe_next(request)))
        if otp.confirmed_device(request.user) is not None:
            # Confirmed meanwhile (another tab): the secret is no longer shown.
            return redirect("console_otp:index")
        form.add_error("token", otp.CODE_REFUSED)
    uri = otp.otpauth_uri(device)
    return render(
        request,
        "console/otp_setup.html",
        _context(
            request,
            form=form,
            secret=otp.secret_text(device),
            uri=uri,
            qr=otp.qr_svg(uri),
            required=otp.schools_requiring(request.user),
        ),
    )


@sensitive_post_parameters("token")
@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def verify(request: HttpRequest) -> HttpResponse:
    """Give a code from the authenticator app: once per session."""
    refused = _refuse_others(request)
    if refused is not None:
        return refused
    if otp.session_verified(request):
        return redirect(otp.safe_next(request))
    if otp.confirmed_device(request.user) is None:
        if otp.second_factor_required(request.user):
            return redirect(otp.with_next("console_otp:setup", otp.safe_next(request)))
        return redirect(otp.safe_next(request))
    form = TokenForm(request.POST if request.method == "POST" else None)
    if form.is_bound and form.is_valid():
        if otp.session_verify(request=request, token=form.cleaned_data["token"]):
            # This browser's later codes count only against the owner's own limit.
            return otp.device_remember(request, redirect(otp.safe_next(request)))
        form.add_error("token", otp.CODE_REFUSED)
    return render(request, "console/otp_verify.html", _context(request, form=form))


@sensitive_post_parameters("token")
@never_cache
@require_POST
def remove(request: HttpRequest) -> HttpResponse:
    """Remove the account's authenticator, with a code from it now (not when a school of the
    account requires a second factor)."""
    refused = _refuse_others(request)
    if refused is not None:
        return refused
    form = TokenForm(request.POST)
    if not form.is_valid():
        messages.error(request, otp.CODE_REFUSED)
        return redirect("console_otp:index")
    try:
        otp.device_remove(request=request, token=form.cleaned_data["token"])
    except ValidationError as error:
        for message in error.messages:
            messages.error(request, message)
    else:
        messages.success(
            request, "Your authenticator app is removed: the console will not ask for a code."
        )
    return redirect("console_otp:index")
