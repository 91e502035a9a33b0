"""Staff invitations: the only way a role at a school reaches an account.

A role is offered to an email address and given when the owner of that mailbox opens the
emailed link and accepts. Whoever registered the address first at /register/ gains nothing: the
console refuses an account whose email is not confirmed (:func:`~homelink.staff.selectors.
email_confirmed`), and the mailbox's owner, accepting, takes such an account over (a new
password, which ends its other sessions, and none of the authenticators its previous holder
enrolled).

What the person who opens the link is asked for depends on the account with that address:

- none: they choose a password; the account is made with its email confirmed (the link proves
  the mailbox);
- one whose email was never confirmed: they choose a new password, as above;
- one whose email is confirmed (or an operator's account): they sign in as it, then accept. A
  different account signed in is refused and nothing changes.

Tokens come from :mod:`secrets` and are kept only as a keyed hash (HMAC under ``SECRET_KEY``),
compared in constant time. A link works for seven days and once; sending again replaces it.

Each write is one transaction, recorded in the school's audit trail by ids and roles, never by
address. Mail goes out after commit, with links built from ``HOMELINK_PUBLIC_URL``.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import secrets
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac
from django_otp import devices_for_user

from homelink.accounts.models import Parent
from homelink.accounts.services import PENDING_FIELDS, pending_changes_clear
from homelink.audit.services import audit_record
from homelink.ratelimit.limiter import Policy
from homelink.register.identity import normalise_email
from homelink.schools.models import School
from homelink.staff.actor import Actor, actor_parts
from homelink.staff.models import StaffInvitation, StaffMembership
from homelink.staff.selectors import email_confirmed
from homelink.staff.services import role_checked

logger = logging.getLogger(__name__)

INVITATION_TTL = dt.timedelta(days=7)
#: Named for the module's first home: changing it would void every link already emailed.
HASH_SALT = "homelink.console.staff_invitation"
#: What :func:`secrets.token_urlsafe` (32 bytes) makes: anything else is not worth a lookup.
TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")

#: Opening invitation links from one address: a person opens theirs once or twice (each valid
#: token is refunded); a script trying tokens stops here, and waits an hour. With 256-bit
#: tokens this bounds only the noise, not a real chance of guessing.
INVITATION_PER_IP = Policy(
    "staff_invitation:ip", limit=20, window=dt.timedelta(hours=1), lockout=dt.timedelta(hours=1)
)


#: Invitations a school's administrators may send in a day (new, refreshed and sent again): a
#: school adds a handful of staff at a time, and an account that mails any address it likes,
#: with a school name it chose in the text, is a relay for spam and phishing.
INVITATIONS_PER_SCHOOL = Policy("staff_invitation:school", limit=30, window=dt.timedelta(days=1))
#: Sending one invitation again: a lost email is sent again once or twice.
RESENDS_PER_INVITATION = Policy("staff_invitation:resend", limit=3, window=dt.timedelta(days=1))
TOO_MANY_INVITATIONS = (
    "This school has sent a lot of invitations today. Try again tomorrow, or ask the site's "
    "operator to invite the person."
)


def _count_sending(actor: Actor, *checks: tuple[Policy, str]) -> None:
    """Count an invitation email against the console's limits (before the transaction, so a
    refusal still counts). The operator's command line is not limited."""
    if isinstance(actor, str):
        return
    for policy, identity in checks:
        if not policy.hit(identity).allowed:
            raise ValidationError(TOO_MANY_INVITATIONS)


class InvitationUnavailable(Exception):
    """Unknown, expired, revoked or already used: one answer for all of them."""


class SignInRequired(Exception):
    """The address belongs to an account with a confirmed email: its owner signs in first."""


class InvitationRefused(Exception):
    """A refusal with a message fit to show the person; nothing was changed."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


SIGNED_IN_AS_ANOTHER = (
    "You are signed in to homelink with a different account from the one this invitation is "
    "for. Sign out first, then open the link in the email again."
)


# --- Tokens and links ------------------------------------------------------------------------


def token_hash(token: str) -> str:
    return salted_hmac(HASH_SALT, token, algorithm="sha256").hexdigest()


def _new_token() -> tuple[str, str]:
    token = secrets.token_urlsafe(32)
    return token, token_hash(token)


def invitation_url(token: str) -> str:
    """The link to accept, on the public address (a request's Host header is the client's to
    choose, and behind a proxy says http)."""
    return settings.HOMELINK_PUBLIC_URL.rstrip("/") + reverse("staff_invitation", args=[token])


# --- Reading ---------------------------------------------------------------------------------


def open_invitations(school: School) -> list[StaffInvitation]:
    """The school's invitations not yet accepted or revoked (expired ones too: they can be
    sent again), by address."""
    return list(
        StaffInvitation.objects.filter(
            school=school, accepted_at__isnull=True, revoked_at__isnull=True
        ).order_by("email", "pk")
    )


def open_invitation_for(school: School, email: str) -> StaffInvitation | None:
    clean = normalise_email(email) or ""
    return (
        StaffInvitation.objects.filter(
            school=school, email=clean, accepted_at__isnull=True, revoked_at__isnull=True
        )
        .select_related("school")
        .first()
    )


def _usable(token: str, *, now: dt.datetime, lock: bool = False) -> StaffInvitation:
    if not TOKEN_RE.match(token):
        raise InvitationUnavailable
    hashed = token_hash(token)
    found = StaffInvitation.objects.select_related("school").filter(token_hash=hashed)
    if lock:
        found = found.select_for_update(of=("self",))
    invitation = found.first()
    if invitation is None or not invitation.is_open or invitation.expires_at <= now:
        raise InvitationUnavailable
    return invitation


def invitation_is_open(token: str, *, now: dt.datetime | None = None) -> bool:
    """Whether the token names an invitation that can still be accepted."""
    try:
        _usable(token, now=now or timezone.now())
    except InvitationUnavailable:
        return False
    return True


def _account_for(email: str, *, lock: bool = False) -> Any:
    """The account this address signs in as, or None. Usernames are the lower-cased address
    (accounts.services); an account an operator made by hand may only have the email."""
    users = get_user_model().objects.filter(Q(username__iexact=email) | Q(email__iexact=email))
    if lock:
        users = users.select_for_update()
    found = list(users.order_by("pk")[:2])
    if len(found) > 1:
        raise InvitationRefused(
            "More than one homelink account uses this email address, so the invitation cannot "
            "be accepted. Ask your school office to contact the site's operator."
        )
    return found[0] if found else None


def _must_sign_in(account: Any) -> bool:
    """Whether the owner signs in rather than choosing a new password. Operators' accounts
    are made by operators, never at /register/: they are never taken over from a link (their
    authenticator protects the admin)."""
    return bool(account.is_staff or account.is_superuser or email_confirmed(account))


@dataclass(frozen=True)
class Offer:
    """What an invitation link offers the person who opened it."""

    invitation: StaffInvitation
    #: The account with the invited address, if there is one.
    account: Any
    #: The owner signs in as ``account`` and accepts; otherwise they choose a password.
    must_sign_in: bool

    @property
    def reclaims(self) -> bool:
        """An account exists whose email was never confirmed: accepting replaces its
        password."""
        return self.account is not None and not self.must_sign_in


def invitation_offer(token: str, *, now: dt.datetime | None = None) -> Offer:
    """Raises :class:`InvitationUnavailable` or :class:`InvitationRefused`."""
    invitation = _usable(token, now=now or timezone.now())
    account = _account_for(invitation.email)
    if account is not None and not account.is_active:
        raise InvitationRefused(_SWITCHED_OFF)
    return Offer(
        invitation=invitation,
        account=account,
        must_sign_in=account is not None and _must_sign_in(account),
    )


_SWITCHED_OFF = (
    "The homelink account with this email address has been switched off, so the invitation "
    "cannot be accepted. Ask your school office to contact the site's operator."
)


# --- Inviting --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Invited:
    invitation: StaffInvitation
    #: The link, for the command line to print (the console never shows it: whoever opens it
    #: can make the account when the address has none).
    url: str


def _send_later(invitation: StaffInvitation, token: str) -> None:
    invitation_id = invitation.pk
    transaction.on_commit(lambda: _send(invitation_id, token))


def _send(invitation_id: int, token: str) -> None:
    """Email the link (after commit, by id). A failure is logged by id and kind only (an SMTP
    error can name the address); the invitation stays listed, to be sent again."""
    invitation = (
        StaffInvitation.objects.select_related("school")
        .filter(pk=invitation_id, accepted_at__isnull=True, revoked_at__isnull=True)
        .first()
    )
    if invitation is None or not constant_time_compare(invitation.token_hash, token_hash(token)):
        return  # withdrawn, or replaced by a newer link, before this one went out
    context = {
        "school_name": invitation.school.name,
        "role": invitation.get_role_display().lower(),
        "link": invitation_url(token),
        "expires_at": invitation.expires_at,
        "email": invitation.email,
    }
    subject = render_to_string("staff/invite_subject.txt", context).strip()
    body = render_to_string("staff/invite_email.txt", context)
    try:
        send_mail(subject, body, None, [invitation.email])
    except Exception as exc:  # any backend's failure: the page has answered already
        logger.warning("staff invitation %s not emailed: %s", invitation_id, type(exc).__name__)


def staff_invite(
    *, school: School, email: str, role: str, actor: Actor, now: dt.datetime | None = None
) -> Invited:
    """Invite an address to a role at the school, or refresh its open invitation (new link,
    new role, seven more days). The email goes out after commit.

    Nothing here looks for an account with the address: the answer, and the work done, are
    the same whether or not the address has an account anywhere on the install. Only this
    school's own staff are checked (its administrator sees them on the Staff page).
    """
    clean = normalise_email(email)
    if not clean:
        raise ValidationError("give the person's email address")
    checked_role = role_checked(role)
    label, actor_id = actor_parts(actor)
    now = now or timezone.now()
    _count_sending(actor, (INVITATIONS_PER_SCHOOL, str(school.pk)))
    token, hashed = _new_token()
    with transaction.atomic():
        # One invitation per address at a time: two administrators inviting the same address
        # at once refresh one row rather than one of them failing on the unique index.
        School.objects.select_for_update().filter(pk=school.pk).exists()
        current = (
            StaffMembership.objects.filter(school=school)
            .filter(Q(user__email__iexact=clean) | Q(user__username__iexact=clean))
            .first()
        )
        if current is not None:
            raise ValidationError(
                "this person is already on the staff here "
                f"({current.get_role_display().lower()}): change their role instead"
            )
        invitation = (
            StaffInvitation.objects.select_for_update()
            .filter(school=school, email=clean, accepted_at__isnull=True, revoked_at__isnull=True)
            .first()
        )
        refreshed = invitation is not None
        if invitation is None:
            invitation = StaffInvitation(school=school, email=clean)
        invitation.role = checked_role
        invitation.token_hash = hashed
        invitation.invited_by_id = actor_id
        invitation.sent_at = now
        invitation.expires_at = now + INVITATION_TTL
        invitation.save()
        audit_record(
            school=school,
            actor_label=label,
            actor_id=actor_id,
            action="staff.invited",
            obj=invitation,
            detail={"role": checked_role.value, "refreshed": refreshed},
        )
        _send_later(invitation, token)
    return Invited(invitation=invitation, url=invitation_url(token))


def _locked_open(invitation: StaffInvitation) -> StaffInvitation:
    """The invitation, row-locked, while it can still be sent again or withdrawn."""
    locked = (
        StaffInvitation.objects.select_for_update(of=("self",))
        .select_related("school")
        .get(pk=invitation.pk)
    )
    if not locked.is_open:
        raise ValidationError("this invitation has already been accepted or withdrawn")
    return locked


def invitation_resend(
    *, invitation: StaffInvitation, actor: Actor, now: dt.datetime | None = None
) -> Invited:
    """A new link for an open invitation (the old one stops working), for seven more days."""
    label, actor_id = actor_parts(actor)
    now = now or timezone.now()
    _count_sending(
        actor,
        (RESENDS_PER_INVITATION, str(invitation.pk)),
        (INVITATIONS_PER_SCHOOL, str(invitation.school_id)),
    )
    token, hashed = _new_token()
    with transaction.atomic():
        locked = _locked_open(invitation)
        locked.token_hash = hashed
        locked.sent_at = now
        locked.expires_at = now + INVITATION_TTL
        locked.save(update_fields=["token_hash", "sent_at", "expires_at"])
        audit_record(
            school=locked.school,
            actor_label=label,
            actor_id=actor_id,
            action="staff.invitation_resent",
            obj=locked,
            detail={"role": locked.role},
        )
        _send_later(locked, token)
    return Invited(invitation=locked, url=invitation_url(token))


def invitation_revoke(
    *, invitation: StaffInvitation, actor: Actor, now: dt.datetime | None = None
) -> StaffInvitation:
    """Withdraw an open invitation: its link stops working."""
    label, actor_id = actor_parts(actor)
    with transaction.atomic():
        locked = _locked_open(invitation)
        locked.revoked_at = now or timezone.now()
        locked.save(update_fields=["revoked_at"])
        audit_record(
            school=locked.school,
            actor_label=label,
            actor_id=actor_id,
            action="staff.invitation_revoked",
            obj=locked,
            detail={"role": locked.role},
        )
    return locked


# --- Accepting -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Accepted:
    user: Any
    membership: StaffMembership
    #: "new" (account made now), "reclaimed" (an unconfirmed account, now the mailbox
    #: owner's) or "existing" (signed in).
    account: str
    #: False when the account already had a role at the school (it keeps that role).
    added: bool


def _require_password(password: str | None, user: Any) -> str:
    if not password:
        raise ValidationError("Choose a password.")
    validate_password(password, user=user)
    return password


def _confirm_email(account: Any, now: dt.datetime) -> None:
    """The signed-in owner holds the link too: the address is theirs. A change of address or
    number still waiting was perhaps asked for by someone who held the account before its
    address was proved (their link, followed after this, would move the account and its new
    role to them), so it goes."""
    parent, _ = Parent.objects.select_for_update().get_or_create(user=account)
    if parent.email_verified_at is None:
        parent.email_verified_at = now
    pending_changes_clear(parent)
    parent.save(update_fields=["email_verified_at", *PENDING_FIELDS])


def _reclaim(account: Any, password: str, now: dt.datetime) -> int:
    """The mailbox's owner takes over an account whose email was never confirmed: whatever
    its previous holder started, typed or enrolled goes. Returns the authenticators removed."""
    account.set_password(password)  # other sessions end: their auth hash no longer matches
    # The previous holder's choice of name is not the owner's (the owner can give theirs).
    account.first_name = account.last_name = ""
    account.save(update_fields=["password", "first_name", "last_name"])
    parent, _ = Parent.objects.select_for_update().get_or_create(user=account)
    parent.email_verified_at = now
    pending_changes_clear(parent)
    # An unconfirmed account can have no adult in the register (linking needs a confirmed
    # email), so its mobile is the account's alone to drop.
    parent.mobile = ""
    parent.mobile_verified_at = None
    parent.save(
        update_fields=["email_verified_at", "mobile", "mobile_verified_at", *PENDING_FIELDS]
    )
    removed = 0
    for device in list(devices_for_user(account, confirmed=None)):
        device.delete()
        removed += 1
    return removed


def invitation_accept(
    *, token: str, user: Any, password: str | None = None, now: dt.datetime | None = None
) -> Accepted:
    """Accept an invitation from its link. ``user`` is who is signed in (or None);
    ``password`` the one chosen, where the account is new or reclaimed.

    Raises :class:`InvitationUnavailable`, :class:`SignInRequired`, :class:`InvitationRefused`
    or ``ValidationError`` (the password); in each case nothing has changed.
    """
    now = now or timezone.now()
    signed_in = user if getattr(user, "is_authenticated", False) else None
    try:
        with transaction.atomic():
            invitation = _usable(token, now=now, lock=True)
            email = invitation.email
            account = _account_for(email, lock=True)
            if signed_in is not None and (account is None or account.pk != signed_in.pk):
                raise InvitationRefused(SIGNED_IN_AS_ANOTHER)
            removed = 0
            if account is None:
                kind = "new"
                user_model = get_user_model()
                chosen = _require_password(password, user_model(username=email, email=email))
                account = user_model.objects.create_user(
                    username=email, email=email, password=chosen
                )
                Parent.objects.create(user=account, email_verified_at=now)
            elif not account.is_active:
                raise InvitationRefused(_SWITCHED_OFF)
            elif _must_sign_in(account):
                if signed_in is None:
                    raise SignInRequired
                kind = "existing"
                # Signed in, and holding the link: the account's owner has its mailbox too.
                _confirm_email(account, now)
            else:
                kind = "reclaimed"
                removed = _reclaim(account, _require_password(password, account), now)
            membership = StaffMembership.objects.filter(
                school=invitation.school, user=account
            ).first()
            added = membership is None
            if membership is None:
                membership = StaffMembership.objects.create(
                    school=invitation.school, user=account, role=invitation.role
                )
            invitation.accepted_at = now
            invitation.accepted_by = account
            invitation.save(update_fields=["accepted_at", "accepted_by"])
            audit_record(
                school=invitation.school,
                actor_label=f"user:{account.pk}",
                actor_id=account.pk,
                action="staff.added" if added else "staff.invitation_accepted",
                obj=membership,
                detail={
                    "role": membership.role,
                    "user_id": account.pk,
                    "invitation_id": invitation.pk,
                    "account": kind,
                    "authenticators_removed": removed,
                },
            )
    except IntegrityError as exc:
        # The address was registered at the same moment: the unique username decided.
        raise InvitationRefused(
            "Someone signed up with this email address at the same moment. Open the link in "
            "the email again."
        ) from exc
    logger.info("staff invitation %s accepted: user=%s", invitation.pk, account.pk)
    return Accepted(user=account, membership=membership, account=kind, added=added)
