"""The audit trail's action codes in words, for the console and its exports. A code missing
here is shown as it is stored: add the words when adding an action."""

from __future__ import annotations

#: Actions that are access (someone looked at or took away personal data), not change. Written
#: by :func:`homelink.audit.services.audit_access`.
MEMBER_VIEWED = "member.viewed"
AUDIT_EXPORTED = "audit.exported"
RECORDS_EXPORTED = "privacy.records_exported"

#: Every action that records access (a view, an export, a printout, a download) rather than a
#: change: reading personal data is recorded, and is not a change to anything.
ACCESS_ACTIONS = frozenset(
    {
        MEMBER_VIEWED,
        AUDIT_EXPORTED,
        RECORDS_EXPORTED,
        "register.exported",
        "message.deliveries_exported",
        "privacy.sar_downloaded",
    }
)

ACTION_WORDS: dict[str, str] = {
    # Access: viewing, exporting, printing.
    MEMBER_VIEWED: "Viewed a member's linked people",
    AUDIT_EXPORTED: "Exported the audit trail (CSV)",
    RECORDS_EXPORTED: "Exported the records of processing (PDF)",
    "register.exported": "Exported the register (homelink export)",
    "message.deliveries_exported": "Exported a message's recipients (CSV)",
    "letters.issued": "Printed security letters",
    "codes.issued": "Issued a security code (letter printed)",
    "privacy.sar_downloaded": "Downloaded a subject access export",
    # The register.
    "adult.created": "Added an adult",
    "adult.registered": "An adult registered on the web",
    "adult.removed": "Removed an adult",
    "adult.channels_set": "Changed how an adult is contacted",
    "adult.review_released": "Released an adult held for review",
    "adult.review_kept_held": "Kept an adult held for review",
    "person.opted_out": "Recorded an opt-out",
    "person.opted_in": "Recorded an opt back in",
    "person.registered": "A person registered on the web",
    "person.unregistered": "A person's web account was removed",
    "person.details_changed": "A registered person changed their details",
    "member.registered": "A staff member or student registered on the web",
    "link.added": "Linked an adult to a student",
    "link.claimed": "A parent linked with a letter's code",
    "link.waiting_for_staff": "A parent's link is waiting for staff",
    "link.approved": "Approved a waiting link",
    "link.refused": "Refused a waiting link",
    "link.removed": "Removed a link",
    "link.prime_set": "Changed a prime parent",
    "duplicate.resolved": "Marked a likely duplicate as not the same person",
    # Letters and codes.
    "code.revoked": "Revoked a security letter",
    "codes.revoked_all": "Revoked all of a student's letters",
    "letters.revoked": "Revoked a batch of letters",
    # Imports.
    "import.uploaded": "Uploaded an MIS file",
    "import.applied": "Applied an MIS import",
    "import.discarded": "Discarded an MIS import preview",
    "import.forced": "Imported a file naming another school",
    "sync.set": "Set up the scheduled MIS sync",
    "sync.removed": "Stopped the scheduled MIS sync",
    "sync.run_requested": "Asked for the MIS sync to run now",
    # Trusts.
    "trust.school_added": "Joined a trust",
    "trust.school_removed": "Left a trust",
    "trust.staff_invited": "Invited a member of the trust's staff",
    "trust.staff_invitation_resent": "Resent a trust staff invitation",
    "trust.staff_invitation_revoked": "Revoked a trust staff invitation",
    "trust.staff_added": "Added a member of the trust's staff",
    "trust.staff_invitation_accepted": "A trust staff invitation was accepted",
    "trust.staff_role_changed": "Changed a trust staff member's role",
    "trust.staff_removed": "Removed a member of the trust's staff",
    "trust.org_mapped": "Mapped a trust's OneRoster organisation to this school",
    "trust.org_unmapped": "Moved a trust's OneRoster organisation from this school to another",
    # Messages.
    "message.queued": "Sent a message",
    "message.cancelled": "Cancelled a message",
    "template.saved": "Saved a message template",
    "template.deleted": "Deleted a message template",
    "school.sms_credits_changed": "Changed the school's SMS credits",
    # Staff and the school.
    "staff.invited": "Invited a member of staff",
    "staff.invitation_resent": "Resent a staff invitation",
    "staff.invitation_revoked": "Revoked a staff invitation",
    "staff.invitation_accepted": "A staff invitation was accepted",
    "staff.added": "Added a member of staff",
    "staff.removed": "Removed a member of staff",
    "staff.role_changed": "Changed a staff member's role",
    "staff.password_disabled": "Turned off a password after too many wrong codes",
    "staff.second_factor_added": "Set up two-step sign-in",
    "staff.second_factor_removed": "Removed two-step sign-in",
    "school.created": "Created the school",
    "school.settings_changed": "Changed the school's settings",
    "school.logo_changed": "Changed the school's logo",
    "school.logo_removed": "Removed the school's logo",
    "school.second_factor_required": "Made two-step sign-in compulsory",
    "school.second_factor_optional": "Made two-step sign-in optional",
    # Data protection.
    "privacy.notice_published": "Published a new version of the privacy notice",
    "privacy.notice_queued": "Sent the privacy notice to adults not yet told",
    "privacy.sar_logged": "Logged a subject access request",
    "privacy.sar_completed": "Marked a subject access request complete",
    "adult.erased": "Erased an adult at their request",
    "tombstone.lifted": "Lifted an erasure, so an import may add the adult again",
    "retention.changed": "Changed the retention periods",
    "retention.purged": "Removed data past its retention period",
}


def action_words(code: str) -> str:
    """The action in words; an unknown code as it is (never hidden)."""
    return ACTION_WORDS.get(code, code)
