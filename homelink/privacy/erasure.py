"""Erasure without resurrection (UK GDPR article 17; issue 13 point 5).

:func:`adult_erase` removes an adult's personal data from one school: the adult row (name,
email, mobile) with its links, waiting links, likely-duplicate notes and privacy-notice
receipts; the addresses on the copies of messages sent to them and the replies they texted
(:mod:`homelink.messaging.erasure`: the rows stay, so messages keep their counts); their name,
address and number wherever the import history quoted them; and their parent account, when
nothing else holds it (:func:`account_fate`). It keeps tombstones (:mod:`homelink.mis.tombstones`)
so that the next import does not bring them back, and records the erasure in the audit trail
with counts only.

:func:`erasure_preview` says what an erasure would remove, and names the students it would
leave with no adult who can receive anything: the console and the CLI show it, and erasing such
an adult needs ``confirm_unreachable``.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from homelink.audit.services import audit_record
from homelink.messaging.erasure import copies_forget_person, shared_copies_of
from homelink.messaging.models import Channel, Delivery, InboundSms
from homelink.mis.models import ImportRun
from homelink.mis.tombstones import identity_keys
from homelink.mis.uploads import uploads_forget, uploads_unneeded, uploads_waiting
from homelink.privacy.models import NoticeReceipt, Tombstone
from homelink.register.models import Adult, LikelyDuplicate, Link, Member, PendingLink
from homelink.register.selectors import LINK_ANY_OK, email_ok, sms_ok
from homelink.schools.models import School
from homelink.staff.actor import Actor, actor_parts
from homelink.staff.models import StaffMembership
from homelink.sync.taken import taken_files, taken_forget
from homelink.trusts.models import TrustMembership

#: What replaces a line of the import history that quoted an erased person.
REDACTED = "(erased)"


class ErasureRefused(ValidationError):
    """The erasure needs a confirmation it did not get; nothing was changed."""


@dataclass(frozen=True)
class AccountFate:
    """What happens to the adult's parent account: deleted, or kept and why."""

    has_account: bool
    delete: bool
    why: str


@dataclass(frozen=True)
class ErasurePreview:
    adult_id: int
    name: str
    links: int
    pending_links: int
    receipts: int
    copies: int
    replies: int
    account: AccountFate
    #: The identifying bases a tombstone is kept for (labels), so the import skips them.
    bases: list[str]
    #: Current students who would be left with no linked adult who can receive anything.
    unreachable: list[Member] = field(default_factory=list)
    #: MIS files uploaded in the console and still waiting to be applied, retried or discarded:
    #: they may name the person and stay on the server until then (the erasure cannot edit
    #: them; applied, their tombstone skips the person).
    uploads_waiting: int = 0

    @property
    def tombstone_kept(self) -> bool:
        return bool(self.bases)


@dataclass(frozen=True)
class ErasureResult:
    """Counts only: what an erasure removed (the audit event's detail)."""

    counts: dict[str, int]
    account_deleted: bool
    tombstones: int


def account_fate(adult: Adult) -> AccountFate:
    """The parent account goes with the adult only when it is nothing else: one login serves a
    parent's children at several schools, and each of those schools is a controller of its own
    record, so an erasure at one school must not take the parent's access to another school's
    messages, nor a member of staff's (or an operator's) sign-in. Kept, it no longer reaches
    this school."""
    if adult.account_id is None:
        return AccountFate(False, False, "no parent account")
    user_id = adult.account_id
    if Adult.objects.filter(account_id=user_id).exclude(pk=adult.pk).exists():
        return AccountFate(True, False, "kept: the same login is a parent at another school")
    if Member.objects.filter(account_id=user_id).exists():
        return AccountFate(True, False, "kept: the same login is a school member's (staff)")
    if StaffMembership.objects.filter(user_id=user_id).exists():
        return AccountFate(True, False, "kept: the same login is a member of staff's")
    if TrustMembership.objects.filter(user_id=user_id).exists():
        return AccountFate(True, False, "kept: the same login is a trust's member of staff's")
    user = get_user_model().objects.filter(pk=user_id).values("is_staff", "is_superuser").first()
    if user is not None and (user["is_staff"] or user["is_superuser"]):
        return AccountFate(True, False, "kept: the same login is an operator's")
    return AccountFate(True, True, "deleted: it was only this parent's login at this school")


def unreachable_without(adult: Adult) -> list[Member]:
    """Current students linked to ``adult`` for whom no other linked adult can receive
    anything, when ``adult`` can: erasing them leaves those students unreachable."""
    if not Adult.objects.filter(pk=adult.pk).filter(email_ok() | sms_ok()).exists():
        return []
    others = Link.objects.filter(LINK_ANY_OK, student=OuterRef("pk")).exclude(adult=adult)
    return list(
        Member.objects.filter(
            school_id=adult.school_id,
            kind=Member.Kind.STUDENT,
            status=Member.Status.CURRENT,
            links__adult=adult,
        )
        .filter(~Exists(others))
        .order_by("surname", "forename", "pk")
        .distinct()
    )


def _keys(adult: Adult) -> list[tuple[str, str]]:
    students = Member.objects.filter(
        Q(links__adult=adult) | Q(pending_links__adult=adult), school_id=adult.school_id
    ).values_list("mis_id", flat=True)
    return identity_keys(
        adult.school_id,
        name_key=adult.name_key,
        mis_id=adult.mis_id,
        emails=(adult.email,),
        mobiles=(adult.mobile,),
        students=sorted(set(students)),
    )


def _receipts(adult: Adult) -> Any:
    theirs = Q(adult=adult)
    if adult.account_id is not None:
        theirs |= Q(account_id=adult.account_id)
    return NoticeReceipt.objects.filter(theirs, school_id=adult.school_id)


def _copies(adult: Adult) -> Any:
    to_them = Q(adult=adult)
    if adult.email:
        to_them |= Q(channel=Channel.EMAIL, to=adult.email)
    if adult.mobile:
        to_them |= Q(channel=Channel.SMS, to=adult.mobile)
    # A trust-wide send's shared copy may be held under another school's message.
    own = Delivery.objects.filter(to_them, school_id=adult.school_id).exclude(to="")
    return Delivery.objects.filter(
        Q(pk__in=own.values("pk")) | Q(pk__in=shared_copies_of(adult.pk).values("pk"))
    ).exclude(to="")


def _replies(adult: Adult) -> Any:
    theirs = Q(adult=adult)
    if adult.mobile:
        theirs |= Q(from_number=adult.mobile)
    return InboundSms.objects.filter(theirs, school_id=adult.school_id).exclude(from_number="")


def erasure_preview(*, adult: Adult) -> ErasurePreview:
    """What erasing ``adult`` would remove, and whom it would leave unreachable; reads only."""
    labels = dict(Tombstone.Basis.choices)
    bases = list(dict.fromkeys(labels[basis] for basis, _ in _keys(adult)))
    return ErasurePreview(
        adult_id=adult.pk,
        name=f"{adult.forename} {adult.surname}".strip(),
        links=Link.objects.filter(adult=adult).count(),
        pending_links=PendingLink.objects.filter(adult=adult).count(),
        receipts=_receipts(adult).count(),
        copies=_copies(adult).count(),
        replies=_replies(adult).count(),
        account=account_fate(adult),
        bases=bases,
        unreachable=unreachable_without(adult),
        uploads_waiting=uploads_waiting(adult.school_id),
    )


def adult_erase(*, adult: Adult, actor: Actor, confirm_unreachable: bool = False) -> ErasureResult:
    """Erase one adult of one school at their request (see the module's docstring).

    Refuses with :class:`ErasureRefused`, changing nothing, when it would leave a current
    student with no reachable adult and ``confirm_unreachable`` is not given."""
    label, actor_id = actor_parts(actor)
    with transaction.atomic():
        locked = (
            Adult.objects.select_for_update().select_related("school").filter(pk=adult.pk).first()
        )
        if locked is None:
            raise ErasureRefused("this person is no longer in the register")
        school = locked.school
        unreachable = unreachable_without(locked)
        if unreachable and not confirm_unreachable:
            raise ErasureRefused(
                f"erasing {locked.forename} {locked.surname} leaves {len(unreachable)} "
                "student(s) with no adult who can receive messages: confirm to erase anyway"
            )
        fate = account_fate(locked)
        group = secrets.token_hex(8)
        now = timezone.now()
        keys = _keys(locked)
        Tombstone.objects.bulk_create(
            [
                Tombstone(school=school, key=key, basis=basis, erasure=group, erased_by_id=actor_id)
                for basis, key in dict.fromkeys(keys)
            ]
        )
        # One time for the whole erasure: its tombstones are listed (and lifted) as one.
        Tombstone.objects.filter(school=school, erasure=group).update(erased_at=now)
        counts: dict[str, int] = {
            "links": Link.objects.filter(adult=locked).count(),
            "pending_links": PendingLink.objects.filter(adult=locked).count(),
            "likely_duplicates": LikelyDuplicate.objects.filter(
                Q(adult=locked) | Q(other=locked)
            ).count(),
            "notice_receipts": _receipts(locked).count(),
            "students_left_unreachable": len(unreachable),
        }
        _receipts(locked).delete()
        forgotten = copies_forget_person(
            school=school, adult_id=locked.pk, email=locked.email, mobile=locked.mobile
        )
        counts["message_copies_blanked"] = forgotten.deliveries
        counts["queued_copies_skipped"] = forgotten.skipped
        counts["replies_blanked"] = forgotten.replies
        counts["import_runs_redacted"] = redact_import_history(school, [locked])
        # Stored MIS files no import needs any more may name them: they go (a file still
        # waiting for the office is named on the confirmation instead).
        counts["uploads_deleted"] = uploads_forget(school.pk, uploads_unneeded(school.pk))
        # So may the files a drop folder gave: every one taken so far goes.
        counts["sync_files_deleted"] = taken_forget(taken_files(school.pk))
        counts["tombstones"] = len(set(keys))
        audit_record(
            school=school,
            actor_label=label,
            actor_id=actor_id,
            action="adult.erased",
            obj=locked,
            detail={
                **counts,
                "bases": sorted({basis for basis, _ in keys}),
                "erasure": group,
                "account": "deleted" if fate.delete else ("kept" if fate.has_account else "none"),
            },
        )
        user_id = locked.account_id
        # Links, waiting links, duplicates and receipts go with the row (CASCADE); copies and
        # replies lose only their pointer to it (SET_NULL), having been blanked above.
        locked.delete()
        if fate.delete and user_id is not None:
            get_user_model().objects.filter(pk=user_id).delete()
    return ErasureResult(counts=counts, account_deleted=fate.delete, tombstones=len(set(keys)))


def _needles(people: Iterable[Adult | Member]) -> tuple[list[str], list[str]]:
    """What identifies the people in a line of text: their full names, emails and mobiles
    (lower-cased), and each mobile's last ten digits for numbers as the file typed them."""
    needles: list[str] = []
    digits: list[str] = []
    for person in people:
        if person.forename.strip() and person.surname.strip():
            needles.append(f"{person.forename} {person.surname}".lower())
        if person.email:
            needles.append(person.email.lower())
        number = re.sub(r"\D", "", person.mobile)[-10:]
        if number:
            digits.append(number)
    return list(dict.fromkeys(needles)), list(dict.fromkeys(digits))


def _redact(value: Any, needles: list[str], digits: list[str]) -> tuple[Any, bool]:
    if isinstance(value, str):
        low = value.lower()
        if any(n in low for n in needles):
            return REDACTED, True
        if digits:
            only_digits = re.sub(r"\D", "", value)
            if any(d in only_digits for d in digits):
                return REDACTED, True
        return value, False
    if isinstance(value, list):
        changed = False
        out = []
        for item in value:
            new, hit = _redact(item, needles, digits)
            out.append(new)
            changed = changed or hit
        return out, changed
    if isinstance(value, dict):
        changed = False
        result = {}
        for key, item in value.items():
            new, hit = _redact(item, needles, digits)
            result[key] = new
            changed = changed or hit
        return result, changed
    return value, False


def redact_import_history(school: School, people: Iterable[Adult | Member]) -> int:
    """The import history keeps each preview (who was created, skipped, the data issues):
    every line that quotes one of these people's name, address or number is replaced (an
    erased adult; the leavers and contacts a retention purge removes). Returns how many runs
    changed."""
    needles, digits = _needles(people)
    if not needles and not digits:
        return 0
    changed_runs = 0
    runs = ImportRun.objects.filter(school=school).only("id", "summary", "data_issues")
    for run in runs.iterator(chunk_size=50):
        summary, hit_summary = _redact(run.summary, needles, digits)
        issues, hit_issues = _redact(run.data_issues, needles, digits)
        if hit_summary or hit_issues:
            ImportRun.objects.filter(pk=run.pk).update(summary=summary, data_issues=issues)
            changed_runs += 1
    return changed_runs


# --- tombstones: the list staff see, and lifting one ----------------------------------------------


@dataclass(frozen=True)
class ErasureRecord:
    """One erasure's tombstones, as the console lists them (no personal data: there is none)."""

    erasure: str
    erased_at: Any
    erased_by: str
    bases: list[str]
    lifted_at: Any
    lifted_by: str


def _who(user: Any) -> str:
    if user is None:
        return "the command line"
    return str(user.email or user.get_username())


def erasure_records(school: School) -> list[ErasureRecord]:
    """The school's erasures, newest first, live and lifted."""
    labels = dict(Tombstone.Basis.choices)
    grouped: dict[str, list[Tombstone]] = {}
    for stone in (
        Tombstone.objects.filter(school=school)
        .select_related("erased_by", "lifted_by")
        .order_by("-erased_at", "pk")
    ):
        grouped.setdefault(stone.erasure or f"#{stone.pk}", []).append(stone)
    return [
        ErasureRecord(
            erasure=erasure,
            erased_at=stones[0].erased_at,
            erased_by=_who(stones[0].erased_by),
            bases=list(dict.fromkeys(labels.get(s.basis, s.basis) for s in stones)),
            lifted_at=stones[0].lifted_at,
            lifted_by=_who(stones[0].lifted_by) if stones[0].lifted_at else "",
        )
        for erasure, stones in grouped.items()
    ]


def tombstone_lift(*, school: School, erasure: str, actor: Actor) -> int:
    """Lift one erasure's tombstones: the next import may bring the person back (they asked to
    be contacted again, or the erasure was a mistake). Returns how many were lifted; raises
    ``ValidationError`` for an erasure the school does not have or already lifted."""
    label, actor_id = actor_parts(actor)
    stones = Tombstone.objects.filter(school=school, lifted_at__isnull=True)
    stones = (
        stones.filter(pk=int(erasure[1:]))
        if erasure.startswith("#") and erasure[1:].isdigit()
        else stones.filter(erasure=erasure)
    )
    with transaction.atomic():
        ids = list(stones.select_for_update().values_list("pk", flat=True))
        if not erasure or not ids:
            raise ValidationError("no such erasure, or it was lifted already")
        lifted = Tombstone.objects.filter(pk__in=ids).update(
            lifted_at=timezone.now(), lifted_by_id=actor_id
        )
        audit_record(
            school=school,
            actor_label=label,
            actor_id=actor_id,
            action="tombstone.lifted",
            detail={"tombstones": lifted, "erasure": erasure},
        )
    return lifted
