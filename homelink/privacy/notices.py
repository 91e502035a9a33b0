"""The school's privacy notice: its versions, who was shown or sent which, and the first-contact
notice that goes to every adult from the MIS before the school's first message reaches them.

**Versions.** A school's notice starts as :func:`default_text` (its name as controller, what is
held, why, how long, rights, how to opt out, its data protection officer once the school enters
one). Each save in the console is a new :class:`PrivacyNotice`; old versions stay readable.

**Receipts.** A :class:`NoticeReceipt` says which version an adult (or a parent's account) was
shown on the web site, or sent by email or SMS — then it points at the delivery that carried it,
whose status says whether and when it went.

**First contact.** An adult who came from the MIS (``Adult.source == import``) and has never been
told (no receipt shown, sent or on its way) is *untold*. :func:`first_contact_queue` — called by
``message_send`` in the transaction that queues the school's message, and by ``homelink privacy
notify`` and the console's button — queues the current notice to each untold adult as its own
message (``Message.Kind.NOTICE``: email if they have an address, else a short SMS with a link),
urgent, in the same outbox as everything else. Dispatch holds every other copy for an adult
who was sent a notice until it has gone (``messaging.dispatch._wait_for_notices``), so the notice
reaches them first whichever worker or channel takes what. A notice that could not be delivered
(refused, bounced, given up on) tells nobody: :func:`notice_retry` queues it once more on the
adult's other channel if they have one, else their held copies are skipped (:data:`NOT_TOLD`),
so a school message never reaches an adult who was not told. An adult who stops messages from
the notice's link is opted out, so the claim skips their waiting copies.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.utils import timezone

from homelink.audit.services import audit_record
from homelink.messaging import merge
from homelink.messaging.audience import Audience, blocked_numbers
from homelink.messaging.models import Channel, Delivery, Message
from homelink.messaging.sms import sms_size
from homelink.privacy.models import NoticeReceipt, PrivacyNotice
from homelink.privacy.tokens import ADULT, StopToken, stop_url
from homelink.register.models import Adult, Member, Source
from homelink.register.services import person_opt_out
from homelink.schools.models import School
from homelink.staff.actor import Actor, actor_parts

#: Longest notice text the console accepts (a notice is a page, not a book).
MAX_TEXT = 20_000
#: In the SMS notice: ``{link}`` becomes the adult's own page (the notice and a stop button).
LINK = "{link}"
SMS_TEXT = "{school} uses your contact details to send you school messages. Privacy notice and opt-out: {link}"
EMAIL_SUBJECT = "How {school} uses your contact details"
EMAIL_INTRO = (
    "Dear {name},\n\n"
    "{school} keeps your name and contact details from its school records so that it can "
    "send you messages about school matters through homelink. Before it sends you anything, "
    "here is its privacy notice (version {version}, {date}).\n\n"
    "If you do not want any messages from the school this way, follow the link to stop "
    "messages at the end of this email.\n\n"
    "----------------------------------------------------------------------\n\n"
)

#: Delivery statuses of a notice that count as told (or about to be).
TOLD = (
    Delivery.Status.QUEUED,
    Delivery.Status.SENDING,
    Delivery.Status.SENT,
    Delivery.Status.DELIVERED,
)


def default_text(school: School) -> str:
    """The notice a school starts from: what homelink holds for it and why, stated plainly, with
    the retention defaults of the README."""
    return f"""Privacy notice: messages from {school.name}

Who is responsible for your details
{school.name} is the data controller for the details described here. It uses homelink, a school communication system, to keep them and send its messages; homelink processes them only on the school's instructions (it is the school's data processor).

What we hold
Only names and contact details: your name, email address and mobile number, which children at the school you are linked to and how (for example mother, carer, prime contact), whether you have opted out or turned off email or text messages, and the messages sent to you with whether they arrived. These come from the school's own records (its management information system) and from what you enter yourself if you register on the web site. No other information from the school's records (such as health, special educational needs, free school meals or attendance) is copied into homelink.

Why
So that the school can contact you about school matters: closures, trips, reminders, events and news about your child. This is part of the school's public task of educating your child. Your details are not sold, shared with advertisers or used for anything else.

How long we keep them
Details of families who have left the school: 12 months after leaving. Messages and their delivery records: 24 months. The record of who changed or looked at details (the audit trail): 6 years. Details of current pupils' families are kept while they are at the school.

Your rights
You can ask the school for a copy of the details it holds about you (a subject access request: answered within one month), ask it to correct them, or ask it to delete them. You can object to being contacted this way. If you are unhappy with how the school uses your details, contact its data protection officer, and you may complain to the Information Commissioner's Office: ico.org.uk, 0303 123 1113.

How to opt out
Follow the "stop messages" link at the end of any email from the school, or in the text message that sent you this notice. If you have registered, you can opt out, or choose only email or only text messages, on your account page. You can reply STOP to a text message to stop texts to that number. Or tell the school office.

Data protection officer
[The school's data protection officer: name, email address and postal address]
"""


# --- versions -------------------------------------------------------------------------------------


def notice_current(school: School) -> PrivacyNotice:
    """The school's notice as it is now; a school that never edited it has the default text,
    saved as version 1 the first time anyone asks (receipts must name a version)."""
    found = PrivacyNotice.objects.filter(school=school).order_by("-version").first()
    if found is not None:
        return found
    try:
        with transaction.atomic():
            return PrivacyNotice.objects.create(school=school, version=1, text=default_text(school))
    except IntegrityError:
        # Two first readers at once: the other wrote version 1.
        return PrivacyNotice.objects.filter(school=school).order_by("-version").first()  # type: ignore[return-value]


def notice_versions(school: School) -> QuerySet[PrivacyNotice]:
    return PrivacyNotice.objects.filter(school=school).select_related("published_by")


def notice_publish(*, school: School, text: str, actor: Actor) -> PrivacyNotice:
    """Save ``text`` as the school's new version; the earlier ones stay as they were."""
    text = text.replace("\r\n", "\n").strip()
    if not text:
        raise ValidationError({"text": "Write the notice."})
    if len(text) > MAX_TEXT:
        raise ValidationError({"text": f"A notice can be at most {MAX_TEXT:,} characters."})
    label, actor_id = actor_parts(actor)
    with transaction.atomic():
        # The school's row orders two saves at once: each gets its own version number.
        School.objects.select_for_update().filter(pk=school.pk).first()
        current = notice_current(school)
        if current.text == text:
            raise ValidationError({"text": "This is the current notice already: change it first."})
        notice = PrivacyNotice.objects.create(
            school=school, version=current.version + 1, text=text, published_by_id=actor_id
        )
        audit_record(
            school=school,
            actor_label=label,
            actor_id=actor_id,
            action="privacy.notice_published",
            obj=notice,
            detail={"version": notice.version},
        )
    return notice


def notice_shown(
    *,
    school: School,
    notice: PrivacyNotice,
    adult: Adult | None = None,
    account_id: int | None = None,
) -> bool:
    """Record that a parent was shown ``notice`` on the web site (once per version and person).
    Returns whether a receipt was written."""
    if adult is None and account_id is None:
        return False
    with transaction.atomic():
        seen = NoticeReceipt.objects.filter(
            school=school, notice=notice, how=NoticeReceipt.How.SHOWN
        )
        seen = seen.filter(adult=adult) if adult is not None else seen.filter(account_id=account_id)
        if seen.exists():
            return False
        NoticeReceipt.objects.create(
            school=school,
            notice=notice,
            adult=adult,
            account_id=account_id,
            how=NoticeReceipt.How.SHOWN,
        )
    return True


def account_notice_seen(*, school: School, account_id: int) -> bool:
    """Whether this account was shown the school's current notice already."""
    notice = notice_current(school)
    return NoticeReceipt.objects.filter(
        notice=notice, account_id=account_id, how=NoticeReceipt.How.SHOWN
    ).exists()


# --- who has been told ------------------------------------------------------------------------------


def _told(school: School) -> Exists:
    return Exists(
        NoticeReceipt.objects.filter(school=school, adult=OuterRef("pk")).filter(
            Q(how=NoticeReceipt.How.SHOWN)
            | Q(delivery__isnull=True)  # its copy has gone with the retention of messages
            | Q(delivery__status__in=TOLD)
        )
    )


def untold_adults(school: School) -> QuerySet[Adult]:
    """Adults from the MIS never shown or sent the notice (nor with one on its way), whom the
    school may contact (not opted out, not held for review)."""
    return (
        Adult.objects.filter(school=school, source=Source.IMPORT, opted_out=False, held=False)
        .exclude(_told(school))
        .order_by("pk")
    )


def untold_count(school: School) -> int:
    return untold_adults(school).count()


def enabled() -> bool:
    """Whether a send queues the notice to the untold adults it reaches (the server's
    ``HOMELINK_FIRST_CONTACT_NOTICE``, on by default)."""
    return bool(settings.HOMELINK_FIRST_CONTACT_NOTICE)


@dataclass(frozen=True)
class NoticeCopy:
    """One adult's copy of the notice (the shape ``messaging.services.insert_deliveries``
    takes)."""

    channel: str
    to: str
    adult_id: int
    name: str
    parts: int = 0

    @property
    def adult_ids(self) -> list[int]:
        return [self.adult_id]

    @property
    def member_ids(self) -> list[int]:
        return []

    @property
    def children(self) -> str:
        return ""


@dataclass
class NoticePlan:
    """Who would be sent the notice, and how: one copy per untold adult."""

    copies: list[NoticeCopy] = field(default_factory=list)
    #: Untold adults with neither an address nor a mobile the school may use.
    unreachable: int = 0

    @property
    def email(self) -> int:
        return sum(1 for c in self.copies if c.channel == Channel.EMAIL)

    @property
    def sms(self) -> int:
        return sum(1 for c in self.copies if c.channel == Channel.SMS)

    @property
    def credits(self) -> int:
        return sum(c.parts for c in self.copies)

    def as_json(self) -> dict[str, int]:
        return {
            "email": self.email,
            "sms": self.sms,
            "credits": self.credits,
            "unreachable": self.unreachable,
        }


def sms_text_for(school: School, adult_id: int) -> str:
    """The notice's SMS to one adult, as it is sent."""
    text = merge.render(SMS_TEXT, name="", children="", school=school.name)
    return text.replace(LINK, stop_url(ADULT, adult_id))


def first_contact_plan(school: School, adult_ids: Iterable[int] | None = None) -> NoticePlan:
    """The notice's copies for the school's untold adults (only those among ``adult_ids`` when
    given): email where the adult has an address, else SMS to a mobile that takes texts."""
    plan = NoticePlan()
    wanted = None if adult_ids is None else set(adult_ids)
    if wanted is not None and not wanted:
        return plan
    rows = untold_adults(school).values_list(
        "pk", "forename", "surname", "email", "mobile", "email_off", "sms_off"
    )
    blocked: set[str] | None = None
    for pk, forename, surname, email, mobile, email_off, sms_off in rows.iterator(2000):
        if wanted is not None and pk not in wanted:
            continue
        name = f"{forename} {surname}".strip()
        if email and not email_off:
            plan.copies.append(NoticeCopy(Channel.EMAIL, email.lower(), pk, name))
            continue
        if blocked is None:
            blocked = blocked_numbers(school)
        if mobile and not sms_off and mobile not in blocked:
            parts = sms_size(sms_text_for(school, pk)).parts
            plan.copies.append(NoticeCopy(Channel.SMS, mobile, pk, name, parts))
            continue
        plan.unreachable += 1
    return plan


class NotEnoughCreditsForNotice(ValidationError):
    def __init__(self, needed: int, available: int) -> None:
        self.needed = needed
        self.available = available
        super().__init__(
            f"The privacy notice needs {needed:,} SMS credits and the school has "
            f"{available:,}: buy more credits first."
        )


def first_contact_queue(
    *,
    school: School,
    actor: Actor,
    via: str,
    adult_ids: Iterable[int] | None = None,
) -> Message | None:
    """Queue the current notice to the school's untold adults (among ``adult_ids`` when given)
    as one message, and a receipt per copy. Call inside the transaction that queues what must
    follow it (``message_send``), or alone. Returns the message, or None when nobody needs it.

    The school's row is locked first, so two sends at once tell each adult once; the SMS
    credits are charged in this transaction and never go negative."""
    with transaction.atomic():
        locked = School.objects.select_for_update().get(pk=school.pk)
        plan = first_contact_plan(locked, adult_ids)
        if not plan.copies:
            return None
        message = _queue(locked, plan, actor=actor, via=via, label="adults not yet told")
    if plan.credits:
        school.sms_credits = locked.sms_credits
    return message


def _queue(locked: School, plan: NoticePlan, *, actor: Actor, via: str, label: str) -> Message:
    """Queue ``plan`` as one notice message with a receipt per copy, charging its SMS credits
    (``locked``: the school's row, locked by the caller; its credits are updated)."""
    from homelink.messaging.services import insert_deliveries  # messaging calls this module

    actor_label, actor_id = actor_parts(actor)
    credits = plan.credits
    if credits:
        charged = School.objects.filter(pk=locked.pk, sms_credits__gte=credits).update(
            sms_credits=F("sms_credits") - credits
        )
        if not charged:
            raise NotEnoughCreditsForNotice(credits, locked.sms_credits)
        locked.sms_credits -= credits
    notice = notice_current(locked)
    now = timezone.now()
    message = Message.objects.create(
        school=locked,
        created_by_id=actor_id,
        kind=Message.Kind.NOTICE,
        mode=Message.Mode.EMAIL_ELSE_SMS,
        audience=Audience(
            who="individuals", adult_ids=tuple(c.adult_id for c in plan.copies)
        ).to_json(),
        audience_label=f"Privacy notice (version {notice.version}): {label}",
        subject=EMAIL_SUBJECT.replace("{school}", locked.name),
        email_body=_email_body(locked, notice),
        sms_text=SMS_TEXT.replace("{school}", locked.name),
        sms_sender=locked.sms_sender,
        urgent=True,
        send_at=now,
        sms_count=plan.sms,
        email_count=plan.email,
        credits_charged=credits,
    )
    insert_deliveries(
        message=message,
        copies=plan.copies,
        parts=[c.parts for c in plan.copies],
        priority=Delivery.URGENT,
    )
    hows: dict[str, str] = {
        Channel.EMAIL: NoticeReceipt.How.EMAIL,
        Channel.SMS: NoticeReceipt.How.SMS,
    }
    NoticeReceipt.objects.bulk_create(
        NoticeReceipt(
            school=locked,
            notice=notice,
            adult_id=adult_id,
            how=hows[channel],
            delivery_id=delivery_id,
        )
        for delivery_id, adult_id, channel in Delivery.objects.filter(message=message).values_list(
            "pk", "adult_id", "channel"
        )
    )
    audit_record(
        school=locked,
        actor_label=actor_label,
        actor_id=actor_id,
        action="privacy.notice_queued",
        obj=message,
        detail={"via": via, "version": notice.version, **plan.as_json()},
    )
    message_id = message.pk
    transaction.on_commit(lambda: _wake(message_id))
    return message


def _email_body(school: School, notice: PrivacyNotice) -> str:
    date = timezone.localtime(notice.published_at).date()
    intro = EMAIL_INTRO.replace("{school}", school.name)
    intro = intro.replace("{version}", str(notice.version)).replace("{date}", _long_date(date))
    # Rendered per copy like any message: {name} greets the adult, and a school that wrote
    # {school} in its notice gets its name there.
    return intro + notice.text


def _long_date(day: dt.date) -> str:
    return f"{day.day} {day:%B %Y}"


def _wake(message_id: int) -> None:
    from homelink.messaging.tasks import wake_for_message

    wake_for_message(message_id)


@dataclass(frozen=True)
class NotifyResult:
    """What ``homelink privacy notify`` and the console's button did (or, dry, would do)."""

    untold: int
    plan: NoticePlan
    message: Message | None


def notify_untold(*, school: School, actor: Actor, via: str, dry_run: bool = False) -> NotifyResult:
    """Send the notice to everyone at the school not yet told (dry: only count them). Works
    with the automatic first-contact notice turned off too: the school sends it when it
    chooses."""
    untold = untold_count(school)
    if dry_run:
        return NotifyResult(untold, first_contact_plan(school), None)
    with transaction.atomic():
        plan = first_contact_plan(school)
        message = first_contact_queue(school=school, actor=actor, via=via)
    return NotifyResult(untold, plan, message)


# --- a notice that could not be delivered -------------------------------------------------------


#: Why a copy of the school's message is not sent: its adult could not be told first.
NOT_TOLD = "not sent: the privacy notice could not be delivered to them first"
#: Who queues a notice again on an adult's other channel (a worker, not a member of staff).
RETRY_ACTOR = "privacy notice: other channel"
#: A notice's copy in one of these has told its adult (receipts may move a ``sent`` on to
#: ``failed`` or ``bounced``: then it has not).
REACHED = (Delivery.Status.SENT, Delivery.Status.DELIVERED)
ON_ITS_WAY = (Delivery.Status.QUEUED, Delivery.Status.SENDING)


@dataclass
class Retried:
    """What :func:`notice_retry` found for the adults it was asked about."""

    #: Told after all (shown the notice on the web site, or a notice went meanwhile).
    told: set[int] = field(default_factory=set)
    #: A notice is on its way to them (queued now on their other channel, or by someone else).
    waiting: set[int] = field(default_factory=set)
    #: Nothing left to tell them by: their copies of the school's messages are not sent.
    untold: set[int] = field(default_factory=set)


def notice_retry(adult_ids: Iterable[int]) -> Retried:
    """For adults sent the notice whose every copy of it ended without reaching them (refused,
    bounced, given up on, skipped, cancelled): queue it once more on the channel not tried yet
    (SMS after an email, email after an SMS), where they have one the school may use; the
    others cannot be told. Adults who opted out or are held are left alone (nothing goes to
    them). Called by a worker's claim in its transaction, for the adults of the copies it is
    holding back; each school's row is locked and the notices read again under the lock, so
    two workers at once queue it once."""
    wanted = set(adult_ids)
    result = Retried()
    adults = {
        a.pk: a
        for a in Adult.objects.filter(pk__in=wanted, opted_out=False, held=False).only(
            "school_id", "forename", "surname", "email", "mobile", "email_off", "sms_off"
        )
    }
    # Shown the notice on the web site (or told by a copy since removed by retention): told,
    # without taking the school's lock.
    result.told = set(
        NoticeReceipt.objects.filter(adult_id__in=list(adults))
        .filter(Q(how=NoticeReceipt.How.SHOWN) | Q(delivery__isnull=True))
        .values_list("adult_id", flat=True)
    )
    for pk in result.told:
        adults.pop(pk, None)
    for school_id in sorted({a.school_id for a in adults.values()}):
        with transaction.atomic():
            locked = School.objects.select_for_update().get(pk=school_id)
            mine = {pk for pk, a in adults.items() if a.school_id == school_id}
            tried: dict[int, set[str]] = {pk: set() for pk in mine}
            for adult_id, status, channel in Delivery.objects.filter(
                message__kind=Message.Kind.NOTICE, adult_id__in=mine
            ).values_list("adult_id", "status", "channel"):
                if status in REACHED:
                    result.told.add(adult_id)
                elif status in ON_ITS_WAY:
                    result.waiting.add(adult_id)
                tried[adult_id].add(channel)
            left = mine - result.told - result.waiting
            plan = _other_channel(locked, [adults[pk] for pk in sorted(left)], tried)
            if plan.credits > locked.sms_credits:
                # No credits for the SMS: those adults cannot be told now (a later send that
                # reaches them tries again).
                plan.copies = [c for c in plan.copies if c.channel != Channel.SMS]
            if plan.copies:
                _queue(
                    locked,
                    plan,
                    actor=RETRY_ACTOR,
                    via="worker",
                    label="sent again by the other channel (the first could not be delivered)",
                )
            result.waiting |= {c.adult_id for c in plan.copies}
            result.untold |= left - {c.adult_id for c in plan.copies}
    return result


def _other_channel(school: School, adults: list[Adult], tried: dict[int, set[str]]) -> NoticePlan:
    plan = NoticePlan()
    blocked = blocked_numbers(school) if adults else set()
    for person in adults:
        name = f"{person.forename} {person.surname}".strip()
        done = tried.get(person.pk, set())
        if Channel.EMAIL not in done and person.email and not person.email_off:
            plan.copies.append(NoticeCopy(Channel.EMAIL, person.email.lower(), person.pk, name))
        elif (
            Channel.SMS not in done
            and person.mobile
            and not person.sms_off
            and person.mobile not in blocked
        ):
            parts = sms_size(sms_text_for(school, person.pk)).parts
            plan.copies.append(NoticeCopy(Channel.SMS, person.mobile, person.pk, name, parts))
        else:
            plan.unreachable += 1
    return plan


# --- stopping messages from a link --------------------------------------------------------------


STOP_ACTOR = "stop link"


def stop_link_people(token: StopToken) -> list[Adult | Member]:
    """The people a stop link names who are still on the register: one adult, the adults a
    copy to a shared address or number was for, or one adult member of staff (empty for
    anyone else). All of one school, the first's."""
    found: dict[int, Adult | Member]
    if token.kind == ADULT:
        found = dict(Adult.objects.select_related("school").in_bulk(token.pks))
    else:
        found = dict(
            Member.objects.select_related("school")
            .filter(kind=Member.Kind.ADULT)
            .in_bulk(token.pks)
        )
    people = [found[pk] for pk in token.pks if pk in found]
    return [p for p in people if p.school_id == people[0].school_id] if people else []


def first_names(people: list[Adult | Member]) -> str:
    """Whose messages a shared copy's stop link stops, as the page says it: first names only
    (what the holder of the mailbox reads in its greeting), or, where one has none, everyone
    who receives messages there."""
    names = [p.forename.strip() for p in people]
    if not all(names):
        return "everyone who receives messages at this address"
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def stop_messages(*, token: StopToken) -> list[Adult | Member]:
    """Opt everyone the link names out of every message from their school (their own
    request: only they can undo it). A shared address's link names every adult its copy was
    for, so the address stops receiving messages whichever of them uses it. Idempotent: a
    second use changes nothing. Their copies still waiting are skipped when a worker reaches
    them. Empty when nobody has that token."""
    with transaction.atomic():
        people = stop_link_people(token)
        for person in people:
            # Locked, so two presses at once record one opt-out.
            locked = type(person).objects.select_for_update().filter(pk=person.pk)
            person.opted_out = bool(locked.values_list("opted_out", flat=True).first())
            if not person.opted_out:
                person_opt_out(
                    person=person, opted_out=True, actor=STOP_ACTOR, requested_by_person=True
                )
                person.opted_out = True
    return people
