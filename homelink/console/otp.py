"""The staff console's second factor: a TOTP authenticator app (django-otp's ``TOTPDevice``).

A staff account may add one; once it has a confirmed device, every console page asks for a code
once per session (``staff_view`` calls :func:`second_factor_redirect`). An administrator can make
it compulsory for the school (``School.require_second_factor``): staff without a device are then
sent to set one up before they see anything of that school.

The device belongs to the account, not to a school, so its pages live at ``/console/otp/…``.
Codes are checked with :func:`django_otp.verify_token` (row-locked, so a code is accepted once)
after a per-account rate limit: five codes per 15 minutes, then a 15-minute lock-out. A refused
code and a locked account get the same answer.
"""

from __future__ import annotations

import re
from base64 import b32encode
from datetime import timedelta
from typing import Any
from urllib.parse import quote, urlencode

import django_otp
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django_otp.plugins.otp_totp.models import TOTPDevice

from homelink.audit.services import audit_record
from homelink.console.models import StaffMembership
from homelink.console.services import Actor, actor_parts
from homelink.ratelimit.limiter import Policy
from homelink.schools.models import School

#: Five codes per account per 15 minutes, then locked for 15 minutes. An authenticator code has
#: a million values; five guesses a quarter-hour is about one chance in 4,000 a month.
OTP_PER_ACCOUNT = Policy(
    "otp:account", limit=5, window=timedelta(minutes=15), lockout=timedelta(minutes=15)
)

#: The one answer to a wrong, expired, reused or rate-limited code.
CODE_REFUSED = (
    "That code was not accepted. Enter the 6-digit code your authenticator app shows now. "
    "After several wrong codes you must wait 15 minutes."
)

ISSUER = "homelink"
TOKEN_RE = re.compile(r"^[0-9]{6}$")


# --- Reading -------------------------------------------------------------------------------------


def confirmed_device(user: Any) -> TOTPDevice | None:
    """The account's authenticator, once confirmed with a code."""
    if not getattr(user, "is_authenticated", False):
        return None
    return TOTPDevice.objects.filter(user_id=user.pk, confirmed=True).order_by("pk").first()


def is_staff(user: Any) -> bool:
    return bool(getattr(user, "is_authenticated", False)) and (
        StaffMembership.objects.filter(user_id=user.pk).exists()
    )


def schools_requiring(user: Any) -> list[School]:
    """The user's schools that require a second factor (by name)."""
    return list(
        School.objects.filter(staff_memberships__user_id=user.pk, require_second_factor=True)
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


def safe_next(request: HttpRequest) -> str:
    """The ``next`` page if it is on this site, else the console's home."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
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


def _audit_everywhere(user: Any, *, action: str, device: TOTPDevice, actor: Actor) -> None:
    """One event in each of the user's schools: each school's administrators see it."""
    label, actor_id = actor_parts(actor)
    for membership in StaffMembership.objects.select_related("school").filter(user_id=user.pk):
        audit_record(
            school=membership.school,
            actor_label=label,
            actor_id=actor_id,
            action=action,
            obj=membership,
            detail={"user_id": user.pk, "device_id": device.pk},
        )


def token_allowed(user: Any) -> bool:
    """Count one code attempt by the account; False once over the limit or locked out. Call
    before checking the code and outside a transaction (the count must survive a rollback)."""
    return OTP_PER_ACCOUNT.hit(f"user:{user.pk}").allowed


def _check(user: Any, device: TOTPDevice, token: str) -> bool:
    """Whether ``token`` is the device's current code (each code is accepted once; django-otp's
    own throttling applies too). Counts against the limit."""
    token = token.replace(" ", "")
    if not TOKEN_RE.match(token) or not token_allowed(user):
        return False
    if django_otp.verify_token(user, device.persistent_id, token) is None:
        return False
    OTP_PER_ACCOUNT.reset(f"user:{user.pk}")
    return True


def device_confirm(*, request: HttpRequest, device: TOTPDevice, token: str) -> bool:
    """Confirm the device being set up with its first code; the session is then verified.
    False when the code is refused or the account already has a confirmed device."""
    user = request.user
    if device.user_id != user.pk or device.confirmed:
        return False
    if not _check(user, device, token):
        return False
    with transaction.atomic():
        _lock_user(user)
        if TOTPDevice.objects.filter(user_id=user.pk, confirmed=True).exists():
            return False
        TOTPDevice.objects.filter(pk=device.pk).update(confirmed=True)
        device.confirmed = True
        TOTPDevice.objects.filter(user_id=user.pk, confirmed=False).delete()
        _audit_everywhere(user, action="staff.second_factor_added", device=device, actor=user)
    django_otp.login(request, device)
    return True


def session_verify(*, request: HttpRequest, token: str) -> bool:
    """Verify this session with a code from the account's authenticator."""
    user = request.user
    device = confirmed_device(user)
    if device is None or not _check(user, device, token):
        return False
    django_otp.login(request, device)
    return True


def device_remove(*, request: HttpRequest, token: str) -> None:
    """Remove the account's authenticator, given a code from it now.

    Raises ValidationError when a school of the account requires a second factor, when there is
    no authenticator, or (with :data:`CODE_REFUSED`) when the code is refused.
    """
    user = request.user
    required = schools_requiring(user)
    if required:
        raise ValidationError(
            f"{', '.join(s.name for s in required)} requires a second factor: you cannot "
            "remove your authenticator."
        )
    device = confirmed_device(user)
    if device is None:
        raise ValidationError("You have no authenticator to remove.")
    if not _check(user, device, token):
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
