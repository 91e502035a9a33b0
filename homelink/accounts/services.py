"""Writes for parent accounts: sign-up, confirming details, preferences, unlinking, opting out
and deleting the account.

Each function is one transaction. Mail and SMS go out after commit, so a rolled-back change
sends nothing. Changes to the register (the account's Adult rows, one per school) are recorded in
that school's audit trail with field names only; account-only events are logged with the user's
id only. Rate limits are counted before the transaction, so a rollback cannot undo the count.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac
from phonenumbers import (
    PhoneNumberType,
    example_number_for_type,
    parse,
    region_code_for_country_code,
    region_code_for_number,
)

from homelink.accounts import tokens
from homelink.accounts.limits import (
    CONFIRM_RESEND_PER_ACCOUNT,
    MOBILE_CODE_PER_ACCOUNT,
    MOBILE_CODE_PER_NUMBER,
    SIGNUP_PER_IP,
    verify_sms_budget,
    verify_sms_per_day,
)
from homelink.accounts.models import Parent
from homelink.audit.services import audit_record
from homelink.messaging.gateways import GatewayError, sms_gateway
from homelink.mis.phones import UK_REGIONS, PhoneKind, classify, is_fictional, normalise_mobile
from homelink.ratelimit import devices, limiter
from homelink.ratelimit.policies import (
    LOGIN_BUDGET,
    LOGIN_KNOWN_DEVICE,
    LOGIN_NEW_DEVICES,
    LOGIN_PER_ACCOUNT_IP,
    LOGIN_PER_IP,
    OTP_NEW_DEVICES,
)
from homelink.register.identity import clean_text, normalise_email
from homelink.register.models import Adult, Link, Member, Source
from homelink.register.services import person_opt_out
from homelink.staff.models import StaffMembership
from homelink.staff.services import staff_remove

logger = logging.getLogger(__name__)

CONFIRM_SUBJECT = "Confirm your email for homelink"
MOBILE_CODE_SALT = "homelink.accounts.mobile_code"
MOBILE_CODE_TTL = dt.timedelta(minutes=15)
MOBILE_CODE_ATTEMPTS = 5
#: The region parents' numbers are read in: the install is for UK schools, and a number abroad
#: typed with its +country code is still understood.
MOBILE_REGION = "GB"


class AccountError(Exception):
    """A refusal with a message fit to show the parent."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class EmailTaken(AccountError):
    def __init__(self) -> None:
        super().__init__(
            "An account with this email address already exists. Log in, or reset your password "
            "if you have forgotten it."
        )


class TooManyRequests(AccountError):
    pass


class ConfirmationFailed(AccountError):
    pass


class MobileRefused(AccountError):
    pass


LOGIN_LIMITED = (
    "There have been too many attempts to log in from your connection. Wait 15 minutes and try "
    "again, or reset your password."
)
#: The hard cap for new devices: counted for unknown emails too, so it says nothing about the
#: account.
LOGIN_NEW_DEVICES_LIMITED = (
    "Too many attempts to sign in to this account from new devices. Sign in from a device you "
    "have used before, or reset your password."
)
#: Only a browser where the account's current password was given sees this.
LOGIN_KNOWN_DEVICE_LIMITED = (
    "There have been too many wrong passwords for this account on this device. Wait 15 minutes "
    "and try again, or reset your password."
)


def _actor(user: User) -> str:
    return f"user:{user.pk}"


# --- Sign-up and log-in -------------------------------------------------------------------------


def account_register(
    *, email: str, forename: str, surname: str, password: str, ip: str = ""
) -> User:
    """A new parent account, its email not yet confirmed; the confirmation link is sent after
    commit. The username is the lower-cased address, so addresses are unique whatever the case."""
    address = normalise_email(email)
    if not address:
        raise AccountError("Enter an email address, like name@example.com.")
    if ip and not SIGNUP_PER_IP.hit(ip).allowed:
        raise TooManyRequests(
            "Too many accounts have been created from your connection. Try again in an hour."
        )
    if email_in_use(address):
        raise EmailTaken()
    try:
        with transaction.atomic():
            user = User.objects.create_user(
                username=address,
                email=address,
                password=password,
                first_name=clean_text(forename),
                last_name=clean_text(surname),
            )
            Parent.objects.create(user=user)
            user_id = user.pk
            transaction.on_commit(lambda: send_email_confirmation(user_id=user_id))
    except IntegrityError as exc:
        # Two sign-ups with one address at the same moment: the unique username decides.
        raise EmailTaken() from exc
    logger.info("account created: user=%s", user.pk)
    return user


def email_in_use(address: str, *, exclude_user_id: int | None = None) -> bool:
    users = User.objects.filter(Q(username__iexact=address) | Q(email__iexact=address))
    if exclude_user_id is not None:
        users = users.exclude(pk=exclude_user_id)
    return users.exists()


def _sleep(seconds: float) -> None:
    # A module attribute, so the tests of the pages replace it instead of waiting.
    time.sleep(seconds)


def account_identity(email: str) -> str:
    """The account an email typed at sign-in is checked against (its username): the normalised
    address, or the text as typed, stripped and lower-cased, when it is not an address. Limits and
    the known-device cookie (:mod:`homelink.ratelimit.devices`) are keyed by it."""
    return (normalise_email(email) or email).strip().lower()


def account_authenticate(
    *,
    request: HttpRequest,
    email: str,
    password: str,
    ip: str,
    known_device: bool,
    sleep: Callable[[float], None] | None = None,
) -> User | None:
    """The user for this email and password, or None: one answer for an unknown address and a
    wrong password. Raises :class:`TooManyRequests` when a limit refuses the attempt; nothing
    waits but the site-wide budget's delay (see :mod:`homelink.ratelimit.policies`).

    ``known_device``: the browser's cookie says this account has signed in on it with its current
    password (:func:`homelink.ratelimit.devices.is_known`). Then only the account's known-device
    limit applies, never an address's, so nobody on the owner's connection can keep them out.
    Otherwise the address's limits and the account's hard cap for new devices apply, counted for
    unknown emails too, so a refusal reveals nothing either.
    """
    account = account_identity(email)
    pair = f"{account} {ip}"
    # This browser's own count: nobody at another device the owner uses can reach it.
    device = devices.device_key(request, account)
    if known_device:
        refusal = None if LOGIN_KNOWN_DEVICE.hit(device).allowed else LOGIN_KNOWN_DEVICE_LIMITED
    # The address first: a refused address costs one statement and adds nothing to the account's
    # cap, so one address cannot use it all up alone.
    elif not limiter.hit_all((LOGIN_PER_IP, ip), (LOGIN_PER_ACCOUNT_IP, pair)).allowed:
        refusal = LOGIN_LIMITED
    elif not LOGIN_NEW_DEVICES.hit(account).allowed:
        refusal = LOGIN_NEW_DEVICES_LIMITED
    else:
        refusal = None
    delay = LOGIN_BUDGET.hit().delay
    if delay:
        # Before the password is checked and whatever it turns out to be.
        (sleep or _sleep)(delay)
    if refusal is not None:
        raise TooManyRequests(refusal)
    # ModelBackend hashes the password even for an unknown username, so the two answers also
    # take the same time.
    user = authenticate(request, username=account, password=password)
    if not isinstance(user, User):
        return None
    if known_device:
        LOGIN_KNOWN_DEVICE.reset(device)
    else:
        LOGIN_PER_ACCOUNT_IP.reset(pair)
        # Given back, not reset: the cap keeps counting an attacker's failures, and the owner
        # signing in on a new device does not hand them a fresh twenty.
        limiter.refund_all((LOGIN_NEW_DEVICES, account), (LOGIN_PER_IP, ip))
    return user


def login_limits_reset(*, user: User, request: HttpRequest | None = None) -> None:
    """After a password reset: the owner proved the mailbox, so the account's caps start again
    (its new devices' passwords and codes), and so does the count of the browser they reset on.
    Addresses that guessed stay refused until their own lock-outs end."""
    account = account_identity(user.get_username())
    LOGIN_NEW_DEVICES.reset(account)
    if request is not None:
        LOGIN_KNOWN_DEVICE.reset(devices.device_key(request, account))
    OTP_NEW_DEVICES.reset(f"user:{user.pk}")


# --- Email ---------------------------------------------------------------------------------------


#: What a change of address or number in flight keeps until it is confirmed.
PENDING_FIELDS = (
    "pending_email",
    "pending_mobile",
    "mobile_code_hash",
    "mobile_code_expires_at",
    "mobile_code_attempts",
)


def pending_changes_clear(parent: Parent) -> None:
    """Forget any change of address or number waiting for its link or code (the caller saves
    ``PENDING_FIELDS``). Done whenever the account's owner proves themselves afresh (a first
    confirmation, a password reset, an accepted invitation): a change asked for before may have
    been asked by someone else, and completed it would move the account to them."""
    parent.pending_email = ""
    parent.pending_mobile = ""
    parent.mobile_code_hash = ""
    parent.mobile_code_expires_at = None
    parent.mobile_code_attempts = 0


def password_reset_done(*, user: User, request: HttpRequest | None = None) -> None:
    """After a password reset by the mailbox's owner: earlier misses are forgiven and changes
    that were waiting are dropped (the confirmation links sent for them died with the old
    password too)."""
    login_limits_reset(user=user, request=request)
    with transaction.atomic():
        parent = Parent.objects.select_for_update().filter(user=user).first()
        if parent is not None:
            pending_changes_clear(parent)
            parent.save(update_fields=list(PENDING_FIELDS))


def _parent(user: User) -> Parent:
    parent, _ = Parent.objects.get_or_create(user=user)
    return parent


def email_to_confirm(parent: Parent) -> str:
    """The address a confirmation link is waiting for: a new one, or the first one, or ""."""
    if parent.pending_email:
        return parent.pending_email
    return "" if parent.email_verified_at else parent.user.email


def send_email_confirmation(*, user_id: int) -> None:
    """Send the confirmation link (called after commit, by id). Nothing to confirm: nothing sent."""
    parent = Parent.objects.select_related("user").filter(user_id=user_id).first()
    if parent is None:
        return
    address = email_to_confirm(parent)
    if not address:
        return
    token = tokens.make_email_token(
        user_id=user_id, email=address, password_hash=parent.user.password
    )
    link = settings.HOMELINK_PUBLIC_URL.rstrip("/") + reverse("confirm_email", args=[token])
    body = render_to_string(
        "accounts/email/confirm_email.txt",
        {"user": parent.user, "link": link, "change": bool(parent.pending_email)},
    )
    send_mail(CONFIRM_SUBJECT, body, None, [address])


def email_confirmation_resend(*, user: User) -> None:
    """Send the confirmation link again, a few times an hour at most."""
    parent = _parent(user)
    if not email_to_confirm(parent):
        raise AccountError("Your email address is already confirmed.")
    if not CONFIRM_RESEND_PER_ACCOUNT.hit(_actor(user)).allowed:
        raise TooManyRequests(
            "We have sent several emails in the last hour. Check your spam folder, or try again "
            "in an hour."
        )
    user_id = user.pk
    with transaction.atomic():
        transaction.on_commit(lambda: send_email_confirmation(user_id=user_id))


def email_change_request(*, user: User, new_email: str) -> bool:
    """Ask to replace the account's address: the new one is confirmed by a link before it
    replaces the old. Returns False when the address is the current one (nothing to do)."""
    address = normalise_email(new_email)
    if not address:
        raise AccountError("Enter an email address, like name@example.com.")
    with transaction.atomic():
        parent = Parent.objects.select_for_update().select_related("user").get(user=user)
        if address == parent.user.email.lower():
            # Going back to the current address cancels a change; nothing is sent.
            parent.pending_email = ""
            parent.save(update_fields=["pending_email"])
            return False
        if email_in_use(address, exclude_user_id=user.pk):
            raise AccountError("Another account uses that email address.")
        parent.pending_email = address
        parent.save(update_fields=["pending_email"])
        user_id = user.pk
        transaction.on_commit(lambda: send_email_confirmation(user_id=user_id))
    logger.info("email change requested: user=%s", user.pk)
    return True


def email_confirm(*, token: str, now: dt.datetime | None = None) -> User:
    """Follow a confirmation link: the first address is confirmed, or a new one replaces the old;
    either way the confirmed address is pushed to the account's adults in the register."""
    now = now or timezone.now()
    try:
        found = tokens.read_email_token(token)
    except tokens.TokenExpired as exc:
        raise ConfirmationFailed(
            "This link has expired: links work for 3 days. Log in and ask for a new one."
        ) from exc
    except tokens.TokenInvalid as exc:
        raise ConfirmationFailed(
            "This link is not complete. Copy the whole link from the email into your browser."
        ) from exc
    with transaction.atomic():
        parent = (
            Parent.objects.select_for_update()
            .select_related("user")
            .filter(user_id=found.user_id)
            .first()
        )
        if parent is None:
            raise ConfirmationFailed("This link is for an account that no longer exists.")
        user = parent.user
        if not found.same_password(user.password):
            raise ConfirmationFailed(
                "This link was sent before the account's password was changed, so it no longer "
                "works. Log in and ask for a new one."
            )
        if parent.pending_email and found.is_for(parent.pending_email):
            if email_in_use(parent.pending_email, exclude_user_id=user.pk):
                raise ConfirmationFailed("Another account now uses that email address.")
            user.email = user.username = parent.pending_email
            user.save(update_fields=["email", "username"])
            parent.pending_email = ""
        elif found.is_for(user.email):
            if parent.email_verified_at:
                return user  # a second click on the same link
            # The address is proved for the first time: any change of address or number asked
            # for before was asked by whoever held the account unproved, who may not be its owner.
            pending_changes_clear(parent)
        else:
            raise ConfirmationFailed(
                "This link is for an email address you have since changed. Use the newest link "
                "we sent you."
            )
        parent.email_verified_at = now
        parent.save(update_fields=["email_verified_at", *PENDING_FIELDS])
        _push_details(parent, fields=("email",))
    logger.info("email confirmed: user=%s", user.pk)
    return user


# --- Mobile --------------------------------------------------------------------------------------


def mobile_problem(raw: str) -> str:
    """Why ``raw`` cannot be used as a mobile, in plain English ("" when it can)."""
    if normalise_mobile(raw, MOBILE_REGION):
        return ""
    found = classify(raw, MOBILE_REGION)
    if found.kind == PhoneKind.NOT_MOBILE:
        return (
            f"That number is {found.reason}, not a mobile. Text messages can only go to a "
            "mobile number."
        )
    return "Enter a mobile number, like 07700 900123."


EMAIL_FIRST = (
    "Confirm your email address first: follow the link in the email we sent you. Then you can "
    "add your mobile number."
)
CODES_LIMITED = "We have sent several codes in the last hour. Wait an hour and try again."
DAY_CAP_REACHED = (
    "We cannot send more codes today. Try again tomorrow, or leave the mobile number for now."
)


def sms_countries() -> frozenset[str]:
    """The countries (ISO codes) whose mobiles the install sends verification codes to: the
    operators' HOMELINK_SMS_COUNTRIES (the United Kingdom unless set). Never a school's own
    setting: a school's administrator must not widen what the whole install pays to text. A code
    sent abroad costs more and earns fraudsters more."""
    return frozenset(code.upper() for code in settings.HOMELINK_SMS_COUNTRIES)


def mobile_country(e164: str) -> str:
    """The country (ISO code) of a mobile in E.164, as libphonenumber reads it. The fictional
    07700 9 range (invalid to libphonenumber, a mobile to homelink) is the United Kingdom's."""
    if is_fictional(e164):
        return "GB"
    number = parse(e164)
    found = region_code_for_number(number)
    if found in UK_REGIONS:
        # Jersey, Guernsey and the Isle of Man share +44 and UK networks: homelink reads their
        # mobiles as the UK's everywhere else (mis/phones.py), so it texts them as the UK's.
        return "GB"
    if found:
        return str(found)
    # A number libphonenumber does not know in detail: the main country of its calling code.
    return str(region_code_for_country_code(number.country_code or 0))


# Countries whose English name reads with "the" in a sentence.
_WITH_THE = frozenset({"AE", "BS", "CZ", "DO", "GB", "GM", "NL", "PH", "US"})


def _country_name(code: str) -> str:
    example = example_number_for_type(code, PhoneNumberType.MOBILE)
    # Imported here: the geocoder's data costs half a second and ~100 MB at start-up, for a
    # refusal few people see.
    from phonenumbers.geocoder import country_name_for_number

    name = (country_name_for_number(example, "en") if example else "") or code
    return f"the {name}" if code in _WITH_THE else name


def _countries_refused(allowed: frozenset[str]) -> str:
    if not allowed:
        return "We cannot send text messages yet. Leave the mobile number empty for now."
    names = sorted(_country_name(code) for code in allowed)
    listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
    return f"We can only send text messages to mobile numbers in {listed}."


def _code_hash(user_id: int, mobile: str, code: str) -> str:
    # Keyed and bound to the account and number: a leaked table gives nothing to brute-force
    # offline, and a code cannot be moved to another number.
    return salted_hmac(
        MOBILE_CODE_SALT, f"{user_id}:{mobile}:{code}", algorithm="sha256"
    ).hexdigest()


def _send_mobile_code(*, to: str, code: str) -> None:
    text = (
        f"Your homelink code is {code}. It works for 15 minutes. "
        "If you did not ask for it, ignore this message."
    )
    try:
        sms_gateway().send_sms(to=to, text=text)
    except GatewayError as exc:
        # The parent can ask for a new code; the number stays out of the log.
        logger.warning("mobile code not sent: retry=%s", exc.retry)


def mobile_code_send(
    *,
    user: User,
    raw_mobile: str,
    now: dt.datetime | None = None,
    sleep: Callable[[float], None] | None = None,
) -> str:
    """Text a six-digit code to a new mobile number; the number replaces the old one only once
    the code is typed back (:func:`mobile_confirm`). Returns the number in E.164.

    Each text is paid for, so one is sent only to an account whose email is confirmed (a real
    inbox per account, not a hundred scripted sign-ups), to a mobile in a country the install
    serves, within limits per account and per number, and under a site-wide budget that slows
    every text past it and tells the operators.
    """
    now = now or timezone.now()
    if not _parent(user).email_verified_at:
        raise MobileRefused(EMAIL_FIRST)
    problem = mobile_problem(raw_mobile)
    if problem:
        raise MobileRefused(problem)
    mobile = normalise_mobile(raw_mobile, MOBILE_REGION)
    allowed = sms_countries()
    if mobile_country(mobile) not in allowed:
        raise MobileRefused(_countries_refused(allowed))
    verdict = limiter.hit_all(
        (MOBILE_CODE_PER_ACCOUNT, _actor(user)), (MOBILE_CODE_PER_NUMBER, mobile), now=now
    )
    if not verdict.allowed:
        # One message for both limits: which one it was would say the number is in use.
        raise TooManyRequests(CODES_LIMITED)
    if not verify_sms_per_day().hit("install", now=now).allowed:
        # The hard cap: a rush of real parents stays far below it; a farm of confirmed accounts
        # on a catch-all domain does not, and the operators are told by the budget's emails.
        raise TooManyRequests(DAY_CAP_REACHED)
    delay = verify_sms_budget().hit(now=now).delay
    if delay:
        (sleep or _sleep)(delay)
    code = f"{secrets.randbelow(1_000_000):06d}"
    with transaction.atomic():
        parent = Parent.objects.select_for_update().get(user=user)
        parent.pending_mobile = mobile
        parent.mobile_code_hash = _code_hash(user.pk, mobile, code)
        parent.mobile_code_expires_at = now + MOBILE_CODE_TTL
        parent.mobile_code_attempts = 0
        parent.save(
            update_fields=[
                "pending_mobile",
                "mobile_code_hash",
                "mobile_code_expires_at",
                "mobile_code_attempts",
            ]
        )
        transaction.on_commit(lambda: _send_mobile_code(to=mobile, code=code))
    logger.info("mobile code sent: user=%s", user.pk)
    return mobile


def mobile_code_resend(
    *, user: User, now: dt.datetime | None = None, sleep: Callable[[float], None] | None = None
) -> str:
    """A fresh code for the number waiting to be confirmed (under the same rules)."""
    parent = _parent(user)
    if not parent.pending_mobile:
        raise MobileRefused("There is no number waiting to be confirmed. Enter your mobile first.")
    return mobile_code_send(user=user, raw_mobile=parent.pending_mobile, now=now, sleep=sleep)


@dataclass(frozen=True, slots=True)
class _Outcome:
    ok: bool
    message: str = ""


def mobile_confirm(*, user: User, code: str, now: dt.datetime | None = None) -> str:
    """Check the code typed back; the number becomes the account's (verified) mobile and is
    pushed to its adults. At most five tries per code, and only within 15 minutes."""
    now = now or timezone.now()
    typed = "".join(code.split())
    with transaction.atomic():
        parent = Parent.objects.select_for_update().get(user=user)
        if not parent.pending_mobile or not parent.mobile_code_hash:
            raise MobileRefused("There is no code waiting. Enter your mobile number again.")
        expired = (
            parent.mobile_code_expires_at is None
            or parent.mobile_code_expires_at <= now
            or parent.mobile_code_attempts >= MOBILE_CODE_ATTEMPTS
        )
        if expired:
            outcome = _Outcome(False, "That code no longer works. Ask for a new code.")
        elif constant_time_compare(
            parent.mobile_code_hash, _code_hash(user.pk, parent.pending_mobile, typed)
        ):
            outcome = _Outcome(True)
        else:
            # Saved, not rolled back: the refusal is raised after this transaction commits.
            parent.mobile_code_attempts += 1
            parent.save(update_fields=["mobile_code_attempts"])
            left = MOBILE_CODE_ATTEMPTS - parent.mobile_code_attempts
            outcome = _Outcome(
                False,
                "That code is not right. Check the text message and try again."
                if left
                else "That code is not right, and it no longer works. Ask for a new code.",
            )
        if outcome.ok:
            mobile = parent.pending_mobile
            _set_mobile(parent, mobile, verified_at=now)
    if not outcome.ok:
        raise MobileRefused(outcome.message)
    logger.info("mobile confirmed: user=%s", user.pk)
    return mobile


def mobile_remove(*, user: User) -> None:
    """The parent no longer wants texts at any number: the register's adults lose it too."""
    with transaction.atomic():
        parent = Parent.objects.select_for_update().get(user=user)
        _set_mobile(parent, "", verified_at=None)


def _set_mobile(parent: Parent, mobile: str, *, verified_at: dt.datetime | None) -> None:
    """The account's mobile from now on (or none), any code in flight cancelled, and every adult
    of the account told."""
    parent.mobile = mobile
    parent.mobile_verified_at = verified_at
    parent.pending_mobile = parent.mobile_code_hash = ""
    parent.mobile_code_expires_at = None
    parent.mobile_code_attempts = 0
    parent.save(
        update_fields=[
            "mobile",
            "mobile_verified_at",
            "pending_mobile",
            "mobile_code_hash",
            "mobile_code_expires_at",
            "mobile_code_attempts",
        ]
    )
    _push_details(parent, fields=("mobile",))


def _push_details(parent: Parent, *, fields: tuple[str, ...]) -> None:
    """Copy the account's verified email and/or mobile to every adult (and adult member) of the
    account: registered people own their details, so imports no longer change them."""
    values = {"email": parent.verified_email, "mobile": parent.verified_mobile}
    changes = {name: values[name] for name in fields}
    actor = f"user:{parent.user_id}"
    people: list[Adult | Member] = [
        *Adult.objects.select_for_update().select_related("school").filter(account=parent.user),
        *Member.objects.select_for_update().select_related("school").filter(account=parent.user),
    ]
    for person in people:
        changed = [name for name, value in changes.items() if getattr(person, name) != value]
        if not changed:
            continue
        for name in changed:
            setattr(person, name, changes[name])
        person.save(update_fields=[*changed, "updated_at"])
        audit_record(
            school=person.school,
            actor_label=actor,
            action="person.details_changed",
            obj=person,
            detail={"fields": changed, "by": "person"},
        )


# --- Preferences, links, opt-out, deletion -------------------------------------------------------

CHANNELS = ("both", "email", "sms")


def preferences_set(*, user: User, channels: str) -> int:
    """Email, SMS or both, on every adult of the account; returns how many adults changed."""
    if channels not in CHANNELS:
        raise ValueError(f"channels must be one of {CHANNELS}")
    email_off, sms_off = channels == "sms", channels == "email"
    changed = 0
    with transaction.atomic():
        adults = Adult.objects.select_for_update().select_related("school").filter(account=user)
        for adult in adults:
            if (adult.email_off, adult.sms_off) == (email_off, sms_off):
                continue
            adult.email_off, adult.sms_off = email_off, sms_off
            adult.save(update_fields=["email_off", "sms_off", "updated_at"])
            audit_record(
                school=adult.school,
                actor_label=_actor(user),
                action="adult.channels_set",
                obj=adult,
                detail={"email_off": email_off, "sms_off": sms_off, "by": "person"},
            )
            changed += 1
    return changed


def link_remove_by_adult(*, user: User, link_id: int) -> Member:
    """The parent unlinks themselves from a child. Only the account's own ``web`` links (an
    imported link the parent claimed with a letter is ``web`` too): links the school made are
    the school's to remove. Raises ``Link.DoesNotExist`` for any other link."""
    with transaction.atomic():
        link = (
            Link.objects.select_for_update()
            .select_related("student", "school")
            .get(pk=link_id, adult__account=user, source=Source.WEB)
        )
        audit_record(
            school=link.school,
            actor_label=_actor(user),
            action="link.removed",
            obj=link,
            detail={"source": link.source, "prime": link.prime, "by": "person"},
        )
        student = link.student
        link.delete()
    return student


def opt_out_set(*, user: User, opted_out: bool) -> int:
    """Opt out of everything (or back in) at every school: the person's own request, which only
    they can undo. Returns how many people in the register changed."""
    changed = 0
    with transaction.atomic():
        people: list[Adult | Member] = [
            *Adult.objects.select_for_update().select_related("school").filter(account=user),
            *Member.objects.select_for_update().select_related("school").filter(account=user),
        ]
        for person in people:
            if person.opted_out == opted_out:
                continue
            person_opt_out(
                person=person,
                opted_out=opted_out,
                actor=_actor(user),
                requested_by_person=True,
            )
            changed += 1
    return changed


def account_delete(*, user: User) -> None:
    """Delete the account. The register keeps what the school needs, minus the registration:
    adults the registration created (``web``) go with their links; adults from the MIS (or added
    by staff) stay, no longer registered, so the next import looks after their details again."""
    actor = _actor(user)
    with transaction.atomic():
        # A school's staff roles end through the console's own service, which keeps every school
        # with an administrator and records each removal.
        for membership in StaffMembership.objects.filter(user=user):
            try:
                staff_remove(membership=membership, actor=user)
            except ValidationError as exc:
                raise AccountError(
                    f"You are the only administrator of {membership.school.name}. Make someone "
                    "else an administrator on the console's Staff page first."
                ) from exc
        # So do a trust's: the trust keeps an administrator, and every school of it records it.
        from homelink.trusts.models import TrustMembership
        from homelink.trusts.services import trust_member_remove

        for trust_role in TrustMembership.objects.select_related("trust").filter(user=user):
            try:
                trust_member_remove(membership=trust_role, actor=user)
            except ValidationError as exc:
                raise AccountError(
                    f"You are the only administrator of the trust {trust_role.trust.name}. Make "
                    "someone else a trust administrator on the trust's Staff page first."
                ) from exc
        adults = Adult.objects.select_for_update().select_related("school").filter(account=user)
        for adult in adults:
            if adult.source == Source.WEB:
                audit_record(
                    school=adult.school,
                    actor_label=actor,
                    action="adult.removed",
                    obj=adult,
                    detail={"reason": "account deleted", "source": adult.source},
                )
                adult.delete()
            else:
                adult.account = None
                adult.registered = False
                adult.save(update_fields=["account", "registered", "updated_at"])
                audit_record(
                    school=adult.school,
                    actor_label=actor,
                    action="person.unregistered",
                    obj=adult,
                    detail={"reason": "account deleted"},
                )
        members = Member.objects.select_for_update().select_related("school").filter(account=user)
        for member in members:
            member.account = None
            member.registered = False
            member.save(update_fields=["account", "registered", "updated_at"])
            audit_record(
                school=member.school,
                actor_label=actor,
                action="person.unregistered",
                obj=member,
                detail={"reason": "account deleted"},
            )
        user_id = user.pk
        user.delete()
    logger.info("account deleted: user=%s", user_id)
