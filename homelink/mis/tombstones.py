"""Erased people stay erased: the import skips a contact a tombstone names (issue 13).

When a school erases an adult at their request (:mod:`homelink.privacy.erasure`), it keeps a
:class:`~homelink.privacy.models.Tombstone` for each way the MIS could name them again: a keyed
hash (HMAC-SHA256 from ``SECRET_KEY`` under :data:`SALT`) of the MIS contact id where the format
has one, of the normalised name with each email and mobile, and of the name under each student
they were a contact of (a CTF has no contact ids: rule 7 knows a contact by name under a student).
Nothing readable is kept, and a key means nothing at another school or another install.

The planner asks :class:`ErasedContacts` about each contact it could not place in the register
(an erased adult is gone from it): one that matches a live tombstone is left out of the plan, and
the preview says so without naming them (the preview is kept with the import's history, and the
name is what was erased). Until staff lift the tombstone, every import skips them.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.utils.crypto import salted_hmac

from homelink.mis.identity import Resolved
from homelink.mis.plan import Report
from homelink.privacy.models import Tombstone
from homelink.schools.models import School

SALT = "homelink.privacy.tombstone"
#: What the preview says for a skipped contact (product wording, issue 13).
ERASED = "erased at the adult's request"


def tombstone_key(school_id: int, basis: str, *parts: str) -> str:
    """The keyed hash of one identifying basis: 64 hex characters."""
    value = "\x1f".join((str(school_id), basis, *parts))
    return salted_hmac(SALT, value, algorithm="sha256").hexdigest()


def identity_keys(
    school_id: int,
    *,
    name_key: str,
    mis_id: str = "",
    emails: Iterable[str] = (),
    mobiles: Iterable[str] = (),
    students: Iterable[str] = (),
) -> list[tuple[str, str]]:
    """(basis, key) for every way the MIS may name this person; the values are normalised as
    the import normalises them (``name_key``, lower-case email, E.164 mobile, student MIS id)."""
    keys: list[tuple[str, str]] = []
    if mis_id:
        keys.append((Tombstone.Basis.MIS_ID, tombstone_key(school_id, "mis_id", mis_id)))
    if name_key:
        for email in dict.fromkeys(e for e in emails if e):
            keys.append(
                (
                    Tombstone.Basis.NAME_CONTACT,
                    tombstone_key(school_id, "name_email", name_key, email),
                )
            )
        for mobile in dict.fromkeys(m for m in mobiles if m):
            keys.append(
                (
                    Tombstone.Basis.NAME_CONTACT,
                    tombstone_key(school_id, "name_mobile", name_key, mobile),
                )
            )
        for student in dict.fromkeys(s for s in students if s):
            keys.append(
                (
                    Tombstone.Basis.NAME_STUDENT,
                    tombstone_key(school_id, "name_student", name_key, student),
                )
            )
    return keys


class ErasedContacts:
    """The school's live tombstones, read once per import."""

    def __init__(self, school_id: int, keys: set[str]) -> None:
        self.school_id = school_id
        self.keys = keys

    @classmethod
    def load(cls, school: School) -> ErasedContacts:
        keys = Tombstone.objects.filter(school=school, lifted_at__isnull=True).values_list(
            "key", flat=True
        )
        return cls(school.pk, set(keys))

    def erased(self, item: Resolved, student_mis_id: str) -> bool:
        if not self.keys:
            return False
        keys = identity_keys(
            self.school_id,
            name_key=item.key,
            mis_id=item.contact.mis_id,
            emails=(item.email,),
            mobiles=(item.mobile,),
            students=(student_mis_id,),
        )
        return any(key in self.keys for _, key in keys)

    def drop(
        self, resolved: list[Resolved], student_mis_id: str, student_label: str, report: Report
    ) -> list[Resolved]:
        """The contacts to plan: those a tombstone names are skipped, and the preview says so.
        Only contacts not already placed in the register are asked about: an adult who is in
        the register now was put back by the school."""
        if not self.keys:
            return resolved
        kept: list[Resolved] = []
        for item in resolved:
            if item.ref is None and not item.ambiguous and self.erased(item, student_mis_id):
                where = f" ({item.contact.where})" if item.contact.where else ""
                report.add("skip", "adult", f"a contact of {student_label}{where}", ERASED)
                continue
            kept.append(item)
        return kept
