"""Writes to the school itself: creating it and changing its settings."""

from __future__ import annotations

import re
from typing import Any

import phonenumbers
from django.core.exceptions import ValidationError
from django.db import transaction

from homelink.audit.services import audit_record
from homelink.mis.phones import is_fictional
from homelink.schools.logos import Logo
from homelink.schools.models import School, SchoolLogo

SETTABLE = {
    "name",
    "import_lower_priority",
    "code_expiry_days",
    "sms_sender",
    "phone_region",
    "large_send_threshold",
    "office_phone",
}

OFFICE_PHONE_INVALID = (
    "Enter the office's phone number as you would dial it, like 020 7946 0000 (or with +44)."
)


def office_phone_normalise(raw: str, region: str) -> str:
    """The office's number as typed, in E.164 ("" for none); a ValidationError unless it is a
    real number in the school's numbering (libphonenumber's ``is_valid_number``; the fictional
    07700 9 block counts, as everywhere here)."""
    text = raw.strip()
    if not text:
        return ""
    try:
        parsed = phonenumbers.parse(text, region or "GB")
    except phonenumbers.NumberParseException:
        raise ValidationError(OFFICE_PHONE_INVALID) from None
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    if not (phonenumbers.is_valid_number(parsed) or is_fictional(e164)):
        raise ValidationError(OFFICE_PHONE_INVALID)
    return e164


def _validate(values: dict[str, Any]) -> None:
    region = values.get("phone_region")
    if region is not None and region not in phonenumbers.SUPPORTED_REGIONS:
        raise ValidationError(
            f"{region!r} is not a country code libphonenumber knows (e.g. GB, GG, JE, IM, US)"
        )
    urn = values.get("urn")
    if urn is not None and not re.fullmatch(r"\d{6,8}", urn):
        raise ValidationError("a URN is six (or more) digits")
    la, estab = values.get("la_code"), values.get("estab")
    if la and not re.fullmatch(r"\d{3}", la):
        raise ValidationError("an LA code is three digits")
    if estab and not re.fullmatch(r"\d{4}", estab):
        raise ValidationError("an establishment number is four digits")
    name = values.get("name")
    if name is not None and not name.strip():
        raise ValidationError("the school needs a name")
    threshold = values.get("large_send_threshold")
    if threshold is not None and (
        isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 1
    ):
        raise ValidationError("the large send threshold is a whole number of messages, at least 1")


def school_create(
    *,
    urn: str,
    name: str,
    la_code: str = "",
    estab: str = "",
    phone_region: str = "GB",
    actor: str = "cli",
) -> School:
    values = {
        "urn": urn.strip(),
        "name": name.strip(),
        "la_code": la_code.strip(),
        "estab": estab.strip(),
        "phone_region": phone_region.strip().upper(),
    }
    _validate(values)
    with transaction.atomic():
        if School.objects.filter(urn=values["urn"]).exists():
            raise ValidationError(f"a school with URN {values['urn']} already exists")
        school = School.objects.create(**values)
        audit_record(school=school, actor_label=actor, action="school.created", obj=school)
    return school


def school_update(*, school: School, actor: str = "cli", **values: Any) -> School:
    unknown = set(values) - SETTABLE
    if unknown:
        raise ValidationError(f"not a school setting: {', '.join(sorted(unknown))}")
    if "phone_region" in values:
        values["phone_region"] = str(values["phone_region"]).strip().upper()
    _validate(values)
    if "office_phone" in values:
        region = values.get("phone_region") or school.phone_region
        values["office_phone"] = office_phone_normalise(str(values["office_phone"] or ""), region)
    with transaction.atomic():
        locked = School.objects.select_for_update().get(pk=school.pk)
        changed = [k for k, v in values.items() if getattr(locked, k) != v]
        for key in changed:
            setattr(locked, key, values[key])
        if changed:
            locked.save(update_fields=changed)
            audit_record(
                school=locked,
                actor_label=actor,
                action="school.settings_changed",
                obj=locked,
                detail={"fields": changed},
            )
    for key in changed:
        setattr(school, key, values[key])
    return school


def school_logo_set(*, school: School, logo: Logo | None, actor: str = "cli") -> bool:
    """Store the school's logo (already checked and re-encoded by ``logos.logo_clean``), or
    remove it with ``logo=None``. True when something changed."""
    with transaction.atomic():
        locked = School.objects.select_for_update().get(pk=school.pk)
        if logo is None:
            removed, _ = SchoolLogo.objects.filter(school=locked).delete()
            if not removed:
                return False
            audit_record(school=locked, actor_label=actor, action="school.logo_removed", obj=locked)
            return True
        SchoolLogo.objects.update_or_create(
            school=locked,
            defaults={
                "image": logo.image,
                "content_type": logo.content_type,
                "width": logo.width,
                "height": logo.height,
            },
        )
        audit_record(
            school=locked,
            actor_label=actor,
            action="school.logo_changed",
            obj=locked,
            detail={"bytes": len(logo.image), "width": logo.width, "height": logo.height},
        )
    return True
