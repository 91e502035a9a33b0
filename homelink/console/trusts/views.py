"""A trust's pages: the overview of its schools side by side, its staff and their invitations,
the page an invitation's link opens, and the console's home with the user's trusts. Thin: the
reads are :mod:`homelink.trusts.selectors`, the writes :mod:`homelink.trusts.services` and
:mod:`homelink.trusts.invitations`.

Inviting an address always gives the same answer, whether or not it has an account anywhere on
the install: a trust's administrator learns nothing about other schools' staff or parents.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login as auth_login
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods

from homelink.console import views as console_views
from homelink.console.permissions import TrustRequest, trust_view
from homelink.console.refusals import form_refused, refused
from homelink.console.staff.forms import InvitationForm
from homelink.console.trusts.forms import TrustRoleForm, TrustStaffAddForm
from homelink.ratelimit import devices
from homelink.ratelimit.ip import client_ip
from homelink.staff.models import Role
from homelink.staff.selectors import confirmed_memberships
from homelink.trusts import invitations
from homelink.trusts.models import TrustInvitation, TrustMembership
from homelink.trusts.selectors import (
    open_trust_invitations,
    role_at_least,
    trust_overview,
    trust_schools,
    trust_staff,
    user_trust_memberships,
)
from homelink.trusts.services import trust_member_remove, trust_member_set_role

MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"


def _who(membership: TrustMembership) -> str:
    return str(membership.user.email or membership.user.get_username())


def _context(request: TrustRequest, **extra: Any) -> dict[str, Any]:
    return {
        "trust": request.trust,
        "membership": request.trust_membership,
        "can_change": role_at_least(request.trust_membership.role, Role.ADMINISTRATOR),
        **extra,
    }


# --- The console's home --------------------------------------------------------------------------


def home(request: HttpRequest) -> HttpResponse:
    """The schools the user works for and the trusts they work for; straight to the one school
    or the one trust when that is all there is. Without a trust, the schools' own home."""
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    trusts = user_trust_memberships(request.user)
    if not trusts:
        return console_views.home(request)
    # As staff_view: a role of an account whose email is not confirmed grants nothing.
    memberships = list(
        confirmed_memberships()
        .filter(user=request.user)
        .select_related("school")
        .order_by("school__name")
    )
    if len(trusts) == 1 and not memberships:
        return redirect("console:trust_overview", trust_id=trusts[0].trust_id)
    rows = [(m, list(trust_schools(m.trust))) for m in trusts]
    return render(
        request, "console/trust_home.html", {"memberships": memberships, "trust_rows": rows}
    )


# --- The overview --------------------------------------------------------------------------------


@trust_view()
def overview(request: TrustRequest) -> HttpResponse:
    """Every school of the trust side by side, with the figures its own dashboard shows."""
    return render(
        request,
        "console/trust_overview.html",
        _context(
            request,
            overview=trust_overview(request.trust),
            sync_hours=settings.HOMELINK_SYNC_STALE_HOURS,
        ),
    )


# --- The trust's staff ---------------------------------------------------------------------------


def _staff_page(
    request: TrustRequest, *, add_form: TrustStaffAddForm | None = None, status: int = 200
) -> HttpResponse:
    rows = [
        (m, TrustRoleForm(initial={"role": m.role}, auto_id=f"id_trust_staff{m.pk}_%s"))
        for m in trust_staff(request.trust)
    ]
    return render(
        request,
        "console/trust_staff.html",
        _context(
            request,
            rows=rows,
            invitations=open_trust_invitations(request.trust),
            now=timezone.now(),
            add_form=add_form or TrustStaffAddForm(),
            schools=list(trust_schools(request.trust)),
        ),
        status=status,
    )


@trust_view()
def staff(request: TrustRequest) -> HttpResponse:
    return _staff_page(request)


@trust_view(methods=("POST",))
def staff_add(request: TrustRequest) -> HttpResponse:
    form = TrustStaffAddForm(request.POST)
    if form.is_valid():
        try:
            invited = invitations.trust_invite(
                trust=request.trust,
                email=form.cleaned_data["email"],
                role=form.cleaned_data["role"],
                actor=request.user,
            )
        except ValidationError as error:
            form_refused(form, error)
        else:
            messages.success(
                request,
                f"We emailed an invitation to {invited.invitation.email}. They get the role "
                "when they accept it.",
            )
            return redirect("console:trust_staff", trust_id=request.trust.pk)
    return _staff_page(request, add_form=form, status=400)


@trust_view(methods=("POST",))
def staff_role(request: TrustRequest, staff: TrustMembership) -> HttpResponse:
    form = TrustRoleForm(request.POST)
    if not form.is_valid():
        return HttpResponseBadRequest("Choose a role.")
    role = form.cleaned_data["role"]
    try:
        trust_member_set_role(membership=staff, role=role, actor=request.user)
    except ValidationError as error:
        refused(request, error)
    else:
        messages.success(request, f"{_who(staff)} is now {invitations.role_words(role)}.")
    return redirect("console:trust_staff", trust_id=request.trust.pk)


@trust_view(methods=("POST",))
def staff_remove(request: TrustRequest, staff: TrustMembership) -> HttpResponse:
    try:
        trust_member_remove(membership=staff, actor=request.user)
    except ValidationError as error:
        refused(request, error)
        return redirect("console:trust_staff", trust_id=request.trust.pk)
    if staff.user_id == request.user.pk:
        messages.success(request, f"You no longer work for {request.trust.name} in homelink.")
        return redirect("console:home")
    messages.success(request, f"{_who(staff)} no longer has a role in {request.trust.name}.")
    return redirect("console:trust_staff", trust_id=request.trust.pk)


@trust_view(methods=("POST",))
def invitation_resend(request: TrustRequest, invitation: TrustInvitation) -> HttpResponse:
    try:
        invitations.trust_invitation_resend(invitation=invitation, actor=request.user)
    except ValidationError as error:
        refused(request, error)
    else:
        messages.success(
            request,
            f"We emailed a new invitation to {invitation.email}. The link in the earlier email "
            "no longer works.",
        )
    return redirect("console:trust_staff", trust_id=request.trust.pk)


@trust_view(methods=("POST",))
def invitation_revoke(request: TrustRequest, invitation: TrustInvitation) -> HttpResponse:
    try:
        invitations.trust_invitation_revoke(invitation=invitation, actor=request.user)
    except ValidationError as error:
        refused(request, error)
    else:
        messages.success(
            request, f"The invitation to {invitation.email} is withdrawn: its link no longer works."
        )
    return redirect("console:trust_staff", trust_id=request.trust.pk)


# --- The invitation's link -----------------------------------------------------------------------


def _unavailable(request: HttpRequest) -> HttpResponse:
    """One answer for a token that is unknown, expired, withdrawn, used or rate-limited."""
    return render(request, "console/trust_invitation_unavailable.html", status=404)


def _refusal(request: HttpRequest, message: str) -> HttpResponse:
    return render(request, "console/invitation_refused.html", {"problem": message}, status=403)


#: As for a school's invitation: once the token is in the session, the page is served at an
#: address without it, so the token never reaches a Referer header, a log line or ``next``.
OPEN = "open"
SESSION_KEY = "trust_invitation_token"


@sensitive_post_parameters("password1", "password2")
@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def invitation(request: HttpRequest, token: str) -> HttpResponse:
    """What a trust invitation offers (the trust and the role), and accepting it."""
    if token != OPEN:
        ip = client_ip(request)
        if not invitations.INVITATION_PER_IP.hit(ip).allowed:
            return _unavailable(request)
        if not invitations.trust_invitation_is_open(token):
            return _unavailable(request)
        invitations.INVITATION_PER_IP.refund(ip)
        request.session[SESSION_KEY] = token
        return redirect("console:trust_invitation", token=OPEN)
    token = str(request.session.get(SESSION_KEY, ""))
    try:
        offer = invitations.trust_invitation_offer(token)
    except invitations.InvitationUnavailable:
        request.session.pop(SESSION_KEY, None)
        return _unavailable(request)
    except invitations.InvitationRefused as problem:
        return _refusal(request, problem.message)
    invitation = offer.invitation
    trust = invitation.trust
    user = request.user if request.user.is_authenticated else None
    if user is not None and (offer.account is None or offer.account.pk != user.pk):
        return _refusal(request, invitations.SIGNED_IN_AS_ANOTHER)
    if offer.must_sign_in and user is None:
        messages.info(
            request,
            f"Sign in with {invitation.email} to accept the invitation from {trust.name}. If "
            "you have forgotten your password, reset it first.",
        )
        return redirect_to_login(request.get_full_path())
    form = InvitationForm(
        request.POST if request.method == "POST" else None,
        choose_password=not offer.must_sign_in,
    )
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                accepted = invitations.trust_invitation_accept(
                    token=token, user=user, password=form.cleaned_data.get("password1")
                )
            except invitations.InvitationUnavailable:
                return _unavailable(request)
            except invitations.SignInRequired:
                return redirect_to_login(request.get_full_path())
            except invitations.InvitationRefused as problem:
                return _refusal(request, problem.message)
            except ValidationError as error:
                form.add_error("password1", error)
            else:
                if accepted.account != "existing":
                    # Signed in as the account made or reclaimed (a new password changed the
                    # session's hash, which would otherwise sign this session out too).
                    auth_login(request, accepted.user, backend=MODEL_BACKEND)
                request.session.pop(SESSION_KEY, None)
                messages.success(
                    request,
                    f"Welcome to {trust.name}'s trust console: you are "
                    f"{invitations.role_words(accepted.membership.role)} at each of its schools."
                    if accepted.added
                    else f"You already had a role in {trust.name}: it has not changed.",
                )
                response = redirect("console:trust_overview", trust_id=trust.pk)
                devices.remember(request, response, accepted.user.get_username())
                return response
    context = {
        "invitation": invitation,
        "school_name": trust.name,
        "role": invitations.role_words(invitation.role),
        "offer": offer,
        "form": form,
    }
    return render(request, "console/invitation.html", context, status=status)
