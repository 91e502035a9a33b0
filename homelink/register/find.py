"""Finding anyone in the register from one search box (the console's members list; issue 10,
item 3).

The office answers the phone to a parent and types what it has: a name, an email address or a
mobile number, as people say it ("07700 900123", "07700900123", "+44 7700 900123"). The search
finds the members themselves (students by name or MIS id; adult members, such as staff, by
their own name, email or mobile too) and the students linked to any adult who matches, and each
row can then say why it is there ("linked: Pat Smith (mother)").

What the text is decides what it is compared with, so that each comparison can be cheap:

- a number (digits and the usual separators, at least six digits): a mobile. Typed whole, it is
  normalised to E.164 in the school's phone region (``mis/phones.py``, which also knows the
  fictional 07700 900xxx range), exactly as mobiles are stored, and compared for equality on
  the indexed ``(school, mobile)`` (migration register 0004); a part of a number ("900123") is compared with the end of
  each mobile. The digits may also be a MIS id (an admission number).
- text with an ``@``: an email. Addresses are stored lower-cased (``register/identity.py``), so
  a whole address, in any case, is an exact match on the indexed ``(school, email)``; part of
  one is looked for inside each address.
- anything else: names (and MIS ids). Members match word by word as before; adults through the
  same normalised ``name_key`` the importer compares names with, so "zoe obrien" finds Zoë
  O'Brien.

Every query is scoped to the school and the adults' part is one subquery, so a search costs
the same few queries whatever the school's size, as the list without a search does.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import Q
from phonenumbers import country_code_for_region

from homelink.mis.phones import PhoneKind, classify
from homelink.register.identity import name_key, normalise_email
from homelink.register.models import Link, Member
from homelink.schools.models import School

#: The fewest digits that make a search a phone number: fewer match too many mobiles by their
#: end, and are more likely part of a MIS id.
MIN_DIGITS = 6
#: Words of a search that count; more narrow nothing a person would type.
MAX_WORDS = 5
_NUMBER = re.compile(r"\+?[\d\s().\-/]+")


@dataclass(frozen=True)
class Terms:
    """A search as typed, and what it is compared with."""

    text: str
    #: The words, for members' names and MIS ids.
    words: tuple[str, ...] = ()
    #: The words of the normalised name, for adults' ``name_key``.
    name_words: tuple[str, ...] = ()
    #: Lower-cased, when the text has an ``@``; ``email_whole`` when it is a whole address.
    email: str = ""
    email_whole: bool = False
    #: E.164, when the text is a whole phone number.
    mobile: str = ""
    #: The digits, when the text is part of a number.
    suffix: str = ""
    #: The start of a number typed the national way ("07700 900" → "+447700900"), in E.164.
    prefix: str = ""

    @property
    def is_number(self) -> bool:
        return bool(self.mobile or self.suffix)

    def mobile_matches(self, stored: str) -> bool:
        if not stored:
            return False
        if self.mobile:
            return stored == self.mobile
        return stored.endswith(self.suffix) or bool(self.prefix and stored.startswith(self.prefix))

    def email_matches(self, stored: str) -> bool:
        if not (stored and self.email):
            return False
        return stored == self.email if self.email_whole else self.email in stored


def terms_of(q: str, region: str = "GB") -> Terms:
    """What a typed search means (see the module's docstring)."""
    text = " ".join(q.split())
    if not text:
        return Terms("")
    digits = re.sub(r"\D", "", text)
    if _NUMBER.fullmatch(text) and len(digits) >= MIN_DIGITS:
        phone = classify(text, region)
        if phone.kind != PhoneKind.INVALID:
            return Terms(text, mobile=phone.value)
        return Terms(text, suffix=digits, prefix=_national_start(digits, region))
    if "@" in text:
        email = text.lower().replace(" ", "")
        # A whole address by the rule the register stores addresses by.
        whole = bool(normalise_email(email))
        return Terms(text, email=email, email_whole=whole)
    return Terms(
        text,
        words=tuple(text.split()[:MAX_WORDS]),
        name_words=tuple(name_key(text, "").split()[:MAX_WORDS]),
    )


def _national_start(digits: str, region: str) -> str:
    """The E.164 start of a partial number typed with the national trunk 0 (stored numbers
    are E.164, so "07700 900" would otherwise match nothing); "" for anything else."""
    if not digits.startswith("0") or digits.startswith("00"):
        return ""
    code = country_code_for_region(region)
    return f"+{code}{digits[1:]}" if code else ""


def _mobile_q(terms: Terms, field: str) -> Q:
    if terms.mobile:
        return Q(**{field: terms.mobile})
    found = Q(**{f"{field}__endswith": terms.suffix})
    if terms.prefix:
        found |= Q(**{f"{field}__startswith": terms.prefix})
    return found


def _email_q(terms: Terms, field: str) -> Q:
    # Stored lower-cased: an exact match is case-blind and can use the index.
    if terms.email_whole:
        return Q(**{field: terms.email})
    return Q(**{f"{field}__contains": terms.email})


def adult_q(terms: Terms, prefix: str = "") -> Q | None:
    """The adults (``prefix``: reached through a relation, such as ``adult__`` from a link) the
    search matches; None when it can match no adult."""
    if terms.is_number:
        return _mobile_q(terms, f"{prefix}mobile")
    if terms.email:
        return _email_q(terms, f"{prefix}email")
    if not terms.name_words:
        return None
    condition = Q()
    for word in terms.name_words:
        condition &= Q(**{f"{prefix}name_key__contains": word})
    return condition


def member_q(terms: Terms) -> Q:
    """The members the search matches by their own details."""
    if terms.is_number:
        compact = re.sub(r"[\s().\-/]", "", terms.text)
        return (
            _mobile_q(terms, "mobile")
            | Q(mis_id__iexact=compact)
            | Q(former_upn__iexact=compact)
            | Q(admission_no=compact)
        )
    if terms.email:
        return _email_q(terms, "email")
    condition = Q()
    for word in terms.words:
        condition &= (
            Q(forename__icontains=word)
            | Q(surname__icontains=word)
            | Q(mis_id__iexact=word)
            | Q(former_upn__iexact=word)
        )
    return condition


def search_q(school: School, q: str) -> Q:
    """Members the search finds: by their own details, or as a student linked to an adult who
    matches (one subquery, not a query per adult)."""
    terms = terms_of(q, school.phone_region)
    if not terms.text:
        return Q()
    condition = member_q(terms)
    adults = adult_q(terms, "adult__")
    if adults is not None:
        # The adult's school too, redundant as it is: it lets the (school, mobile) and (school,
        # email) indexes find the adult in an install that holds many schools' adults.
        linked = Link.objects.filter(adults, school=school, adult__school=school)
        condition |= Q(pk__in=linked.values("student_id"))
    return condition


def why_found(school: School, q: str, members: Iterable[Member]) -> dict[int, list[str]]:
    """For one page of results, why each member is there when their name does not say so:
    "linked: Pat Smith (mother)" for a student found through an adult, "own mobile" or "own
    email" for a member found by their own details. One query for the page."""
    terms = terms_of(q, school.phone_region)
    members = list(members)
    reasons: dict[int, list[str]] = defaultdict(list)
    students = [m.pk for m in members if m.kind == Member.Kind.STUDENT]
    adults = adult_q(terms, "adult__") if terms.text else None
    if adults is not None and students:
        rows = (
            Link.objects.filter(
                adults, school=school, adult__school=school, student_id__in=students
            )
            .order_by("student_id", "-prime", "priority", "adult__surname", "adult__forename", "pk")
            .values_list("student_id", "adult__forename", "adult__surname", "relationship")
        )
        for student_id, forename, surname, relationship in rows:
            name = f"{forename} {surname}".strip() or "(no name)"
            reasons[student_id].append(
                f"linked: {name} ({relationship})" if relationship else f"linked: {name}"
            )
    for member in members:
        if terms.is_number and terms.mobile_matches(member.mobile):
            reasons[member.pk].append("own mobile")
        if terms.email and terms.email_matches(member.email):
            reasons[member.pk].append("own email")
    return dict(reasons)
