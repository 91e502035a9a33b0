"""The Staff page (roles, and invitations waiting to be accepted) and the page an invitation's
link opens. Thin: writes are :mod:`homelink.staff.invitations` and :mod:`homelink.staff.services`.

Adding an address always gives the same answer, whether or not it has an account anywhere on
the install: one school's administrator learns nothing about other schools' staff or parents.
"""

from __future__ import annotations

from typing import Any

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

from homelink.console.permissions import StaffRequest, staff_view
from homelink.console.refusals import form_refused, refused
from homelink.console.staff.forms import InvitationForm, StaffAddForm, StaffRoleForm
from homelink.ratelimit import devices
from homelink.ratelimit.ip import client_ip
from homelink.staff import invitations
from homelink.staff.models import ROLE_RANK, Role, StaffInvitation, StaffMembership
from homelink.staff.services import staff_remove, staff_set_role

MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"


def _who(membership: StaffMembership) -> str:
    return membership.user.email or membership.user.get_username()


# --- The Staff page --------------------------------------------------------------------------


def _staff_page(
    request: StaffRequest, *, add_form: StaffAddForm | None = None, status: int = 200
) -> HttpResponse:
    staff = sorted(
        StaffMembership.objects.filter(school=request.school).select_related("user"),
        key=lambda m: (-ROLE_RANK[Role(m.role)], _who(m).casefold()),
    )
    rows = [
        (m, StaffRoleForm(initial={"role": m.role}, auto_id=f"id_staff{m.pk}_%s")) for m in staff
    ]
    context: dict[str, Any] = {
        "school": request.school,
        "membership": request.membership,
        "can_change": request.membership.can(Role.ADMINISTRATOR),
        "rows": rows,
        "invitations": invitations.open_invitations(request.school),
        "now": timezone.now(),
        "add_form": add_form or StaffAddForm(),
    }
    return render(request, "console/staff.html", context, status=status)


@staff_view()
def staff(request: StaffRequest) -> HttpResponse:
    return _staff_page(request)


@staff_view(methods=("POST",))
def staff_add(request: StaffRequest) -> HttpResponse:
    """Invite an address. The answer is the same for an address with an account anywhere on
    the install and one without; only this school's own staff are named (they are listed on
    this page already)."""
    form = StaffAddForm(request.POST)
    if form.is_valid():
        try:
            invited = invitations.staff_invite(
                school=request.school,
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
            return redirect("console:staff", urn=request.school.urn)
    return _staff_page(request, add_form=form, status=400)


@staff_view(methods=("POST",))
def staff_invitation_resend(request: StaffRequest, invitation: StaffInvitation) -> HttpResponse:
    try:
        invitations.invitation_resend(invitation=invitation, actor=request.user)
    except ValidationError as error:
        refused(request, error)
    else:
        messages.success(
            request,
            f"We emailed a new invitation to {invitation.email}. The link in the earlier email "
            "no longer works.",
        )
    return redirect("console:staff", urn=request.school.urn)


@staff_view(methods=("POST",))
def staff_invitation_revoke(request: StaffRequest, invitation: StaffInvitation) -> HttpResponse:
    try:
        invitations.invitation_revoke(invitation=invitation, actor=request.user)
    except ValidationError as error:
        refused(request, error)
    else:
        messages.success(
            request, f"The invitation to {invitation.email} is withdrawn: its link no longer works."
        )
    return redirect("console:staff", urn=request.school.urn)


@staff_view(methods=("POST",))
def staff_role(request: StaffRequest, staff: StaffMembership) -> HttpResponse:
    form = StaffRoleForm(request.POST)
    if not form.is_valid():
        return HttpResponseBadRequest("Choose a role.")
    role = form.cleaned_data["role"]
    try:
        staff_set_role(membership=staff, role=role, actor=request.user)
    except ValidationError as error:
        refused(request, error)
    else:
        messages.success(request, f"{_who(staff)} is now {role}.")
    return redirect("console:staff", urn=request.school.urn)


@staff_view(methods=("POST",))
def staff_remove_view(request: StaffRequest, staff: StaffMembership) -> HttpResponse:
    try:
        staff_remove(membership=staff, actor=request.user)
    except ValidationError as error:
        refused(request, error)
        return redirect("console:staff", urn=request.school.urn)
    if staff.user_id == request.user.pk:
        messages.success(request, f"You no longer work for {request.school.name} in homelink.")
        return redirect("console:home")
    messages.success(request, f"{_who(staff)} no longer has a role at {request.school.name}.")
    return redirect("console:staff", urn=request.school.urn)


# --- The invitation's link -------------------------------------------------------------------


def _unavailable(request: HttpRequest) -> HttpResponse:
    """One answer for a token that is unknown, expired, withdrawn, used or rate-limited."""
    return render(request, "console/invitation_unavailable.html", status=404)


def _refusal(request: HttpRequest, message: str) -> HttpResponse:
    return render(request, "console/invitation_refused.html", {"problem": message}, status=403)


#: The token-less address the page is served at once the link's token is in the session (as
#: Django's password reset does): the token then never reaches a Referer header, a log line of a
#: 400 or 403, or the sign-in page's ``next``.
OPEN = "open"
SESSION_KEY = "staff_invitation_token"


@sensitive_post_parameters("password1", "password2")
@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def invitation(request: HttpRequest, token: str) -> HttpResponse:
    """What an invitation offers (the school and the role), and accepting it.

    Not a console page: the person may have no account yet. The token that names the
    invitation is checked (attempts limited per address, a valid token's attempt refunded),
    kept in the session, and the page served at the token-less address."""
    if token != OPEN:
        ip = client_ip(request)
        if not invitations.INVITATION_PER_IP.hit(ip).allowed:
            return _unavailable(request)
        if not invitations.invitation_is_open(token):
            return _unavailable(request)
        invitations.INVITATION_PER_IP.refund(ip)
        request.session[SESSION_KEY] = token
        return redirect("staff_invitation", token=OPEN)
    token = str(request.session.get(SESSION_KEY, ""))
    try:
        offer = invitations.invitation_offer(token)
    except invitations.InvitationUnavailable:
        request.session.pop(SESSION_KEY, None)
        return _unavailable(request)
    except invitations.InvitationRefused as problem:
        return _refusal(request, problem.message)
    invitation = offer.invitation
    user = request.user if request.user.is_authenticated else None
    if user is not None and (offer.account is None or offer.account.pk != user.pk):
        return _refusal(request, invitations.SIGNED_IN_AS_ANOTHER)
    if offer.must_sign_in and user is None:
        messages.info(
            request,
            f"Sign in with {invitation.email} to accept the invitation from "
            f"{invitation.school.name}. If you have forgotten your password, reset it first.",
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
                accepted = invitations.invitation_accept(
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
                school = invitation.school
                messages.success(
                    request,
                    f"Welcome to {school.name}'s staff console: you are "
                    f"{accepted.membership.get_role_display().lower()} here."
                    if accepted.added
                    else f"You already had a role at {school.name}: it has not changed.",
                )
                response = redirect("console:dashboard", urn=school.urn)
                # The mailbox's owner signed in here: this browser is theirs from now on.
                devices.remember(request, response, accepted.user.get_username())
                return response
    context = {
        "invitation": invitation,
        "school_name": invitation.school.name,
        "role": invitation.get_role_display(),
        "offer": offer,
        "form": form,
    }
    return render(request, "console/invitation.html", context, status=status)
