"""Staff's second factor: a TOTP authenticator app (django-otp's ``TOTPDevice``).

A staff account may add one; once it has a confirmed device, every console page asks for a code
once per session (``staff_view`` calls :func:`second_factor_redirect`). An administrator can make
it compulsory for the school (``School.require_second_factor``): staff without a device are then
sent to set one up before they see anything of that school.

The device belongs to the account, not to a school, so its pages live at ``/console/otp/…``.
Site operators (``is_staff`` or ``is_superuser`` accounts) use the same pages: for them a second
factor is always compulsory, because the operators' admin (:mod:`homelink.console.admin_site`)
opens every school's data and serves only sessions that have given a code.
Codes are checked with :func:`django_otp.verify_token` (row-locked, so a code is accepted once)
after the limits in :mod:`homelink.ratelimit.policies` (``OTP_*``), chosen by device
(:mod:`homelink.ratelimit.devices`). Only someone signed in with the account's password reaches
them. A browser that has given the account's code before counts only against the account's
known-device limit, which nobody else can reach, so the owner is never refused because of someone
else's guesses. Any other browser counts against its address's limits (five wrong codes for the
account, twenty in all, per 15 minutes) and a hard cap per account: ten wrong codes an hour from
new devices, whatever their addresses, and the password is replaced (every session ends) and the
owner emailed a link to choose a new one; they are warned at five. Nothing waits except for the
site-wide budget. django-otp's own throttle, which would refuse the right code for longer and
longer, is off (``OTP_TOTP_THROTTLE_FACTOR = 0``). A refused code and a refused address get the
same answer.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from base64 import b32encode
from typing import Any
from urllib.parse import quote, urlencode

import django_otp
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth import logout as auth_logout
from django.contrib.auth.tokens import default_token_generator
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import ValidationError
from django.core.mail import mail_admins, send_mail
from django.db import transaction
from django.db.models import Q
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import url_has_allowed_host_and_scheme, urlsafe_base64_encode
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from homelink.audit.services import audit_record
from homelink.ratelimit import devices, limiter
from homelink.ratelimit.ip import client_ip
from homelink.ratelimit.limiter import Verdict
from homelink.ratelimit.policies import (
    OTP_BUDGET,
    OTP_KNOWN_DEVICE,
    OTP_NEW_DEVICES,
    OTP_OWNER_ALERT_AFTER,
    OTP_PER_ACCOUNT_IP,
    OTP_PER_IP,
)
from homelink.schools.models import School
from homelink.staff.actor import Actor, actor_parts
from homelink.staff.models import StaffMembership
from homelink.trusts.models import TrustMembership

#: The one answer to a wrong, expired, reused or rate-limited code.
CODE_REFUSED = (
    "That code was not accepted. Enter the 6-digit code your authenticator app shows now. "
    "After several wrong codes you must wait a while before trying again."
)

ISSUER = "homelink"
TOKEN_RE = re.compile(r"^[0-9]{6}$")

logger = logging.getLogger(__name__)


# --- Reading -------------------------------------------------------------------------------------


def confirmed_device(user: Any) -> TOTPDevice | None:
    """The account's authenticator, once confirmed with a code."""
    if not getattr(user, "is_authenticated", False):
        return None
    return TOTPDevice.objects.filter(user_id=user.pk, confirmed=True).order_by("pk").first()


def is_staff(user: Any) -> bool:
    """School staff, or a trust's (whose role holds at the trust's schools)."""
    return bool(getattr(user, "is_authenticated", False)) and (
        StaffMembership.objects.filter(user_id=user.pk).exists()
        or TrustMembership.objects.filter(user_id=user.pk).exists()
    )


def is_operator(user: Any) -> bool:
    """A site operator: an active account that Django's admin would let in (``is_staff``), or a
    superuser. Operators see every school's data, so their second factor is compulsory."""
    return (
        bool(getattr(user, "is_authenticated", False))
        and bool(getattr(user, "is_active", False))
        and bool(getattr(user, "is_staff", False) or getattr(user, "is_superuser", False))
    )


def may_use_second_factor(user: Any) -> bool:
    """Who the second factor's pages are for: school staff and site operators."""
    return is_operator(user) or is_staff(user)


def web_enrolment_allowed(user: Any) -> bool:
    """Whether the account may set up its first authenticator on the web, with its password
    alone. Not an operator's: a phished operator password would otherwise be enough to enrol the
    attacker's phone and open every school's data in the admin. Operators enrol on the server
    (``homelink otp enrol``), except in the demo and the tests (``HOMELINK_DEV``)."""
    return not is_operator(user) or bool(settings.HOMELINK_DEV)


def second_factor_required(user: Any) -> bool:
    """Whether the account must have an authenticator: an operator, or staff of a school that
    requires one."""
    return is_operator(user) or bool(schools_requiring(user))


def schools_requiring(user: Any) -> list[School]:
    """The user's schools that require a second factor (by name)."""
    return list(
        School.objects.filter(
            Q(staff_memberships__user_id=user.pk)
            | Q(trust_place__trust__memberships__user_id=user.pk),
            require_second_factor=True,
        )
        .order_by("name")
        .distinct()
    )


def session_verified(request: HttpRequest) -> bool:
    """Whether this session has given a code (django-otp's ``OTPMiddleware`` says so). Without
    the middleware nothing is ever verified: the check fails closed."""
    is_verified = getattr(request.user, "is_verified", None)
    return bool(is_verified()) if callable(is_verified) else False


def staff_without_second_factor(school: School) -> int:
    """How many of the school's staff have no confirmed authenticator: for the settings page to
    say who will be asked to set one up."""
    with_device = TOTPDevice.objects.filter(confirmed=True).values("user_id")
    return StaffMembership.objects.filter(school=school).exclude(user_id__in=with_device).count()


# --- The decision staff_view asks for ------------------------------------------------------------


def with_next(name: str, target: str) -> str:
    return f"{reverse(name)}?{urlencode({'next': target})}"


def second_factor_redirect(
    request: HttpRequest, membership: StaffMembership
) -> HttpResponse | None:
    """Where a console request must go first, or None to serve it.

    - the session has given a code: serve;
    - the account has a confirmed authenticator: to the verify page;
    - it has none and ``membership``'s school requires one: to the set-up page;
    - otherwise (none, not required): serve.
    """
    user = request.user
    if not getattr(user, "is_authenticated", False):
        return redirect_to_login(request.get_full_path())
    if session_verified(request):
        return None
    here = request.get_full_path()
    if confirmed_device(user) is not None:
        return HttpResponseRedirect(with_next("console_otp:verify", here))
    if membership.school.require_second_factor:
        return HttpResponseRedirect(with_next("console_otp:setup", here))
    return None


def admin_redirect(request: HttpRequest, target: str | None = None) -> HttpResponse | None:
    """Where an admin request must go first, or None to let the admin decide.

    An operator whose session has not given a code goes to the verify page, or to the set-up
    page when they have no authenticator yet, and comes back to ``target`` (by default the page
    asked for) afterwards. Anyone else (signed out, not an operator, or verified) is left to the
    admin's own permission check, which sends them to the site's sign-in page.
    """
    user = request.user
    if not is_operator(user) or session_verified(request):
        return None
    here = target or request.get_full_path()
    if confirmed_device(user) is not None:
        return HttpResponseRedirect(with_next("console_otp:verify", here))
    return HttpResponseRedirect(with_next("console_otp:setup", here))


def safe_next(request: HttpRequest) -> str:
    """The ``next`` page if it is on this site, else the console's home (the admin's for an
    operator who works for no school)."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    if is_operator(request.user) and not is_staff(request.user):
        return reverse("admin:index")
    return reverse("console:home")


# --- Setting up ----------------------------------------------------------------------------------


def pending_device(user: Any) -> TOTPDevice:
    """The authenticator being set up: the account's unconfirmed device, made on first visit
    (and kept, so reloading the page does not change the secret being typed in)."""
    device = TOTPDevice.objects.filter(user_id=user.pk, confirmed=False).order_by("-pk").first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=False)
    return device


def secret_text(device: TOTPDevice) -> str:
    """The secret in base32, in groups of four for typing into an app by hand."""
    secret = b32encode(device.bin_key).decode("ascii").rstrip("=")
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def otpauth_uri(device: TOTPDevice) -> str:
    """The ``otpauth://`` URI an authenticator app reads (from the QR code or a link)."""
    issuer = str(getattr(settings, "OTP_TOTP_ISSUER", "") or ISSUER).replace(":", "")
    account = str(device.user.get_username())
    params = urlencode(
        {
            "secret": b32encode(device.bin_key).decode("ascii").rstrip("="),
            "algorithm": "SHA1",
            "digits": device.digits,
            "period": device.step,
        }
    )
    return f"otpauth://totp/{quote(f'{issuer}:{account}')}?{params}&issuer={quote(issuer)}"


def qr_svg(text: str) -> str | None:
    """An inline SVG QR code of ``text`` (no script, no image request), or None without the
    ``qrcode`` package. Hidden from screen readers: the secret is also written out as text."""
    try:
        import qrcode
        from qrcode.image.svg import SvgPathFillImage
    except ImportError:  # pragma: no cover - qrcode is a dependency; the text secret suffices
        return None
    image = qrcode.make(text, image_factory=SvgPathFillImage, box_size=10, border=4)
    svg: str = image.to_string(encoding="unicode")
    svg = re.sub(r"^<\?xml[^>]*>\s*", "", svg)
    svg = re.sub(r'\swidth="[^"]*"\sheight="[^"]*"', ' width="224" height="224"', svg, count=1)
    return svg.replace("<svg ", '<svg aria-hidden="true" focusable="false" ', 1)


def _lock_user(user: Any) -> None:
    """Serialise second-factor changes of one account (two tabs confirming at once)."""
    get_user_model().objects.select_for_update().filter(pk=user.pk).exists()


def _audit_everywhere(
    user: Any,
    *,
    action: str,
    device: TOTPDevice,
    actor: Actor,
    label: str | None = None,
) -> None:
    """One event in each of the user's schools: each school's administrators see it. An
    operator's account may have no school: their changes are logged and mailed to ``ADMINS``
    (:func:`_tell_operators`) instead."""
    default_label, actor_id = actor_parts(actor)
    label = label or default_label
    for membership in StaffMembership.objects.select_related("school").filter(user_id=user.pk):
        audit_record(
            school=membership.school,
            actor_label=label,
            actor_id=actor_id,
            action=action,
            obj=membership,
            detail={"user_id": user.pk, "device_id": device.pk},
        )


def _tell_operators(user: Any, *, what: str, by: str) -> None:
    """Log and mail ``ADMINS`` when an operator's second factor changes: the first device of an
    account can be set up with its password alone, so the other operators must hear of it (an
    operator who did not do it then knows their password is known). Names no secret."""
    if not is_operator(user):
        return
    logger.warning("operator second factor %s: user_id=%s by=%s", what, user.pk, by)
    mail_admins(
        f"Operator second factor {what}",
        f"The authenticator app of operator account {user.get_username()} (id {user.pk}) was "
        f"{what} by {by}. If this was not expected, change that account's password and delete "
        "its authenticator in the admin.",
        fail_silently=True,
    )


def _sleep(seconds: float) -> None:
    # A module attribute, so tests replace it instead of waiting (only the site-wide budget asks).
    time.sleep(seconds)


def token_allowed(user: Any, ip: str) -> bool:
    """Count one code attempt by the account from ``ip`` on a new device; False once the address
    is over its limits (for this account, or for all) or locked out. Call before checking the code
    and outside a transaction (the count must survive a rollback)."""
    return limiter.hit_all((OTP_PER_IP, ip), (OTP_PER_ACCOUNT_IP, f"user:{user.pk} {ip}")).allowed


def device_remember(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    """Remember on ``response`` that this browser gave the account's code: its later codes count
    only against the account's known-device limit (:mod:`homelink.ratelimit.devices`). Call after
    a right code."""
    devices.remember(request, response, request.user.get_username(), factor=devices.SECOND_FACTOR)
    return response


def _check(
    request: HttpRequest, device: TOTPDevice, token: str, *, enrolling: bool = False
) -> bool:
    """Whether ``token`` is the device's current code (each code is accepted once). Counts
    against the limits first (nothing waits but the site-wide budget's delay):

    - from a browser that has given this account's code before (under its current password):
      only ``OTP_KNOWN_DEVICE``, which nobody else can reach;
    - from any other: the address's limits, then the account's hard cap for new devices. Its
      ``OTP_OWNER_ALERT_AFTER``-th wrong code warns the owner; the wrong code that reaches the
      cap means the password is known to someone else, and ends it (:func:`_password_taken`).
    """
    user = request.user
    token = token.replace(" ", "")
    if not TOKEN_RE.match(token):
        return False
    ip = client_ip(request)
    account = f"user:{user.pk}"
    known = devices.is_known(request, user.get_username(), factor=devices.SECOND_FACTOR)
    # This browser's own count: nobody at another device the owner uses can reach it.
    device_count = devices.device_key(request, account)
    cap: Verdict | None = None
    if enrolling:
        # The first code from an app being set up: a mistyped one says nothing about who has
        # the password (the account has no second factor yet), so only the address's limits
        # count it, never the account's cap that would replace the owner's password.
        allowed = token_allowed(user, ip)
    elif known:
        allowed = OTP_KNOWN_DEVICE.hit(device_count).allowed
    elif token_allowed(user, ip):
        cap = OTP_NEW_DEVICES.hit(account)
        allowed = cap.allowed
    else:
        allowed = False
    delay = OTP_BUDGET.hit().delay
    if delay:
        _sleep(delay)
    if not allowed:
        return False
    if django_otp.verify_token(user, device.persistent_id, token) is None:
        if cap is not None:
            # Each count is handed out once, so each of these happens once per run.
            wrong = OTP_NEW_DEVICES.limit - cap.remaining
            if cap.remaining == 0:
                _password_taken(request, device)
            elif wrong == OTP_OWNER_ALERT_AFTER:
                _tell_owner(user, wrong=wrong)
        return False
    if enrolling:
        OTP_PER_ACCOUNT_IP.reset(f"{account} {ip}")
        OTP_PER_IP.refund(ip)
    elif known:
        OTP_KNOWN_DEVICE.reset(device_count)
    else:
        OTP_PER_ACCOUNT_IP.reset(f"{account} {ip}")
        # Given back, not reset: the cap keeps counting the wrong codes of whoever else has the
        # password, and the owner's right code does not hand them a fresh ten.
        OTP_NEW_DEVICES.refund(account)
        OTP_PER_IP.refund(ip)
    return True


def _reset_link(user: Any) -> str:
    """A link that lets the mailbox's owner choose a new password (Django's reset link: valid
    until the password changes, for ``PASSWORD_RESET_TIMEOUT``)."""
    path = reverse(
        "password_reset_confirm",
        kwargs={
            "uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
            "token": default_token_generator.make_token(user),
        },
    )
    return settings.HOMELINK_PUBLIC_URL.rstrip("/") + path


def _password_taken(request: HttpRequest, device: TOTPDevice) -> None:
    """Wrong codes from new devices reached the cap: only someone with the password gets to enter
    a code, so someone other than the owner has it. The password is replaced with a random one
    nobody knows (Django then ends every session of the account, and this one is ended now), the
    owner is emailed a link to choose a new one, and each of their schools sees it in its audit
    trail. A random password rather than Django's unusable one: the reset form sends nothing to
    an account without a usable password, and the owner must always be able to reset."""
    user_id = request.user.pk
    assert user_id is not None  # only a signed-in account is asked for a code
    with transaction.atomic():
        owner = get_user_model().objects.select_for_update().get(pk=user_id)
        owner.set_password(secrets.token_urlsafe(32))
        owner.save(update_fields=["password"])
        _audit_everywhere(
            owner, action="staff.password_disabled", device=device, actor="second-factor limit"
        )
    auth_logout(request)
    logger.warning(
        "second factor: wrong codes reached the cap, password replaced and sessions ended: user=%s",
        owner.pk,
    )
    _tell_owner(owner, wrong=OTP_NEW_DEVICES.limit, reset_link=_reset_link(owner))
    if is_operator(owner):
        mail_admins(
            "Operator password replaced after wrong authenticator codes",
            f"Operator account id {owner.pk} had {OTP_NEW_DEVICES.limit} wrong authenticator "
            "codes entered after its password: its password was replaced and its sessions ended. "
            "Its owner has been emailed a link to choose a new one.",
            fail_silently=True,
        )


def _tell_owner(user: Any, *, wrong: int, reset_link: str = "") -> None:
    """Email the account: codes are only asked for after the password, so a run of wrong ones
    means the password is probably known to someone else. A warning first; with ``reset_link``,
    the news that the password was replaced and the link to choose a new one."""
    if not user.email:
        return
    reset = settings.HOMELINK_PUBLIC_URL.rstrip("/") + reverse("password_reset")
    if reset_link:
        subject = "Your homelink password has been turned off"
        body = (
            f"Someone signed in to homelink with your password and then entered {wrong} wrong "
            "codes from an authenticator app, from devices you have not used before.\n\n"
            "Someone else knows your password, so we have turned it off and signed everyone out "
            "of your account. Your authenticator app kept them out.\n\n"
            f"Choose a new password with this link (it works for a few days): {reset_link}\n"
            f"If it has stopped working, ask for a new one here: {reset}\n"
        )
    else:
        subject = "Wrong authenticator codes for your homelink account"
        body = (
            f"Someone signed in to homelink with your password and then entered {wrong} wrong "
            "codes from an authenticator app.\n\n"
            "If this was you, you can ignore this email.\n\n"
            "If it was not you, someone else knows your password. Your authenticator app has kept "
            f"them out so far. Change your password now: {reset}\n"
            "Changing it signs everyone else out. After "
            f"{OTP_NEW_DEVICES.limit} wrong codes we turn the password off ourselves.\n"
        )
    send_mail(subject, body, None, [user.email], fail_silently=True)
    logger.warning("second factor: wrong codes after the password, owner emailed: user=%s", user.pk)


def device_confirm(*, request: HttpRequest, device: TOTPDevice, token: str) -> bool:
    """Confirm the device being set up with its first code; the session is then verified.
    False when the code is refused or the account already has a confirmed device."""
    user = request.user
    if device.user_id != user.pk or device.confirmed:
        return False
    if not _check(request, device, token, enrolling=True):
        return False
    with transaction.atomic():
        _lock_user(user)
        if TOTPDevice.objects.filter(user_id=user.pk, confirmed=True).exists():
            return False
        TOTPDevice.objects.filter(pk=device.pk).update(confirmed=True)
        device.confirmed = True
        TOTPDevice.objects.filter(user_id=user.pk, confirmed=False).delete()
        _audit_everywhere(user, action="staff.second_factor_added", device=device, actor=user)
    _tell_operators(user, what="set up", by="its owner, on the web")
    django_otp.login(request, device)
    return True


def session_verify(*, request: HttpRequest, token: str) -> bool:
    """Verify this session with a code from the account's authenticator."""
    user = request.user
    device = confirmed_device(user)
    if device is None or not _check(request, device, token):
        return False
    django_otp.login(request, device)
    return True


def device_remove(*, request: HttpRequest, token: str) -> None:
    """Remove the account's authenticator, given a code from it now.

    Raises ValidationError when a school of the account requires a second factor, when there is
    no authenticator, or (with :data:`CODE_REFUSED`) when the code is refused.
    """
    user = request.user
    if is_operator(user):
        # The admin needs a second factor: removing it would leave a password-only operator
        # whose next device anyone with the password could set up. Another operator deletes a
        # lost one in the admin, or ``homelink otp enrol --replace`` replaces it.
        raise ValidationError(
            "Site operators must keep a second factor: you cannot remove your authenticator."
        )
    required = schools_requiring(user)
    if required:
        raise ValidationError(
            f"{', '.join(s.name for s in required)} requires a second factor: you cannot "
            "remove your authenticator."
        )
    device = confirmed_device(user)
    if device is None:
        raise ValidationError("You have no authenticator to remove.")
    if not _check(request, device, token):
        raise ValidationError(CODE_REFUSED)
    with transaction.atomic():
        _lock_user(user)
        # Checked again under the lock: an administrator may have just made it compulsory.
        if schools_requiring(user):
            raise ValidationError("Your school now requires a second factor.")
        _audit_everywhere(user, action="staff.second_factor_removed", device=device, actor=user)
        TOTPDevice.objects.filter(user_id=user.pk).delete()
    request.session.pop(django_otp.DEVICE_ID_SESSION_KEY, None)
    if hasattr(request.user, "otp_device"):
        request.user.otp_device = None


def device_delete_by_operator(*, device: TOTPDevice, operator: Any) -> None:
    """An operator deletes a lost authenticator in the admin. The owner's sessions verified by it
    stop being verified (django-otp's middleware no longer finds the device); each of the owner's
    schools sees it in its audit trail."""
    with transaction.atomic():
        owner = device.user
        _lock_user(owner)
        _audit_everywhere(
            owner,
            action="staff.second_factor_removed",
            device=device,
            actor=operator,
            label=f"admin:{operator.pk}",
        )
        device.delete()
    _tell_operators(owner, what="deleted", by=f"operator id {operator.pk}, in the admin")


# --- Enrolling from the command line -------------------------------------------------------------


def offline_device(user: Any) -> TOTPDevice:
    """A new authenticator for ``user``, not yet saved: its secret exists only in this process
    until :func:`offline_device_install` saves it, so no web page can show it meanwhile."""
    return TOTPDevice(user=user, name="Authenticator app", confirmed=True)


def offline_device_install(*, device: TOTPDevice, token: str, replace: bool) -> bool:
    """Save ``device`` as the account's authenticator once ``token`` is its current code (proof
    the app has the secret); with ``replace``, the account's other devices are deleted (their
    sessions stop being verified). False when the code is wrong, or when the account already has
    an authenticator and ``replace`` is not given."""
    token = token.replace(" ", "")
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    if not TOKEN_RE.match(token) or not totp.verify(int(token), device.tolerance):
        return False
    user = device.user
    with transaction.atomic():
        _lock_user(user)
        existing = TOTPDevice.objects.filter(user_id=user.pk)
        if not replace and existing.filter(confirmed=True).exists():
            return False
        existing.delete()
        # As django-otp's own verify_token does: the code just typed is not accepted again
        # (last_t), and the app's clock offset is remembered (drift).
        device.last_t = totp.t()
        device.drift = totp.drift
        device.save()
        _audit_everywhere(user, action="staff.second_factor_added", device=device, actor="cli")
    _tell_operators(user, what="set up", by="the command line")
    return True


# --- The school's setting ------------------------------------------------------------------------


def school_require_second_factor(*, school: School, required: bool, actor: Actor) -> School:
    """Make a second factor compulsory (or optional again) for the school's staff. Audited; a
    call that changes nothing records nothing. The caller checks the actor is an administrator.

    Staff who have no authenticator are asked to set one up at their next console page; staff
    signed in with a password only are asked at their next page too (nobody is signed out)."""
    label, actor_id = actor_parts(actor)
    with transaction.atomic():
        locked = School.objects.select_for_update().get(pk=school.pk)
        if locked.require_second_factor != required:
            locked.require_second_factor = required
            locked.save(update_fields=["require_second_factor"])
            audit_record(
                school=locked,
                actor_label=label,
                actor_id=actor_id,
                action="school.second_factor_required"
                if required
                else "school.second_factor_optional",
                obj=locked,
                detail={"require_second_factor": required},
            )
    school.require_second_factor = required
    return locked
