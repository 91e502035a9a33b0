"""Data protection records (UK GDPR): the school's privacy notices and who was told, subject
access requests with their due dates, tombstones of erased people, and the school's retention
settings. Each row says what was done and when, never more personal data than it needs."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from homelink.register.models import Adult, Member
from homelink.schools.models import School


class PrivacyNotice(models.Model):
    """One version of a school's privacy notice. Versions are never edited: a change is a new
    version, so what each parent was shown stays readable."""

    school = models.ForeignKey(School, on_delete=models.CASCADE, related_name="privacy_notices")
    version = models.PositiveIntegerField()
    text = models.TextField()
    published_at = models.DateTimeField(auto_now_add=True)
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["school", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["school", "version"], name="notice_unique_version")
        ]

    def __str__(self) -> str:
        return f"privacy notice v{self.version}"


class NoticeReceipt(models.Model):
    """That an adult (or a parent's account, before it is any school's adult) was shown or sent
    a version of the notice, and when."""

    class How(models.TextChoices):
        SHOWN = "shown", "shown on the web site"
        EMAIL = "email", "sent by email"
        SMS = "sms", "sent by SMS"

    school = models.ForeignKey(School, on_delete=models.CASCADE, related_name="+")
    notice = models.ForeignKey(PrivacyNotice, on_delete=models.PROTECT, related_name="receipts")
    adult = models.ForeignKey(
        Adult, null=True, blank=True, on_delete=models.CASCADE, related_name="notice_receipts"
    )
    account = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    how = models.CharField(max_length=8, choices=How.choices)
    at = models.DateTimeField(auto_now_add=True)
    #: The copy that carried it (sent by email or SMS): whether and when it went is the copy's
    #: status. Empty for a notice shown on the web site.
    delivery = models.ForeignKey(
        "messaging.Delivery", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        indexes = [models.Index(fields=["school", "adult"], name="receipt_school_adult")]
        constraints = [
            models.CheckConstraint(
                condition=Q(adult__isnull=False) | Q(account__isnull=False),
                name="receipt_names_someone",
            )
        ]

    def __str__(self) -> str:
        return f"notice receipt ({self.how})"


class SubjectAccessRequest(models.Model):
    """A subject access request, logged when received; due one calendar month later."""

    school = models.ForeignKey(School, on_delete=models.CASCADE, related_name="access_requests")
    adult = models.ForeignKey(
        Adult, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    member = models.ForeignKey(
        Member, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    received_on = models.DateField()
    due_on = models.DateField()
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    completed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["due_on", "pk"]

    def __str__(self) -> str:
        return f"subject access request due {self.due_on}"


class Tombstone(models.Model):
    """What identified an erased adult, as a keyed hash: a later import that lists them again
    skips them until staff lift the tombstone."""

    class Basis(models.TextChoices):
        MIS_ID = "mis_id", "MIS contact id"
        NAME_CONTACT = "name_contact", "name and email or mobile"
        #: A CTF has no contact ids: the MIS knows a contact as a name under a student (rule
        #: 7), whatever email or mobile it gives them later.
        NAME_STUDENT = "name_student", "name and student"

    school = models.ForeignKey(School, on_delete=models.CASCADE, related_name="tombstones")
    key = models.CharField(max_length=64)
    basis = models.CharField(max_length=16, choices=Basis.choices)
    #: The tombstones one erasure kept share it: they stand for one person, lifted together.
    erasure = models.CharField(max_length=32, blank=True)
    erased_at = models.DateTimeField(auto_now_add=True)
    erased_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    lifted_at = models.DateTimeField(null=True, blank=True)
    lifted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        indexes = [models.Index(fields=["school", "key"], name="tombstone_school_key")]

    def __str__(self) -> str:
        return f"tombstone ({self.basis})"


class RetentionPolicy(models.Model):
    """How long a school keeps what it no longer needs; the defaults are the README's."""

    school = models.OneToOneField(School, on_delete=models.CASCADE, related_name="retention")
    leavers_months = models.PositiveIntegerField(
        default=12, help_text="Leavers' register rows and links, after they left."
    )
    messages_months = models.PositiveIntegerField(
        default=24, help_text="Message bodies and delivery rows, after sending."
    )
    audit_years = models.PositiveIntegerField(default=6, help_text="Audit trail events.")
    last_purge_at = models.DateTimeField(null=True, blank=True)
    #: What the last purge removed: counts by kind, never who.
    last_purge = models.JSONField(default=dict, blank=True)

    def __str__(self) -> str:
        return "retention policy"
