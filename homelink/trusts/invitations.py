"""Trust staff invitations: the only way a trust role reaches an account, exactly as a school's
staff invitation is (:mod:`homelink.staff.invitations`, whose helpers this module uses).

A role in the trust (trust administrator, sender or viewer) is offered to an email address and
given when the owner of that mailbox opens the emailed link and accepts: they choose a password
(no account yet, or one whose email was never confirmed: the link proves the mailbox), or sign
in (an account with a confirmed email). The token comes from :mod:`secrets`, is kept only as a
keyed hash, works once and for seven days; sending again replaces it. Opening links counts
against the same per-address limit as school invitations; sending counts against a daily limit
per trust, and a resend against a limit per invitation (the operator's command line is not
limited).

Each write is one transaction, recorded in the trail of every school of the trust (these people
see its data) by ids and roles, never by address. Mail goes out after commit, by id, with links
built from ``HOMELINK_PUBLIC_URL``.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from homelink.accounts.models import Parent
from homelink.ratelimit.limiter import Policy
from homelink.register.identity import normalise_email
from homelink.staff.actor import Actor, actor_parts
from homelink.staff.invitations import (
    _SWITCHED_OFF,
    INVITATION_PER_IP,
    INVITATION_TTL,
    SIGNED_IN_AS_ANOTHER,
    TOKEN_RE,
    InvitationRefused,
    InvitationUnavailable,
    SignInRequired,
    _account_for,
    _confirm_email,
    _must_sign_in,
    _new_token,
    _reclaim,
    _require_password,
    token_hash,
)
from homelink.staff.services import role_checked
from homelink.trusts.models import Trust, TrustInvitation, TrustMembership
from homelink.trusts.selectors import trust_schools
from homelink.trusts.services import audit_trust

__all__ = [
    "INVITATIONS_PER_TRUST",
    "INVITATION_PER_IP",
    "INVITATION_TTL",
    "RESENDS_PER_TRUST_INVITATION",
    "SIGNED_IN_AS_ANOTHER",
    "InvitationRefused",
    "InvitationUnavailable",
    "SignInRequired",
    "TrustAccepted",
    "TrustInvited",
    "TrustOffer",
    "trust_invitation_accept",
    "trust_invitation_is_open",
    "trust_invitation_offer",
    "trust_invitation_resend",
    "trust_invitation_revoke",
    "trust_invitation_url",
    "trust_invite",
]

logger = logging.getLogger(__name__)

#: Invitations a trust's administrators may send in a day (new, refreshed and sent again): a
#: central team adds a handful of people at a time, and an account that can mail any address
#: with a name it chose in the text is a relay for spam and phishing.
INVITATIONS_PER_TRUST = Policy("trust_invitation:trust", limit=30, window=dt.timedelta(days=1))
#: Sending one invitation again: a lost email is sent again once or twice.
RESENDS_PER_TRUST_INVITATION = Policy(
    "trust_invitation:resend", limit=3, window=dt.timedelta(days=1)
)
TOO_MANY_INVITATIONS = (
    "This trust has sent a lot of invitations today. Try again tomorrow, or ask the site's "
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


def trust_invitation_url(token: str) -> str:
    """The link to accept, on the public address (never a request's Host header)."""
    return settings.HOMELINK_PUBLIC_URL.rstrip("/") + reverse(
        "console:trust_invitation", args=[token]
    )


def role_words(role: str) -> str:
    """ "trust administrator", "trust sender", "trust viewer"."""
    return f"trust {role_checked(role).label.lower()}"


# --- Reading -------------------------------------------------------------------------------------


def _usable(token: str, *, now: dt.datetime, lock: bool = False) -> TrustInvitation:
    if not TOKEN_RE.match(token):
        raise InvitationUnavailable
    found = TrustInvitation.objects.select_related("trust").filter(token_hash=token_hash(token))
    if lock:
        found = found.select_for_update(of=("self",))
    invitation = found.first()
    if invitation is None or not invitation.is_open or invitation.expires_at <= now:
        raise InvitationUnavailable
    return invitation


def trust_invitation_is_open(token: str, *, now: dt.datetime | None = None) -> bool:
    try:
        _usable(token, now=now or timezone.now())
    except InvitationUnavailable:
        return False
    return True


@dataclass(frozen=True)
class TrustOffer:
    """What a trust invitation's link offers the person who opened it."""

    invitation: TrustInvitation
    account: Any
    must_sign_in: bool

    @property
    def reclaims(self) -> bool:
        return self.account is not None and not self.must_sign_in


def trust_invitation_offer(token: str, *, now: dt.datetime | None = None) -> TrustOffer:
    """Raises :class:`InvitationUnavailable` or :class:`InvitationRefused`."""
    invitation = _usable(token, now=now or timezone.now())
    account = _account_for(invitation.email)
    if account is not None and not account.is_active:
        raise InvitationRefused(_SWITCHED_OFF)
    return TrustOffer(
        invitation=invitation,
        account=account,
        must_sign_in=account is not None and _must_sign_in(account),
    )


# --- Inviting ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrustInvited:
    invitation: TrustInvitation
    #: For the command line to print (the console never shows it).
    url: str


def _send_later(invitation: TrustInvitation, token: str) -> None:
    invitation_id = invitation.pk
    transaction.on_commit(lambda: _send(invitation_id, token))


def _send(invitation_id: int, token: str) -> None:
    """Email the link (after commit, by id). A failure is logged by id and kind only; the
    invitation stays listed, to be sent again."""
    invitation = (
        TrustInvitation.objects.select_related("trust")
        .filter(pk=invitation_id, accepted_at__isnull=True, revoked_at__isnull=True)
        .first()
    )
    if invitation is None or not constant_time_compare(invitation.token_hash, token_hash(token)):
        return  # withdrawn, or replaced by a newer link, before this one went out
    schools = list(trust_schools(invitation.trust).values_list("name", flat=True))
    context = {
        "trust_name": invitation.trust.name,
        "role": role_words(invitation.role),
        "schools": schools,
        "link": trust_invitation_url(token),
        "expires_at": invitation.expires_at,
        "email": invitation.email,
    }
    subject = render_to_string("trusts/invite_subject.txt", context).strip()
    body = render_to_string("trusts/invite_email.txt", context)
    try:
        send_mail(subject, body, None, [invitation.email])
    except Exception as exc:  # any backend's failure: the page has answered already
        logger.warning("trust invitation %s not emailed: %s", invitation_id, type(exc).__name__)


def trust_invite(
    *, trust: Trust, email: str, role: str, actor: Actor, now: dt.datetime | None = None
) -> TrustInvited:
    """Invite an address to a role in the trust, or refresh its open invitation (new link, new
    role, seven more days). The email goes out after commit. The answer is the same whether or
    not the address has an account anywhere on the install; only the trust's own staff are
    checked (its administrators see them on the trust's Staff page)."""
    clean = normalise_email(email)
    if not clean:
        raise ValidationError("give the person's email address")
    checked = role_checked(role)
    label, actor_id = actor_parts(actor)
    now = now or timezone.now()
    _count_sending(actor, (INVITATIONS_PER_TRUST, str(trust.pk)))
    token, hashed = _new_token()
    with transaction.atomic():
        # One open invitation per address: two administrators inviting it at once refresh one.
        Trust.objects.select_for_update().filter(pk=trust.pk).exists()
        current = (
            TrustMembership.objects.filter(trust=trust)
            .filter(Q(user__email__iexact=clean) | Q(user__username__iexact=clean))
            .first()
        )
        if current is not None:
            raise ValidationError(
                f"this person is already on the trust's staff ({role_words(current.role)}): "
                "change their role instead"
            )
        invitation = (
            TrustInvitation.objects.select_for_update()
            .filter(trust=trust, email=clean, accepted_at__isnull=True, revoked_at__isnull=True)
            .first()
        )
        refreshed = invitation is not None
        if invitation is None:
            invitation = TrustInvitation(trust=trust, email=clean)
        invitation.role = checked
        invitation.token_hash = hashed
        invitation.invited_by_id = actor_id
        invitation.sent_at = now
        invitation.expires_at = now + INVITATION_TTL
        invitation.save()
        audit_trust(
            trust_schools(trust),
            actor=actor,
            action="trust.staff_invited",
            obj=invitation,
            detail={"trust_id": trust.pk, "role": checked.value, "refreshed": refreshed},
        )
        _send_later(invitation, token)
    logger.info("trust %s: invitation %s sent by %s", trust.pk, invitation.pk, label)
    return TrustInvited(invitation=invitation, url=trust_invitation_url(token))


def _locked_open(invitation: TrustInvitation) -> TrustInvitation:
    locked = (
        TrustInvitation.objects.select_for_update(of=("self",))
        .select_related("trust")
        .get(pk=invitation.pk)
    )
    if not locked.is_open:
        raise ValidationError("this invitation has already been accepted or withdrawn")
    return locked


def trust_invitation_resend(
    *, invitation: TrustInvitation, actor: Actor, now: dt.datetime | None = None
) -> TrustInvited:
    """A new link for an open invitation (the old one stops working), for seven more days."""
    now = now or timezone.now()
    _count_sending(
        actor,
        (RESENDS_PER_TRUST_INVITATION, str(invitation.pk)),
        (INVITATIONS_PER_TRUST, str(invitation.trust_id)),
    )
    token, hashed = _new_token()
    with transaction.atomic():
        locked = _locked_open(invitation)
        locked.token_hash = hashed
        locked.sent_at = now
        locked.expires_at = now + INVITATION_TTL
        locked.save(update_fields=["token_hash", "sent_at", "expires_at"])
        audit_trust(
            trust_schools(locked.trust),
            actor=actor,
            action="trust.staff_invitation_resent",
            obj=locked,
            detail={"trust_id": locked.trust_id, "role": locked.role},
        )
        _send_later(locked, token)
    return TrustInvited(invitation=locked, url=trust_invitation_url(token))


def trust_invitation_revoke(
    *, invitation: TrustInvitation, actor: Actor, now: dt.datetime | None = None
) -> TrustInvitation:
    """Withdraw an open invitation: its link stops working."""
    with transaction.atomic():
        locked = _locked_open(invitation)
        locked.revoked_at = now or timezone.now()
        locked.save(update_fields=["revoked_at"])
        audit_trust(
            trust_schools(locked.trust),
            actor=actor,
            action="trust.staff_invitation_revoked",
            obj=locked,
            detail={"trust_id": locked.trust_id, "role": locked.role},
        )
    return locked


# --- Accepting -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrustAccepted:
    user: Any
    membership: TrustMembership
    #: "new", "reclaimed" or "existing", as for a school's invitation.
    account: str
    #: False when the account was on the trust's staff already (it keeps that role).
    added: bool


def trust_invitation_accept(
    *, token: str, user: Any, password: str | None = None, now: dt.datetime | None = None
) -> TrustAccepted:
    """Accept a trust invitation from its link. ``user`` is who is signed in (or None);
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
                _confirm_email(account, now)
            else:
                kind = "reclaimed"
                removed = _reclaim(account, _require_password(password, account), now)
            trust = invitation.trust
            membership = TrustMembership.objects.filter(trust=trust, user=account).first()
            added = membership is None
            if membership is None:
                membership = TrustMembership.objects.create(
                    trust=trust, user=account, role=invitation.role
                )
            invitation.accepted_at = now
            invitation.accepted_by = account
            invitation.save(update_fields=["accepted_at", "accepted_by"])
            audit_trust(
                trust_schools(trust),
                actor=account,
                action="trust.staff_added" if added else "trust.staff_invitation_accepted",
                obj=membership,
                detail={
                    "trust_id": trust.pk,
                    "role": membership.role,
                    "user_id": account.pk,
                    "invitation_id": invitation.pk,
                    "account": kind,
                    "authenticators_removed": removed,
                },
            )
    except IntegrityError as exc:
        raise InvitationRefused(
            "Someone signed up with this email address at the same moment. Open the link in "
            "the email again."
        ) from exc
    logger.info("trust invitation %s accepted: user=%s", invitation.pk, account.pk)
    return TrustAccepted(user=account, membership=membership, account=kind, added=added)
