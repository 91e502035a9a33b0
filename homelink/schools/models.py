from __future__ import annotations

from django.db import models


class School(models.Model):
    """The tenant: everything in the register belongs to exactly one school."""

    urn = models.CharField("URN", max_length=12, unique=True)
    name = models.CharField(max_length=200)
    la_code = models.CharField("LA code", max_length=3, blank=True)
    estab = models.CharField("establishment number", max_length=4, blank=True)
    phone_region = models.CharField(
        max_length=2, default="GB", help_text="ISO country whose numbering plan the MIS uses."
    )
    import_lower_priority = models.BooleanField(
        "import lower-priority contacts",
        default=False,
        help_text="Also import priority 2 and below as non-prime parents.",
    )
    code_expiry_days = models.PositiveIntegerField(default=90)
    sms_sender = models.CharField("SMS sender name", max_length=11, blank=True)
    #: OneRoster has no URN: the org sourcedId seen at the school's first OneRoster import is
    #: the identity later files must match (or be forced).
    oneroster_org_id = models.CharField(max_length=255, blank=True)
    require_second_factor = models.BooleanField(
        "require a second factor",
        default=False,
        help_text="Staff must sign in to the console with an authenticator app's code too.",
    )
    #: SMS parts the school may still send; a send that needs more is refused, never overdrawn.
    sms_credits = models.PositiveIntegerField("SMS credits", default=0)
    large_send_threshold = models.PositiveIntegerField(
        "large send threshold",
        default=1000,
        help_text="A send of more messages than this needs a second confirmation.",
    )
    #: The school office's phone, in E.164 (shown as the school's region writes it): on
    #: parents' pages, at the foot of message emails, and on the letters.
    office_phone = models.CharField("office phone", max_length=20, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.urn})"

    @property
    def dfe_number(self) -> str:
        return f"{self.la_code}{self.estab}" if self.la_code and self.estab else ""


class SchoolLogo(models.Model):
    """The school's logo: a small PNG or JPEG, re-encoded when it was uploaded.

    Kept in the database, not under MEDIA_ROOT: nothing serves it but
    :func:`homelink.schools.views.school_logo`, which shows it only to the school's staff and to
    parents linked to the school; a backup of the database has it too. Its own table, so that
    fetching a school (every request does) never reads the image.
    """

    school = models.OneToOneField(
        School, on_delete=models.CASCADE, primary_key=True, related_name="logo"
    )
    image = models.BinaryField()
    content_type = models.CharField(max_length=16)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"logo of school {self.school_id}"
