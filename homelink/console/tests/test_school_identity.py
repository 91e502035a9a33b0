"""Looks like the school: its office phone and logo from Settings on parents' pages, message
emails and letters, and the relationship a parent gives when linking with a letter."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image, PngImagePlugin
from pypdf import PdfReader

from homelink.accounts.tests.conftest import logged_in, make_parent
from homelink.audit.models import AuditEvent
from homelink.console.tests.conftest import make_user, member_of
from homelink.messaging.audience import Audience
from homelink.messaging.dispatch import drain
from homelink.messaging.services import Draft, message_send
from homelink.mis.tests.factories import contact, pupil, run_import
from homelink.register.models import Adult, Link, Member, PendingLink, Source
from homelink.registration.letters import letters_issue
from homelink.registration.tests.factories import letter
from homelink.schools.logos import LOGO_MAX_BYTES, PNG_SIGNATURE
from homelink.schools.models import School, SchoolLogo
from homelink.staff.models import Role

pytestmark = pytest.mark.django_db

OFFICE = "020 7946 0123"
OFFICE_E164 = "+442079460123"
PARENT = "pat.smith@example.org"


def png(width: int = 120, height: int = 60, *, comment: str = "", mode: str = "RGBA") -> bytes:
    image = Image.new(mode, (width, height), (10, 80, 160, 255) if mode == "RGBA" else 7)
    info = PngImagePlugin.PngInfo()
    if comment:
        info.add_text("Comment", comment)
    out = io.BytesIO()
    image.save(out, "PNG", pnginfo=info)
    return out.getvalue()


def jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (90, 90), (200, 30, 30)).save(out, "JPEG")
    return out.getvalue()


def settings_form(school: School, **changes: Any) -> dict[str, Any]:
    """The Settings form as an administrator would send it, unchanged but for ``changes``."""
    data: dict[str, Any] = {
        "name": school.name,
        "phone_region": school.phone_region,
        "code_expiry_days": school.code_expiry_days,
        "sms_sender": school.sms_sender,
        "large_send_threshold": school.large_send_threshold,
        "office_phone": "",
    }
    data.update(changes)
    return data


def settings_url(school: School) -> str:
    return reverse("console:settings", kwargs={"urn": school.urn})


def logo_url(school: School) -> str:
    return reverse("school_logo", kwargs={"urn": school.urn})


# --- Settings: the office phone and the logo ------------------------------------------------


def test_settings_save_the_office_phone_and_logo(client, school, admin_a):
    client.force_login(admin_a)
    upload = SimpleUploadedFile("crest.png", png(comment="secret location"), "image/png")
    response = client.post(
        settings_url(school), settings_form(school, office_phone=OFFICE, logo=upload), follow=True
    )
    assert response.status_code == 200
    assert "Settings saved." in response.content.decode()
    school.refresh_from_db()
    assert school.office_phone == OFFICE_E164
    logo = SchoolLogo.objects.get(school=school)
    stored = bytes(logo.image)
    # Re-encoded: a PNG that Pillow wrote, without the upload's metadata.
    assert stored.startswith(PNG_SIGNATURE)
    assert b"secret location" not in stored
    assert (logo.content_type, logo.width, logo.height) == ("image/png", 120, 60)

    page = client.get(settings_url(school)).content.decode()
    assert f'value="{OFFICE}"' in page  # as the office types it, not E.164
    assert f'src="{logo_url(school)}"' in page
    served = client.get(logo_url(school))
    assert served.status_code == 200
    assert served["Content-Type"] == "image/png"
    assert served["X-Content-Type-Options"] == "nosniff"
    assert served.content == stored

    events = AuditEvent.objects.filter(school=school, action__startswith="school.")
    assert {e.action for e in events} >= {"school.settings_changed", "school.logo_changed"}
    for event in events:
        assert OFFICE_E164 not in str(event.detail) and "7946" not in str(event.detail)


def test_a_large_logo_is_scaled_down_and_a_jpeg_stays_a_jpeg(client, school, admin_a):
    client.force_login(admin_a)
    big = png(2400, 600, mode="L")
    client.post(
        settings_url(school),
        settings_form(school, logo=SimpleUploadedFile("wide.png", big)),
    )
    logo = SchoolLogo.objects.get(school=school)
    assert (logo.width, logo.height) == (800, 200)
    client.post(
        settings_url(school), settings_form(school, logo=SimpleUploadedFile("c.jpg", jpeg()))
    )
    logo.refresh_from_db()
    assert logo.content_type == "image/jpeg" and bytes(logo.image).startswith(b"\xff\xd8\xff")


def test_the_logo_can_be_removed(client, school, admin_a):
    client.force_login(admin_a)
    client.post(
        settings_url(school), settings_form(school, logo=SimpleUploadedFile("c.png", png()))
    )
    assert SchoolLogo.objects.filter(school=school).exists()
    client.post(settings_url(school), settings_form(school, remove_logo="on"))
    assert not SchoolLogo.objects.filter(school=school).exists()
    assert AuditEvent.objects.filter(action="school.logo_removed").count() == 1


@pytest.mark.parametrize(
    ("name", "content", "says"),
    [
        ("crest.gif", b"GIF89a" + b"\x00" * 40, "must be a PNG or JPEG image"),
        ("crest.png", b"<svg xmlns='http://www.w3.org/2000/svg'/>", "must be a PNG or JPEG image"),
        ("crest.png", PNG_SIGNATURE + b"not really a png at all", "could not be read"),
        ("crest.png", png()[:60], "could not be read"),
        ("crest.png", PNG_SIGNATURE + b"\x00" * LOGO_MAX_BYTES, "at most 200"),
        ("huge.png", png(5000, 10, mode="L"), "at most 4000 pixels"),
    ],
)
def test_a_bad_logo_is_refused_clearly_and_nothing_is_saved(
    client, school, admin_a, name, content, says
):
    client.force_login(admin_a)
    before = School.objects.filter(pk=school.pk).values().get()
    response = client.post(
        settings_url(school),
        settings_form(
            school,
            name="A New Name",
            office_phone=OFFICE,
            logo=SimpleUploadedFile(name, content),
        ),
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert "There is a problem" in page and says in page
    assert School.objects.filter(pk=school.pk).values().get() == before
    assert not SchoolLogo.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="school.").exists()


def test_an_office_phone_that_is_not_a_number_is_refused(client, school, admin_a):
    client.force_login(admin_a)
    response = client.post(settings_url(school), settings_form(school, office_phone="12345"))
    assert response.status_code == 400
    assert "like 020 7946 0000" in response.content.decode()
    school.refresh_from_db()
    assert school.office_phone == ""


def test_viewers_see_the_phone_and_logo_but_cannot_change_them(client, school, admin_a, viewer_a):
    client.force_login(admin_a)
    client.post(
        settings_url(school),
        settings_form(school, office_phone=OFFICE, logo=SimpleUploadedFile("c.png", png())),
    )
    client.force_login(viewer_a)
    page = client.get(settings_url(school)).content.decode()
    assert OFFICE in page and logo_url(school) in page
    response = client.post(settings_url(school), settings_form(school, remove_logo="on"))
    assert response.status_code == 403
    assert SchoolLogo.objects.filter(school=school).exists()


# --- Who may see the logo -------------------------------------------------------------------


def test_the_logo_is_shown_only_to_the_schools_staff_and_parents(client, school, school_b):
    SchoolLogo.objects.create(
        school=school, image=png(), content_type="image/png", width=120, height=60
    )
    run_import(school, [pupil("A100000000001", "Sam", "Smith", contact(1, "Pat", "Smith"))])
    url = logo_url(school)

    assert client.get(url).status_code == 404  # signed out
    other_staff = make_user("office@b.example")
    member_of(other_staff, school_b, Role.ADMINISTRATOR)
    client.force_login(other_staff)
    assert client.get(url).status_code == 404
    stranger = make_parent("stranger@example.org")
    assert logged_in(stranger).get(url).status_code == 404

    viewer = make_user("viewer@a.example")
    member_of(viewer, school, Role.VIEWER)
    client.force_login(viewer)
    assert client.get(url).status_code == 200
    assert client.post(url).status_code == 405
    parent = make_parent(PARENT)
    Link.objects.filter(school=school).update(source=Source.WEB)
    Adult.objects.filter(school=school).update(account=parent, registered=True)
    assert logged_in(parent).get(url).status_code == 200
    # A school without a logo: 404, whoever asks.
    client.force_login(other_staff)
    assert client.get(logo_url(school_b)).status_code == 404


# --- Parents' pages, emails and letters -----------------------------------------------------


@pytest.fixture
def branded(school: School) -> School:
    School.objects.filter(pk=school.pk).update(office_phone=OFFICE_E164)
    SchoolLogo.objects.create(
        school=school, image=png(), content_type="image/png", width=120, height=60
    )
    run_import(
        school,
        [
            pupil("A100000000001", "Sam", "Smith", year="7"),
            pupil("A100000000002", "Alex", "Jones", year="9"),
        ],
    )
    school.refresh_from_db()
    return school


def test_linking_asks_the_relationship_and_the_account_page_shows_the_school(branded, admin_a):
    client = logged_in(make_parent(PARENT))
    page = client.get(reverse("link_code")).content.decode()
    assert "What are you to the child?" in page
    for choice in ("Mother", "Father", "Carer", "Grandparent", "Other"):
        assert f">{choice}</label>" in page

    # No answer: nothing is linked, and the page says what is missing.
    code = letter(branded)
    refused = client.post(reverse("link_code"), {"code": code})
    assert refused.status_code == 200
    assert "Choose what you are to the child." in refused.content.decode()
    assert not Link.objects.filter(school=branded).exists()
    # "Other" needs the words.
    refused = client.post(reverse("link_code"), {"code": code, "relationship": "other"})
    assert "Write what you are to the child" in refused.content.decode()
    assert not Link.objects.filter(school=branded).exists()

    response = client.post(
        reverse("link_code"),
        {"code": code, "relationship": "other", "relationship_other": "  Aunt "},
        follow=True,
    )
    link = Link.objects.get(school=branded, student__mis_id="A100000000001")
    assert (link.source, link.relationship) == (Source.WEB, "Aunt")
    client.post(
        reverse("link_code"),
        {"code": letter(branded, "A100000000002"), "relationship": "grandparent"},
    )
    assert Link.objects.get(student__mis_id="A100000000002").relationship == "grandparent"

    page = client.get(reverse("account")).content.decode()
    assert "Example Academy" in page
    assert f'<a href="tel:{OFFICE_E164}">{OFFICE}</a>' in page
    assert f'src="{logo_url(branded)}"' in page
    assert "Sam Smith" in page and "Alex Jones" in page
    assert response.status_code == 200

    # The console's linked-people screen shows what the parent said.
    console = logged_in(admin_a)
    member = reverse("console:member", kwargs={"urn": branded.urn, "member_id": link.student_id})
    html = console.get(member).content.decode()
    assert "<dt>Relationship</dt><dd>Aunt</dd>" in html
    other = Member.objects.get(mis_id="A100000000002")
    html = console.get(
        reverse("console:member", kwargs={"urn": branded.urn, "member_id": other.pk})
    ).content.decode()
    assert "<dt>Relationship</dt><dd>grandparent</dd>" in html


def test_a_waiting_link_keeps_the_relationship_for_staff(school, admin_a):
    run_import(
        school,
        [
            pupil(
                "A100000000001",
                "Sam",
                "Smith",
                contact(1, "Court", "Order", mobile="07700 900004", court_order=True),
            )
        ],
    )
    client = logged_in(make_parent(PARENT))
    client.post(reverse("link_code"), {"code": letter(school), "relationship": "father"})
    pending = PendingLink.objects.get(school=school)
    assert pending.relationship == "father"
    console = logged_in(admin_a)
    member = reverse("console:member", kwargs={"urn": school.urn, "member_id": pending.student_id})
    assert "(father)" in console.get(member).content.decode()
    console.post(
        reverse(
            "console:pending_decide",
            kwargs={"urn": school.urn, "member_id": pending.student_id, "pending_id": pending.pk},
        ),
        {"decision": "approve"},
    )
    assert Link.objects.get(school=school, source=Source.WEB).relationship == "father"


def test_message_emails_end_with_the_school_and_its_office_phone(branded, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    run_import(
        branded,
        [pupil("A100000000001", "Sam", "Smith", contact(1, "Pat", "Smith", email=PARENT))],
        update_only=True,
    )
    message_send(
        school=branded,
        draft=Draft(
            mode="email",
            audience=Audience(),
            subject="Closed today",
            email_body="Dear {name}, school is closed today.",
            sms_text="School is closed today.",
        ),
        actor="test",
    )
    assert drain("email") == 1
    [sent] = mail.outbox
    assert sent.from_email.startswith("Example Academy")
    assert sent.body.startswith("Dear Pat Smith, school is closed today.")
    # The signature, then the school's privacy notice and the person's stop link (privacy/).
    assert f"\n-- \nExample Academy\nSchool office: {OFFICE}\nPrivacy notice: " in sent.body
    assert re.search(r"\nStop messages from Example Academy: \S+/p/a\w+-[\w-]+/$", sent.body)


def test_the_letters_carry_the_school_name_office_phone_and_logo(branded):
    pdf = letters_issue(school=branded, actor="test").pdf
    reader = PdfReader(io.BytesIO(pdf))
    assert len(reader.pages) == 2
    for page in reader.pages:
        text = page.extract_text()
        assert text.startswith("Example Academy")
        assert f"School office: {OFFICE}" in text
        assert f"contacting the school office on {OFFICE}" in " ".join(text.split())
        assert page.images, "the logo is printed on every page"
    # One copy of the logo in the file, however many pages (the image and its transparency).
    assert pdf.count(b"/Subtype /Image") == 2


def test_letters_without_a_phone_or_logo_say_the_name_only(school):
    run_import(school, [pupil("A100000000001", "Sam", "Smith")])
    pdf = letters_issue(school=school, actor="test").pdf
    [page] = PdfReader(io.BytesIO(pdf)).pages
    text = page.extract_text()
    assert text.startswith("Example Academy")
    assert "School office:" not in text and not page.images
