"""The messaging benchmark's floors must send what ours sends: the same email (headers and
rendered body) and the same SMS request. Correctness checks, not timings."""

from __future__ import annotations

import http.client
from email import message_from_bytes
from email.parser import BytesParser
from email.policy import default
from email.utils import formataddr, formatdate, make_msgid
from urllib.parse import urlsplit

from django.core.mail import EmailMessage

from homelink.bench.messages import EMAIL_BODY, SUBJECT, TEXT, floor_email, floor_sms_request
from homelink.messaging.dispatch import email_footer, render_for
from homelink.messaging.fakes import FakeSmsGateway
from homelink.messaging.gateways.base import hook_base
from homelink.messaging.gateways.http import HttpGateway, http_sms_config
from homelink.messaging.models import Delivery, Message, idempotency_key
from homelink.schools.models import School


def _delivery(name: str = "Parent1 Bench", children: str = "Pupil1") -> Delivery:
    school = School(name="Bench School 900010", office_phone="")
    message = Message(school=school, subject=SUBJECT, email_body=EMAIL_BODY, sms_text=TEXT)
    return Delivery(id=7, message=message, to="parent1@example.org", name=name, children=children)


def _floor_bytes(delivery: Delivery) -> tuple[bytes, str, str, str]:
    message = delivery.message
    subject = render_for(message.subject, delivery)
    body = render_for(message.email_body, delivery) + email_footer(message.school)
    from_header = formataddr((message.school.name, "noreply@example.org"))
    data = floor_email(
        from_header=from_header,
        to=delivery.to,
        subject=subject,
        body=body,
        message_id=make_msgid(idstring=str(delivery.pk), domain="homelink.invalid"),
        date=formatdate(),
    )
    return data, from_header, subject, body


def test_the_email_floor_builds_a_valid_message_with_our_headers() -> None:
    delivery = _delivery()
    data, from_header, subject, body = _floor_bytes(delivery)
    parsed = BytesParser(policy=default).parsebytes(data)
    assert parsed["From"] == "Bench School 900010 <noreply@example.org>"
    assert parsed["To"] == "parent1@example.org"
    assert parsed["Subject"] == "Snow: Bench School 900010 is closed today"
    assert parsed["Message-ID"].endswith("@homelink.invalid>")
    assert parsed["Date"].datetime is not None
    assert parsed["MIME-Version"] == "1.0"
    assert parsed.get_content_type() == "text/plain"
    assert parsed.get_content_charset() == "utf-8"
    content = parsed.get_content().replace("\r\n", "\n")
    assert content.rstrip("\n") == body
    assert content.startswith("Dear Parent1 Bench,")
    assert "keep Pupil1 at home" in content
    assert content.rstrip("\n").endswith("\n-- \nBench School 900010")
    # The same headers as the email our dispatcher builds (Django's EmailMessage).
    ours = EmailMessage(
        subject=subject,
        body=body,
        from_email=from_header,
        to=[delivery.to],
        headers={"Message-ID": parsed["Message-ID"]},
    ).message()
    assert sorted(parsed.keys()) == sorted(message_from_bytes(ours.as_bytes()).keys())


def test_the_email_floor_encodes_what_is_not_ascii() -> None:
    delivery = _delivery(name="Zoë Brontë", children="Chloë")
    delivery.message.subject = "Neige : {children} reste à la maison"
    data, _from, _subject, body = _floor_bytes(delivery)
    assert data.isascii() is False  # an 8bit body, as Django sends it
    parsed = BytesParser(policy=default).parsebytes(data)
    assert parsed["Subject"] == "Neige : Chloë reste à la maison"
    assert parsed["Content-Transfer-Encoding"] == "8bit"
    assert parsed.get_content().replace("\r\n", "\n").rstrip("\n") == body


def test_the_sms_floor_sends_what_our_gateway_sends() -> None:
    with FakeSmsGateway() as fake:
        settings = fake.http_settings()
        ours = HttpGateway(settings)
        try:
            ours.send_sms(to="+447700900001", text="Snow", key=idempotency_key("abc", 7))
        finally:
            ours.close()
        config = http_sms_config(settings)
        body, headers = floor_sms_request(
            config,
            hook_base("sms_status"),
            to="+447700900001",
            text="Snow",
            delivery_id=7,
            key="floor-abc-7",
        )
        url = urlsplit(config["URL"])
        conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=5)
        conn.request("POST", url.path, body, headers)
        response = conn.getresponse()
        response.read()
        conn.close()
        assert response.status == 200
        first, second = fake.accepted
    assert (second.to, second.text, second.sender, second.callback) == (
        first.to,
        first.text,
        first.sender,
        first.callback,
    )
    assert "delivery=7&sig=" in second.callback
    assert second.key != first.key  # the floor's copies are new messages, not repeats
    assert fake.repeated_keys == 0
