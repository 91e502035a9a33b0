"""Messages staff send, and one delivery row per recipient and channel (the durable outbox).

A :class:`Message` and all its :class:`Delivery` rows commit in one transaction; workers then
claim deliveries in batches, send them and record what the gateway said. A delivery's status only
ever moves forward (:data:`STATUS_RANK`): a late or repeated receipt cannot undo a later one.
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from homelink.register.models import Adult, Member
from homelink.schools.models import School


class Channel(models.TextChoices):
    SMS = "sms", "SMS"
    EMAIL = "email", "email"


class OutboxMessage(models.Model):
    """A message the local development outbox kept instead of sending it (the demo, tests and
    development never reach a phone network or a mailbox)."""

    Channel = Channel

    school = models.ForeignKey(School, null=True, blank=True, on_delete=models.CASCADE)
    channel = models.CharField(max_length=5, choices=Channel.choices)
    to = models.CharField(max_length=254)
    sender = models.CharField(max_length=254, blank=True)
    subject = models.CharField(max_length=255, blank=True)
    body = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.channel} {self.pk}"


class Template(models.Model):
    """A school's saved message, with merge fields (see :mod:`homelink.messaging.merge`)."""

    school = models.ForeignKey(School, on_delete=models.CASCADE, related_name="templates")
    name = models.CharField(max_length=100)
    subject = models.CharField(max_length=200, blank=True)
    email_body = models.TextField(blank=True)
    sms_text = models.TextField("SMS text", blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["school", "name"], name="template_unique_name")
        ]

    def __str__(self) -> str:
        return self.name


def new_message_key() -> str:
    return secrets.token_hex(8)


class Message(models.Model):
    """One send: what staff wrote, to whom, on which channels, and its progress."""

    class Mode(models.TextChoices):
        SMS = "sms", "SMS"
        EMAIL = "email", "email"
        BOTH = "both", "SMS and email"
        EMAIL_ELSE_SMS = "email_else_sms", "email, else SMS"

    class Kind(models.TextChoices):
        SCHOOL = "school", "school message"
        #: The school's privacy notice, sent to an adult from the MIS before anything else
        #: (``homelink.privacy.notices``): dispatch holds that adult's other copies until it
        #: has gone.
        NOTICE = "notice", "privacy notice"

    class Status(models.TextChoices):
        # Only what cannot be derived: whether it is scheduled follows from ``send_at``, and
        # how far it has got from its deliveries (``selectors.message_state``).
        QUEUED = "queued"
        CANCELLED = "cancelled"

    school = models.ForeignKey(School, on_delete=models.CASCADE, related_name="messages")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    #: Goes into every gateway idempotency key, so keys never repeat across installs.
    key = models.CharField(max_length=16, default=new_message_key, editable=False)
    mode = models.CharField(max_length=16, choices=Mode.choices)
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.SCHOOL)
    #: The audience as chosen (see :class:`homelink.messaging.audience.Audience`) and its summary.
    audience = models.JSONField(default=dict)
    audience_label = models.CharField(max_length=255, blank=True)
    subject = models.CharField(max_length=200, blank=True)
    email_body = models.TextField(blank=True)
    sms_text = models.TextField("SMS text", blank=True)
    sms_sender = models.CharField(max_length=11, blank=True)
    urgent = models.BooleanField(default=False)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    send_at = models.DateTimeField(help_text="When delivery may start.")
    created_at = models.DateTimeField(auto_now_add=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    cancelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    #: Counted when queued: deliveries per channel, SMS parts charged, students nobody reaches.
    sms_count = models.PositiveIntegerField(default=0)
    email_count = models.PositiveIntegerField(default=0)
    credits_charged = models.PositiveIntegerField(default=0)
    credits_refunded = models.PositiveIntegerField(default=0)
    unreachable_count = models.PositiveIntegerField(default=0)
    #: The trust-wide send this is a school's share of (``homelink.trusts.sending``).
    trust_message = models.ForeignKey(
        "TrustMessage", null=True, blank=True, on_delete=models.SET_NULL, related_name="messages"
    )
    #: The trust whose pool paid this message's SMS credits, to which refunds go back; None:
    #: the school paid (and is refunded).
    credits_trust = models.ForeignKey(
        "trusts.Trust", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["school", "-created_at"])]

    def __str__(self) -> str:
        return f"message {self.pk}"

    @property
    def scheduled(self) -> bool:
        """Whether its time to go has not come yet (it can still be cancelled whole)."""
        return self.status != self.Status.CANCELLED and self.send_at > timezone.now()


class TrustMessage(models.Model):
    """A trust-wide send (the snow day): one message to the families and staff of chosen
    schools of a trust, queued as one :class:`Message` per school (so each school's console
    shows what went to its families, and how it went), tied together here for the trust's own
    view. See :mod:`homelink.trusts.sending`."""

    trust = models.ForeignKey("trusts.Trust", on_delete=models.CASCADE, related_name="messages")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    mode = models.CharField(max_length=16, choices=Message.Mode.choices)
    audience = models.JSONField(default=dict)
    audience_label = models.CharField(max_length=255, blank=True)
    subject = models.CharField(max_length=200, blank=True)
    email_body = models.TextField(blank=True)
    sms_text = models.TextField("SMS text", blank=True)
    urgent = models.BooleanField(default=False)
    send_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    #: Whether the trust's pool of SMS credits paid (else each school paid its share).
    pool = models.BooleanField(default=False)
    #: Copies queued in all, per channel; credits charged (the notices' included).
    sms_count = models.PositiveIntegerField(default=0)
    email_count = models.PositiveIntegerField(default=0)
    credits_charged = models.PositiveIntegerField(default=0)
    #: Copies that stand for families of more than one of the schools (one number or address).
    shared_count = models.PositiveIntegerField(default=0)
    #: Each chosen school's figures as queued, in the order chosen: its URN, name, people,
    #: reached, left out by reason, copies, credits (:meth:`trusts.sending.SchoolShare.as_json`).
    summary = models.JSONField(default=list)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["trust", "-created_at"])]

    def __str__(self) -> str:
        return f"trust message {self.pk}"

    @property
    def total(self) -> int:
        return self.sms_count + self.email_count

    @property
    def scheduled(self) -> bool:
        return self.send_at > timezone.now()


class Status(models.TextChoices):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"
    BOUNCED = "bounced"
    #: Never sent: the message was cancelled, or the person opted out before a worker got to it.
    CANCELLED = "cancelled"
    SKIPPED = "skipped"


#: A status may only be replaced by one of higher rank. ``sending`` → ``queued`` (a lease that
#: ran out, a transient error) is the dispatcher's own step and does not go through this order.
STATUS_RANK = {
    Status.QUEUED: 0,
    Status.SENDING: 1,
    Status.SENT: 2,
    Status.DELIVERED: 3,
    Status.FAILED: 3,
    Status.BOUNCED: 3,
    Status.CANCELLED: 3,
    Status.SKIPPED: 3,
}
FINAL = frozenset(s for s, rank in STATUS_RANK.items() if rank == 3)


class Delivery(models.Model):
    """One copy of a message to one address or number: the unit workers claim and send."""

    Status = Status

    #: Claim order: urgent before bulk, then oldest first.
    URGENT, BULK = 0, 1

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="deliveries")
    school = models.ForeignKey(School, on_delete=models.CASCADE, related_name="+", db_index=False)
    channel = models.CharField(max_length=5, choices=Channel.choices)
    to = models.CharField(max_length=254)
    #: Who it is for (the first of them, when one number or address serves several people).
    adult = models.ForeignKey(
        Adult, null=True, blank=True, on_delete=models.SET_NULL, related_name="deliveries"
    )
    member = models.ForeignKey(
        Member, null=True, blank=True, on_delete=models.SET_NULL, related_name="deliveries"
    )
    #: Every adult this copy stands for (a shared phone), for the opt-out check in the claim.
    adult_ids = models.JSONField(default=list)
    #: The merge fields: whom it greets, the children it is about.
    name = models.CharField(max_length=255, blank=True)
    children = models.CharField(max_length=1000, blank=True)
    #: A copy of a trust-wide send that stands for families of several schools (one number or
    #: address): those schools, the one whose message it is first, each as ``{"id", "urn",
    #: "name", "adults": [ids], "members": [ids]}``. ``{school}`` names them all, and an email
    #: ends with each school's notice and stop link. None for a copy of one school.
    schools = models.JSONField(null=True, blank=True)
    parts = models.PositiveSmallIntegerField(default=0)
    priority = models.PositiveSmallIntegerField(default=BULK)
    #: Its place in the fair-share order among copies of the same channel and priority
    #: (``dispatch.lanes``): a message's copies take consecutive places starting where the
    #: queue's oldest due copy stands, so messages queued together are sent interleaved and
    #: one school's big send cannot hold another's small one. Empty until a scheduled
    #: message's time comes.
    lane = models.BigIntegerField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    next_attempt_at = models.DateTimeField()
    attempts = models.PositiveSmallIntegerField(default=0)
    #: Attempts the provider may have taken without answering (a timeout): one is retried,
    #: a second is not, so a slow provider sends it at most twice.
    unanswered = models.PositiveSmallIntegerField(default=0)
    #: Times in a row the provider refused it to slow us down (429): none costs an attempt,
    #: but a copy refused again and again (a provider's limit on one number) is not allowed to
    #: hold the whole gateway for ever.
    refused = models.PositiveSmallIntegerField(default=0)
    lease_until = models.DateTimeField(null=True, blank=True)
    claimed_by = models.CharField(max_length=32, blank=True)
    gateway = models.CharField(max_length=32, blank=True)
    gateway_id = models.CharField(max_length=100, blank=True)
    reason = models.CharField(max_length=255, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    status_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            # The claim: due work of one channel, urgent first, then in fair-share order.
            models.Index(
                fields=["channel", "priority", "lane", "id"],
                condition=Q(status="queued", lane__isnull=False),
                name="delivery_lane",
            ),
            # When there is next work (a retry's back-off, a scheduled send); and scheduled
            # copies whose time has come and need their places.
            models.Index(
                fields=["next_attempt_at"], condition=Q(status="queued"), name="delivery_next"
            ),
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(status="queued", lane__isnull=True),
                name="delivery_unplaced",
            ),
            models.Index(
                fields=["lease_until"], condition=Q(status="sending"), name="delivery_leased"
            ),
            models.Index(fields=["message", "status"], name="delivery_message_status"),
            models.Index(fields=["gateway_id"], name="delivery_gateway_id"),
            # An inbound text finds what was sent to its number, whichever school sent it.
            models.Index(fields=["to", "channel"], name="delivery_to"),
        ]

    def __str__(self) -> str:
        return f"delivery {self.pk}"

    @property
    def idempotency_key(self) -> str:
        return idempotency_key(self.message.key, self.pk)


def idempotency_key(message_key: str, delivery_id: int) -> str:
    """What a gateway passes on so that a repeated send is a no-op at the provider. The
    message's random key keeps keys unique across installs sharing one provider; the gateways
    read the delivery's id back out of it (``gateways.base.delivery_id_from_key``)."""
    return f"homelink-{message_key}-{delivery_id}"


class SmsBlock(models.Model):
    """A number that texted STOP (or a synonym) to a school: no SMS goes to it, whoever in the
    register has it now or later, until it texts START."""

    school = models.ForeignKey(School, on_delete=models.CASCADE, related_name="sms_blocks")
    number = models.CharField(max_length=16)
    keyword = models.CharField(max_length=16)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["school", "number"], name="smsblock_unique_number")
        ]

    def __str__(self) -> str:
        return f"SMS block {self.pk}"


class InboundSms(models.Model):
    """A text someone sent back: a keyword acted on, or a reply shown to staff."""

    school = models.ForeignKey(School, on_delete=models.CASCADE, related_name="inbound_sms")
    from_number = models.CharField(max_length=16)
    to_number = models.CharField(max_length=32, blank=True)
    text = models.TextField()
    #: ``stop``, ``start`` or empty for a reply.
    action = models.CharField(max_length=8, blank=True)
    gateway_id = models.CharField(max_length=100, blank=True)
    #: The message it most likely answers (the latest SMS sent to that number).
    in_reply_to = models.ForeignKey(
        Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="replies"
    )
    adult = models.ForeignKey(Adult, null=True, blank=True, on_delete=models.SET_NULL)
    member = models.ForeignKey(Member, null=True, blank=True, on_delete=models.SET_NULL)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["gateway_id"],
                condition=~Q(gateway_id=""),
                name="inboundsms_unique_gateway_id",
            )
        ]

    def __str__(self) -> str:
        return f"inbound SMS {self.pk}"


class GatewayHealth(models.Model):
    """The last success and the last failure of each gateway, for the dashboard."""

    gateway = models.CharField(max_length=32, unique=True)
    last_ok_at = models.DateTimeField(null=True, blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=255, blank=True)
    failures_in_row = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return self.gateway


class GatewayPace(models.Model):
    """The pace of one gateway, shared by every worker of the install: the next free sending
    slot and how long the provider asked everyone to wait (``dispatch.pacing``). Times are
    seconds since the epoch, as the workers' clocks give them."""

    gateway = models.CharField(max_length=32, unique=True)
    #: When the next slot is free: reserving ``n`` moves it on by ``n / rate``.
    free_at = models.FloatField(default=0.0)
    #: Nothing is sent before this (a 429's Retry-After, a back-off after an outage).
    hold_until = models.FloatField(default=0.0)
    #: Outages in a row: each doubles the back-off, a success clears it.
    strikes = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return self.gateway
