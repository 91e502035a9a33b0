"""The parent's pages. Thin: forms check input, services.py writes, selectors.py reads."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login as auth_login
from django.contrib.auth import logout as auth_logout
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse, reverse_lazy
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST

from homelink.accounts import forms, selectors, services
from homelink.accounts.limits import PASSWORD_RESET_PER_IP
from homelink.accounts.models import Parent
from homelink.messaging.selectors import PARENT_MESSAGES_LIMIT
from homelink.messaging.selectors import account_messages as messages_for_account
from homelink.mis.phones import for_display, normalise_mobile
from homelink.ratelimit import devices
from homelink.ratelimit.ip import client_ip
from homelink.registration.linking import CodeNotAccepted, LinkRefused
from homelink.registration.redeem import redeem_code
from homelink.staff.middleware import STAFF_KEY
from homelink.staff.models import StaffMembership
from homelink.trusts.models import TrustMembership

LOGIN_FAILED = "The email address or password is not right. Check them and try again."
MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"


def _user(request: HttpRequest) -> User:
    # login_required has run: the user is a real, saved User.
    assert isinstance(request.user, User)
    return request.user


def _parent(request: HttpRequest) -> Parent:
    user = _user(request)
    parent, _ = Parent.objects.get_or_create(user=user)
    # The request's own user: reading the parent's address then costs no query.
    parent.user = user
    return parent


def _next_url(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    # School staff sign in on the same page and go to their console (they may be parents too:
    # their account page is one link away). Only a session marked staff at login is asked, so
    # a parent's sign-in makes no membership query.
    user_id = request.user.pk
    if (
        user_id is not None
        and request.session.get(STAFF_KEY)
        and (
            StaffMembership.objects.filter(user_id=user_id).exists()
            or TrustMembership.objects.filter(user_id=user_id).exists()
        )
    ):
        return reverse("console:home")
    return reverse(settings.LOGIN_REDIRECT_URL)


# --- Sign-up, log-in, confirmation ---------------------------------------------------------------


@sensitive_post_parameters("password1", "password2")
@never_cache
@require_http_methods(["GET", "POST"])
def register(request: HttpRequest) -> HttpResponse:
    form = forms.RegisterForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            user = services.account_register(
                email=data["email"],
                forename=data["forename"],
                surname=data["surname"],
                password=data["password1"],
                ip=client_ip(request),
            )
        except services.EmailTaken as exc:
            form.add_error("email", exc.message)
        except services.AccountError as exc:
            form.add_error(None, exc.message)
        else:
            auth_login(request, user, backend=MODEL_BACKEND)
            messages.success(
                request,
                "Your account is ready. We have sent you an email: follow the link in it to "
                "confirm your email address.",
            )
            response = redirect("account")
            # Signed in with the password just chosen: this browser is the account's own.
            devices.remember(request, response, user.get_username())
            return response
    return render(request, "accounts/register.html", {"form": form})


@sensitive_post_parameters("password")
@never_cache
@require_http_methods(["GET", "POST"])
def login(request: HttpRequest) -> HttpResponse:
    form = forms.LoginForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        email = form.cleaned_data["email"]
        try:
            user = services.account_authenticate(
                request=request,
                email=email,
                password=form.cleaned_data["password"],
                ip=client_ip(request),
                # A browser where this account signed in before: only its own limit applies.
                known_device=devices.is_known(request, services.account_identity(email)),
            )
        except services.TooManyRequests as exc:
            form.add_error(None, exc.message)
        else:
            if user is None:
                form.add_error(None, LOGIN_FAILED)
            else:
                auth_login(request, user)
                response = redirect(_next_url(request))
                devices.remember(
                    request, response, user.get_username(), password_hash=user.password
                )
                return response
    next_url = request.POST.get("next") or request.GET.get("next") or ""
    return render(request, "accounts/login.html", {"form": form, "next": next_url})


def confirm_email(request: HttpRequest, token: str) -> HttpResponse:
    """Follow the link from the email. It works without logging in: people often open the email
    on their phone and registered on a computer."""
    try:
        user = services.email_confirm(token=token)
    except services.ConfirmationFailed as exc:
        return render(request, "accounts/confirm_failed.html", {"problem": exc.message}, status=400)
    messages.success(request, "Thank you: your email address is confirmed.")
    if request.user.is_authenticated and request.user.pk == user.pk:
        return redirect("account")
    return redirect("login")


@login_required
@require_POST
def resend_confirmation(request: HttpRequest) -> HttpResponse:
    try:
        services.email_confirmation_resend(user=_user(request))
    except services.AccountError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "We have sent the link again. It works for 3 days.")
    return redirect("account")


class PasswordResetView(auth_views.PasswordResetView):
    template_name = "accounts/password_reset_form.html"
    email_template_name = "accounts/email/password_reset.txt"
    subject_template_name = "accounts/email/password_reset_subject.txt"
    form_class = forms.ResetForm
    success_url = reverse_lazy("password_reset_done")

    def form_valid(self, form: Any) -> HttpResponse:
        if not PASSWORD_RESET_PER_IP.hit(client_ip(self.request)).allowed:
            # The same page as a sent email: the answer never says whether an account exists.
            return redirect(self.get_success_url())
        # The link is built from the public address, not from the Host header a request chose.
        self.extra_email_context = {"public_url": settings.HOMELINK_PUBLIC_URL.rstrip("/")}
        return super().form_valid(form)


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    template_name = "accounts/password_reset_confirm.html"
    form_class = forms.NewPasswordForm
    success_url = reverse_lazy("password_reset_complete")

    def form_valid(self, form: Any) -> HttpResponse:
        response = super().form_valid(form)
        services.password_reset_done(user=form.user, request=self.request)
        # The owner proved the mailbox: this browser is theirs now, so they sign in with the new
        # password whatever an attacker is doing to new devices.
        devices.remember(self.request, response, form.user.get_username())
        return response


# --- The account ---------------------------------------------------------------------------------


@login_required
@never_cache
def account(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    parent = _parent(request)
    # Each school as itself: its name, office phone and logo, with the children there.
    children, schools = selectors.account_overview(user=user)
    reach = selectors.account_reach(user=user)
    context = {
        "parent": parent,
        "children": children,
        "schools": schools,
        "channels": reach.channels,
        "opted_out": reach.opted_out,
        "has_adults": reach.has_adults,
        "email_to_confirm": services.email_to_confirm(parent),
    }
    return render(request, "accounts/account.html", context)


@login_required
@never_cache
def account_messages(request: HttpRequest) -> HttpResponse:
    """What the schools sent to this parent, by email or SMS, newest first."""
    entries = messages_for_account(user=_user(request), now=timezone.now())
    return render(
        request, "accounts/messages.html", {"entries": entries, "limit": PARENT_MESSAGES_LIMIT}
    )


#: A parent who has just given a school their details is shown its privacy notice next (where
#: opening it records that they were shown it: privacy/notices.py).
LINK_MESSAGES = {
    "linked": "You are now linked to {name}. Here is how {school} uses your details.",
    "waiting": "The school will check this link before it is made. {name} will appear as "
    "linked once the school has checked it. Here is how {school} uses your details.",
    "already": "You were already linked to {name}.",
    "registered": "Thank you, {name}: you are now registered with {school}. Here is how it "
    "uses your details.",
}


@sensitive_post_parameters("code")
@login_required
@never_cache
@require_http_methods(["GET", "POST"])
def link_code(request: HttpRequest) -> HttpResponse:
    parent = _parent(request)
    form = forms.LinkCodeForm(request.POST or None)
    if not parent.email_verified_at:
        # The register matches a parent to the school's records by a confirmed address.
        return render(request, "accounts/link_code.html", {"form": None, "parent": parent})
    if request.method == "POST" and form.is_valid():
        try:
            result = redeem_code(
                user=_user(request),
                raw_code=form.cleaned_data["code"],
                ip=client_ip(request),
                relationship=form.cleaned_data["relationship"],
                parent=parent,
            )
        except (CodeNotAccepted, LinkRefused) as exc:
            form.add_error("code", exc.message)
        else:
            messages.success(
                request,
                LINK_MESSAGES[result.status].format(
                    name=result.member.forename, school=result.member.school.name
                ),
            )
            if result.status == "already":
                return redirect("account")
            return redirect("privacy_notice", urn=result.member.school.urn)
    return render(request, "accounts/link_code.html", {"form": form, "parent": parent})


@login_required
@never_cache
@require_http_methods(["GET", "POST"])
@sensitive_post_parameters("email", "mobile")
def details(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    parent = _parent(request)
    # The number as the parent would type it (07700 900767), not as it is stored (E.164): saving
    # the form unchanged normalises it back to the same number, so nothing changes.
    mobile_shown = for_display(parent.mobile, services.MOBILE_REGION)
    initial = {"email": parent.pending_email or user.email, "mobile": mobile_shown}
    form = forms.DetailsForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        email, mobile = form.cleaned_data["email"], form.cleaned_data["mobile"]
        changed = False
        try:
            if services.email_change_request(user=user, new_email=email):
                changed = True
                messages.success(
                    request,
                    "We have sent a link to your new email address. Until you follow it, we "
                    "keep using your old one.",
                )
        except services.AccountError as exc:
            form.add_error("email", exc.message)
        new_mobile = normalise_mobile(mobile, services.MOBILE_REGION) if mobile else ""
        if not mobile and (parent.mobile or parent.pending_mobile):
            services.mobile_remove(user=user)
            changed = True
            messages.success(request, "We have removed your mobile number.")
        elif new_mobile and new_mobile != parent.verified_mobile:
            try:
                services.mobile_code_send(user=user, raw_mobile=mobile)
            except services.AccountError as exc:
                form.add_error("mobile", exc.message)
            else:
                if not form.errors:
                    messages.success(request, "We have sent a code by text message.")
                    return redirect("verify_mobile")
        if not form.errors:
            if not changed:
                messages.info(request, "Nothing has changed.")
            return redirect("account")
    return render(request, "accounts/details.html", {"form": form, "parent": parent})


@login_required
@never_cache
@require_http_methods(["GET", "POST"])
@sensitive_post_parameters("code")
def verify_mobile(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    parent = _parent(request)
    if not parent.pending_mobile:
        messages.info(request, "Enter your mobile number and we will send you a code.")
        return redirect("details")
    form = forms.VerifyMobileForm(request.POST if "code" in request.POST else None)
    if request.method == "POST":
        if request.POST.get("action") == "resend":
            try:
                services.mobile_code_resend(user=user)
            except services.AccountError as exc:
                messages.error(request, exc.message)
            else:
                messages.success(request, "We have sent a new code.")
            return redirect("verify_mobile")
        if form.is_valid():
            try:
                services.mobile_confirm(user=user, code=form.cleaned_data["code"])
            except services.AccountError as exc:
                form.add_error("code", exc.message)
            else:
                messages.success(request, "Thank you: your mobile number is confirmed.")
                return redirect("account")
    return render(request, "accounts/verify_mobile.html", {"form": form, "parent": parent})


@login_required
@never_cache
@require_http_methods(["GET", "POST"])
def preferences(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    reach = selectors.account_reach(user=user)
    form = forms.PreferencesForm(request.POST or None, initial={"channels": reach.channels})
    if request.method == "POST" and form.is_valid():
        services.preferences_set(user=user, channels=form.cleaned_data["channels"])
        messages.success(request, "Your choice is saved.")
        return redirect("account")
    context = {"form": form, "has_adults": reach.has_adults}
    return render(request, "accounts/preferences.html", context)


@login_required
@never_cache
@require_http_methods(["GET", "POST"])
def unlink(request: HttpRequest, link_id: int) -> HttpResponse:
    user = _user(request)
    link = selectors.account_link(user=user, link_id=link_id)
    if link is None:
        raise Http404("no such link")
    if request.method == "POST":
        student = services.link_remove_by_adult(user=user, link_id=link.pk)
        messages.success(request, f"You are no longer linked to {student.forename}.")
        return redirect("account")
    return render(request, "accounts/unlink.html", {"link": link})


@login_required
@never_cache
@require_http_methods(["GET", "POST"])
def opt_out(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    if request.method == "POST":
        opted_out = request.POST.get("opted_out") == "1"
        services.opt_out_set(user=user, opted_out=opted_out)
        messages.success(
            request,
            "You have opted out. The school will not send you messages through homelink."
            if opted_out
            else "You have opted back in. The school can send you messages again.",
        )
        return redirect("account")
    reach = selectors.account_reach(user=user)
    context = {"opted_out": reach.opted_out, "has_adults": reach.has_adults}
    return render(request, "accounts/opt_out.html", context)


@sensitive_post_parameters("password")
@login_required
@never_cache
@require_http_methods(["GET", "POST"])
def delete_account(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    form = forms.DeleteAccountForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            checked = services.account_authenticate(
                request=request,
                email=user.email,
                password=form.cleaned_data["password"],
                ip=client_ip(request),
                known_device=devices.is_known(request, services.account_identity(user.email)),
            )
        except services.TooManyRequests as exc:
            form.add_error("password", exc.message)
        else:
            if checked is None or checked.pk != user.pk:
                form.add_error("password", "That password is not right.")
            else:
                try:
                    services.account_delete(user=user)
                except services.AccountError as exc:
                    form.add_error(None, exc.message)
                else:
                    auth_logout(request)
                    messages.success(request, "Your account is deleted.")
                    return redirect("login")
    return render(request, "accounts/delete_account.html", {"form": form})


def privacy(request: HttpRequest) -> HttpResponse:
    return render(request, "accounts/privacy.html")
