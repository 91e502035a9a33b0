"""The contact register: school members, linked adults and the links between them."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from homelink.schools.models import School


class Source(models.TextChoices):
    IMPORT = "import", "MIS import"
    WEB = "web", "web registration"
    MANUAL = "manual", "added by staff"


class Member(models.Model):
    """A school member: a student, or an adult member of the school (staff, governors)."""

    class Kind(models.TextChoices):
        STUDENT = "student"
        ADULT = "adult"

    class Role(models.TextChoices):
        STUDENT = "student"
        TEACHER = "teacher"
        SUPPORT = "support", "support staff"
        GOVERNOR = "governor"
        BOARD = "board", "board member"
        OTHER = "other"

    class Status(models.TextChoices):
        CURRENT = "current"
        LEFT = "left"

    # The unique (school, mis_id) index serves lookups by school.
    school = models.ForeignKey(
        School, on_delete=models.CASCADE, related_name="members", db_index=False
    )
    kind = models.CharField(max_length=8, choices=Kind.choices)
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.STUDENT)
    #: UPN for students from a CTF; the MIS's own id otherwise (OneRoster sourcedId, CSV id).
    mis_id = models.CharField("MIS id", max_length=64)
    former_upn = models.CharField("former UPN", max_length=64, blank=True)
    admission_no = models.CharField(max_length=32, blank=True)
    forename = models.CharField(max_length=100)
    surname = models.CharField(max_length=100)
    year = models.CharField(max_length=8, blank=True)
    reg_group = models.CharField("registration group", max_length=32, blank=True)
    email = models.CharField(max_length=254, blank=True)
    mobile = models.CharField(max_length=16, blank=True, help_text="E.164")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.CURRENT)
    left_at = models.DateTimeField(null=True, blank=True)
    registered = models.BooleanField(default=False)
    opted_out = models.BooleanField(default=False)
    #: An adult member (staff, governor) who registered with their own letter.
    account = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="memberships",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["school", "mis_id"], name="member_unique_mis_id"),
        ]
        indexes = [models.Index(fields=["school", "kind", "status", "surname"])]

    def __str__(self) -> str:
        return f"{self.forename} {self.surname}"


class Adult(models.Model):
    """A linked adult: a parent, carer or other contact of one or more students."""

    # The (school, name_key) index serves lookups by school.
    school = models.ForeignKey(
        School, on_delete=models.CASCADE, related_name="adults", db_index=False
    )
    title = models.CharField(max_length=20, blank=True)
    forename = models.CharField(max_length=100)
    surname = models.CharField(max_length=100)
    #: casefolded, accent-free "forename surname": what the identity rule compares.
    name_key = models.CharField(max_length=201)
    email = models.CharField(max_length=254, blank=True)
    mobile = models.CharField(max_length=16, blank=True, help_text="E.164")
    #: Who created the adult; details of an imported adult are MIS-owned until they register.
    source = models.CharField(max_length=8, choices=Source.choices, default=Source.IMPORT)
    registered = models.BooleanField(default=False)
    opted_out = models.BooleanField(default=False)
    #: One channel turned off by the person (an SMS STOP turns off SMS); opted_out is all.
    email_off = models.BooleanField(default=False)
    sms_off = models.BooleanField(default=False)
    #: The parent's login once they registered: one account, an Adult at each school.
    account = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="adults",
    )
    #: The MIS flags a court order: held for review, receives nothing until staff review.
    court_order = models.BooleanField(default=False)
    held = models.BooleanField("held for review", default=False)
    #: The MIS's id where the format has one (OneRoster).
    mis_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            models.Index(fields=["school", "name_key"]),
            # Equality lookups by number or address within a school: the console's search by a
            # parent's mobile or email, and who sent a reply (mobile__in).
            models.Index(fields=["school", "mobile"], name="adult_school_mobile"),
            models.Index(fields=["school", "email"], name="adult_school_email"),
        ]
        constraints = [
            # One account is one adult per school.
            models.UniqueConstraint(
                fields=["school", "account"],
                condition=Q(account__isnull=False),
                name="adult_one_per_account",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.forename} {self.surname}"


class Link(models.Model):
    """Student ↔ adult."""

    school = models.ForeignKey(School, on_delete=models.CASCADE, related_name="links")
    # The unique (student, adult) index serves lookups by student.
    student = models.ForeignKey(
        Member, on_delete=models.CASCADE, related_name="links", db_index=False
    )
    adult = models.ForeignKey(Adult, on_delete=models.CASCADE, related_name="links")
    source = models.CharField(max_length=8, choices=Source.choices)
    #: The MIS's order for the contact (CTF <Order>): 0 to 2,147,483,647 (mis.records.MAX_PRIORITY).
    priority = models.PositiveIntegerField(null=True, blank=True)
    prime = models.BooleanField(default=False)
    #: Who made this link prime (or not): an import never changes a prime set by staff or by a
    #: registration (rule 5). "" while the prime status follows the file.
    prime_set_by = models.CharField(max_length=8, choices=Source.choices, blank=True)
    relationship = models.CharField(max_length=32, blank=True)
    parental_responsibility = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["student", "adult"], name="link_unique_pair"),
        ]
        indexes = [
            models.Index(fields=["school", "student"], condition=Q(prime=True), name="link_prime")
        ]

    def __str__(self) -> str:
        return f"{self.adult_id} → {self.student_id} ({self.source})"


class PendingLink(models.Model):
    """A web link waiting for staff: the student has an adult held for review (court order)."""

    class Status(models.TextChoices):
        WAITING = "waiting"
        APPROVED = "approved"
        REFUSED = "refused"

    school = models.ForeignKey(School, on_delete=models.CASCADE, related_name="pending_links")
    student = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="pending_links")
    adult = models.ForeignKey(Adult, on_delete=models.CASCADE, related_name="pending_links")
    #: What the parent said they are to the student when they linked: the link's, once approved.
    relationship = models.CharField(max_length=32, blank=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.WAITING)
    created_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.CharField(max_length=64, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["student", "adult"], condition=Q(status="waiting"), name="pending_link_once"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.adult_id} → {self.student_id} ({self.status})"


class LikelyDuplicate(models.Model):
    """A registration made a new adult where an existing one may be the same person: for staff."""

    school = models.ForeignKey(School, on_delete=models.CASCADE, related_name="likely_duplicates")
    adult = models.ForeignKey(Adult, on_delete=models.CASCADE, related_name="+")
    other = models.ForeignKey(Adult, on_delete=models.CASCADE, related_name="+")
    #: What they share: "email", "mobile" (no values: the records themselves hold those).
    shared = models.CharField(max_length=16)
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.adult_id} ~ {self.other_id}"
