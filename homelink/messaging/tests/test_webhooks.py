"""The providers' webhooks: signed or secret-checked, and nothing changes when they are not."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.test import Client

from homelink.messaging import fakes, webhooks
from homelink.messaging.fakes import FakeSmsGateway
from homelink.messaging.gateways.base import hook_url
from homelink.messaging.gateways.http import HttpGateway
from homelink.messaging.gateways.twilio import TwilioGateway
from homelink.messaging.models import Delivery, InboundSms, SmsBlock
from homelink.messaging.tests.sms_helpers import NUMBER, delivery, status_of
from homelink.schools.models import School

pytestmark = pytest.mark.django_db

PUBLIC = "https://homelink.example.org"
TOKEN = "twilio-test-auth-token"
SECRET = "receipt-secret-0123456789"
S = Delivery.Status


@pytest.fixture(autouse=True)
def configured(settings: Any) -> None:
    settings.HOMELINK_PUBLIC_URL = PUBLIC
    settings.HOMELINK_TWILIO_AUTH_TOKEN = TOKEN
    settings.HOMELINK_HTTP_SMS = {
        "URL": "https://sms.example.org/send",
        "RECEIPT_SECRET": SECRET,
        "RECEIPT_ID_FIELD": "data.message_id",
        "RECEIPT_STATUS_FIELD": "data.status",
        "RECEIPT_REASON_FIELD": "data.error_text",
        "STATUS_MAP": {"Delivered": "delivered", "Undelivered": "failed", "Queued": ""},
    }


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def twilio_post(
    client: Client, url: str, params: dict[str, str], *, token: str = TOKEN, sign: str = ""
) -> Any:
    """POST as Twilio does to ``url``, signed for ``sign`` (by default ``url`` itself)."""
    signature = fakes.twilio_signature(token, sign or url, params)
    return client.post(path_of(url), params, headers={"X-Twilio-Signature": signature})


def status_params(sid: str, status: str, **extra: str) -> dict[str, str]:
    return {
        "AccountSid": "AC" + "1" * 32,
        "MessageSid": sid,
        "SmsSid": sid,
        "MessageStatus": status,
        "SmsStatus": status,
        "To": NUMBER,
        "From": "+447700900999",
        "ApiVersion": "2010-04-01",
        **extra,
    }


# --- the signature ------------------------------------------------------------------------------


def test_both_signature_helpers_reproduce_twilios_published_example() -> None:
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+14158675309",
        "Digits": "1234",
        "From": "+14158675309",
        "To": "+18005551212",
    }
    assert fakes.twilio_signature("12345", url, params) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    assert webhooks.twilio_signature("12345", url, params.items()) == (
        "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    )
    repeated = [("Sid", "CA123"), ("SidAccount", "AC123")]
    repeated += [("Digits", "5678"), ("Digits", "1234"), ("Digits", "1234")]
    assert webhooks.twilio_signature("12345", url, repeated) == "IK+Dwps556ElfBT0I3Rgjkr1wJU="


def test_a_signed_status_callback_records_the_receipt(client: Client, school: School) -> None:
    row = delivery(school, gateway_id="SM1")
    url = hook_url("twilio_status", delivery=row.pk)
    assert url == f"{PUBLIC}/hooks/twilio/status/?delivery={row.pk}"
    response = twilio_post(client, url, status_params("SM1", "delivered"))
    assert response.status_code == 204
    assert status_of(row) == S.DELIVERED


def test_a_signature_with_the_default_port_spelt_out_is_accepted(
    client: Client, school: School
) -> None:
    row = delivery(school, gateway_id="SM1")
    url = hook_url("twilio_status")
    signed_for = url.replace(PUBLIC, PUBLIC + ":443")
    response = twilio_post(client, url, status_params("SM1", "delivered"), sign=signed_for)
    assert response.status_code == 204
    assert status_of(row) == S.DELIVERED


@pytest.mark.parametrize(
    "forgery",
    ["missing", "other token", "other host", "other delivery", "other params", "garbage"],
)
def test_an_unsigned_or_forged_callback_is_refused_and_changes_nothing(
    client: Client, school: School, forgery: str
) -> None:
    row = delivery(school, gateway_id="SM1")
    url = hook_url("twilio_status", delivery=row.pk)
    params = status_params("SM1", "delivered")
    signature = fakes.twilio_signature(TOKEN, url, params)
    if forgery == "missing":
        response = client.post(path_of(url), params)
    elif forgery == "other token":
        response = twilio_post(client, url, params, token="not-the-token")
    elif forgery == "other host":
        # Signed for where the request claims to be (its Host header), not our public URL.
        response = twilio_post(client, url, params, sign="http://testserver" + path_of(url))
    elif forgery == "other delivery":
        response = twilio_post(
            client, url, params, sign=hook_url("twilio_status", delivery=row.pk + 1)
        )
    elif forgery == "other params":
        tampered = {**params, "MessageStatus": "undelivered"}
        response = client.post(path_of(url), tampered, headers={"X-Twilio-Signature": signature})
    else:
        response = client.post(path_of(url), params, headers={"X-Twilio-Signature": "x" * 28})
    assert response.status_code == 403
    assert status_of(row) == S.SENT


def test_no_auth_token_configured_refuses_everything(
    client: Client, school: School, settings: Any
) -> None:
    row = delivery(school, gateway_id="SM1")
    url = hook_url("twilio_status")
    settings.HOMELINK_TWILIO_AUTH_TOKEN = ""
    response = twilio_post(client, url, status_params("SM1", "delivered"), token="")
    assert response.status_code == 403
    assert status_of(row) == S.SENT


def test_hooks_take_post_only(client: Client) -> None:
    for name in ("twilio_status", "twilio_inbound", "sms_status"):
        assert client.get(path_of(hook_url(name))).status_code == 405


# --- Twilio status callbacks --------------------------------------------------------------------


def test_failed_with_an_error_code_records_the_reason(client: Client, school: School) -> None:
    row = delivery(school, gateway_id="SM1")
    params = status_params("SM1", "undelivered", ErrorCode="30003")
    assert twilio_post(client, hook_url("twilio_status"), params).status_code == 204
    row.refresh_from_db()
    assert (row.status, row.reason) == (
        S.FAILED,
        "twilio 30003: phone switched off or out of coverage",
    )


@pytest.mark.parametrize("status", ["queued", "accepted", "sending", "scheduled"])
def test_statuses_on_the_way_change_nothing(client: Client, school: School, status: str) -> None:
    row = delivery(school, gateway_id="SM1", status=S.SENDING)
    assert (
        twilio_post(client, hook_url("twilio_status"), status_params("SM1", status)).status_code
        == 204
    )
    assert status_of(row) == S.SENDING


def test_a_callback_that_overtakes_the_worker_fills_in_the_id(
    client: Client, school: School
) -> None:
    row = delivery(school, status=S.SENDING, gateway="", gateway_id="")
    url = hook_url("twilio_status", delivery=row.pk)
    assert twilio_post(client, url, status_params("SM7", "sent")).status_code == 204
    row.refresh_from_db()
    assert (row.status, row.gateway, row.gateway_id) == (S.SENT, "twilio", "SM7")


@pytest.mark.parametrize(
    "params",
    [
        {"MessageStatus": "delivered"},
        {"MessageSid": "SM1"},
        {"MessageSid": "SM1", "MessageStatus": "teleported"},
    ],
)
def test_malformed_callbacks_are_refused(
    client: Client, school: School, params: dict[str, str]
) -> None:
    row = delivery(school, gateway_id="SM1")
    assert twilio_post(client, hook_url("twilio_status"), params).status_code == 400
    assert status_of(row) == S.SENT


def test_a_malformed_delivery_in_the_url_is_refused(client: Client, school: School) -> None:
    row = delivery(school, gateway_id="SM1")
    url = hook_url("twilio_status") + "?delivery=abc"
    assert twilio_post(client, url, status_params("SM1", "delivered")).status_code == 400
    assert status_of(row) == S.SENT


# --- Twilio inbound -----------------------------------------------------------------------------


def inbound_params(body: str, sid: str = "SMin1") -> dict[str, str]:
    return {
        "AccountSid": "AC" + "1" * 32,
        "MessageSid": sid,
        "SmsSid": sid,
        "From": NUMBER,
        "To": "+447700900999",
        "Body": body,
        "NumMedia": "0",
    }


def test_an_inbound_stop_blocks_the_number_and_answers_empty_twiml(
    client: Client, school: School
) -> None:
    delivery(school)
    response = twilio_post(client, hook_url("twilio_inbound"), inbound_params("STOP"))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/xml")
    assert response.content.decode().endswith("<Response/>")
    assert SmsBlock.objects.filter(school=school, number=NUMBER).exists()


def test_an_inbound_reply_is_stored_and_nothing_personal_is_logged(
    client: Client, school: School, caplog: pytest.LogCaptureFixture
) -> None:
    delivery(school)
    caplog.set_level(logging.DEBUG)
    text = "Sam has a dentist appointment"
    response = twilio_post(client, hook_url("twilio_inbound"), inbound_params(text))
    assert response.status_code == 200
    assert InboundSms.objects.get().text == text
    logged = caplog.text
    assert "900001" not in logged
    assert "dentist" not in logged


def test_a_forged_inbound_text_changes_nothing(client: Client, school: School) -> None:
    delivery(school)
    url = hook_url("twilio_inbound")
    response = twilio_post(client, url, inbound_params("STOP"), token="forged")
    assert response.status_code == 403
    assert not SmsBlock.objects.exists()
    assert not InboundSms.objects.exists()


def test_a_malformed_inbound_text_is_refused(client: Client, school: School) -> None:
    delivery(school)
    params = inbound_params("STOP")
    del params["Body"]
    assert twilio_post(client, hook_url("twilio_inbound"), params).status_code == 400
    assert not InboundSms.objects.exists()


# --- the generic gateway's receipts -------------------------------------------------------------


def generic_receipt(gateway_id: str, status: str, **extra: str) -> str:
    return json.dumps({"data": {"message_id": gateway_id, "status": status, **extra}})


def test_a_generic_receipt_with_the_secret_header(client: Client, school: School) -> None:
    row = delivery(school, gateway="http", gateway_id="m-1")
    response = client.post(
        path_of(hook_url("sms_status")),
        generic_receipt("m-1", "Delivered"),
        content_type="application/json",
        headers={"X-Homelink-Secret": SECRET},
    )
    assert response.status_code == 204
    assert status_of(row) == S.DELIVERED


def test_a_generic_receipt_with_the_secret_in_the_query_and_a_reason(
    client: Client, school: School
) -> None:
    row = delivery(school, gateway="http", gateway_id="m-1")
    response = client.post(
        path_of(hook_url("sms_status", secret=SECRET)),
        generic_receipt("m-1", "Undelivered", error_text="Absent subscriber +447700900001"),
        content_type="application/json",
    )
    assert response.status_code == 204
    row.refresh_from_db()
    assert (row.status, row.reason) == (S.FAILED, "http: Absent subscriber …")


def test_a_generic_form_receipt_naming_the_delivery(
    client: Client, school: School, settings: Any
) -> None:
    settings.HOMELINK_HTTP_SMS = {
        "URL": "https://sms.example.org/send",
        "RECEIPT_SECRET": SECRET,
        "RECEIPT_ID_FIELD": "",
        "RECEIPT_STATUS_FIELD": "status",
        "STATUS_MAP": {"D": "delivered", "U": "failed"},
    }
    row = delivery(school, gateway="http", gateway_id="tl-1")
    url = hook_url("sms_status", delivery=row.pk, secret=SECRET)
    response = client.post(path_of(url), {"status": "D", "number": "447700900001"})
    assert response.status_code == 204
    assert status_of(row) == S.DELIVERED


def test_unmapped_generic_statuses_are_ignored(client: Client, school: School) -> None:
    row = delivery(school, gateway="http", gateway_id="m-1")
    for status in ("Queued", "Mystery"):
        response = client.post(
            path_of(hook_url("sms_status")),
            generic_receipt("m-1", status),
            content_type="application/json",
            headers={"X-Homelink-Secret": SECRET},
        )
        assert response.status_code == 204
    assert status_of(row) == S.SENT


@pytest.mark.parametrize("given", ["", "wrong", SECRET + "x"])
def test_a_generic_receipt_without_the_secret_is_refused(
    client: Client, school: School, given: str
) -> None:
    row = delivery(school, gateway="http", gateway_id="m-1")
    headers = {"X-Homelink-Secret": given} if given else {}
    response = client.post(
        path_of(hook_url("sms_status")),
        generic_receipt("m-1", "Delivered"),
        content_type="application/json",
        headers=headers,
    )
    assert response.status_code == 403
    assert status_of(row) == S.SENT


def test_no_receipt_secret_configured_refuses_everything(
    client: Client, school: School, settings: Any
) -> None:
    settings.HOMELINK_HTTP_SMS = {"URL": "https://sms.example.org/send"}
    row = delivery(school, gateway="http", gateway_id="m-1")
    response = client.post(
        path_of(hook_url("sms_status")),
        generic_receipt("m-1", "Delivered"),
        content_type="application/json",
        headers={"X-Homelink-Secret": ""},
    )
    assert response.status_code == 403
    assert status_of(row) == S.SENT


@pytest.mark.parametrize(
    "body",
    [
        "{not json",
        "[]",
        '"Delivered"',
        json.dumps({"data": {"message_id": "m-1"}}),
        json.dumps({"data": {"status": "Delivered"}}),
        # One good receipt and one bad one: neither is recorded.
        json.dumps(
            [
                {"data": {"message_id": "m-1", "status": "Delivered"}},
                {"data": {"message_id": "m-2"}},
            ]
        ),
    ],
)
def test_malformed_generic_receipts_are_refused(client: Client, school: School, body: str) -> None:
    row = delivery(school, gateway="http", gateway_id="m-1")
    response = client.post(
        path_of(hook_url("sms_status")),
        body,
        content_type="application/json",
        headers={"X-Homelink-Secret": SECRET},
    )
    assert response.status_code == 400
    assert status_of(row) == S.SENT


def test_a_batch_of_generic_receipts(client: Client, school: School) -> None:
    first = delivery(school, gateway="http", gateway_id="m-1")
    second = delivery(school, gateway="http", gateway_id="m-2")
    body = json.dumps(
        [
            {"data": {"message_id": "m-1", "status": "Delivered"}},
            {"data": {"message_id": "m-2", "status": "Undelivered"}},
        ]
    )
    response = client.post(
        path_of(hook_url("sms_status")),
        body,
        content_type="application/json",
        headers={"X-Homelink-Secret": SECRET},
    )
    assert response.status_code == 204
    assert (status_of(first), status_of(second)) == (S.DELIVERED, S.FAILED)


# --- end to end: the fake provider calls a running server back ----------------------------------


@pytest.fixture
def fake() -> Iterator[FakeSmsGateway]:
    with FakeSmsGateway() as gateway:
        yield gateway


@pytest.mark.django_db(transaction=True)
def test_twilio_round_trip_through_a_live_server(
    live_server: Any, fake: FakeSmsGateway, settings: Any, school: School
) -> None:
    for name, value in fake.twilio_settings().items():
        setattr(settings, name, value)
    settings.HOMELINK_PUBLIC_URL = live_server.url
    row = delivery(school, status=S.SENDING, gateway="", gateway_id="")
    gateway = TwilioGateway()
    sid = gateway.send_sms(to=NUMBER, text="Hi", key=row.idempotency_key)
    gateway.close()
    # The receipt overtakes the worker, which has not recorded the sid yet.
    assert fake.send_twilio_receipt(sid, "delivered") == 204
    row.refresh_from_db()
    assert (row.status, row.gateway_id) == (S.DELIVERED, sid)
    # A late "sent" is answered alike and changes nothing.
    assert fake.send_twilio_receipt(sid, "sent") == 204
    assert status_of(row) == S.DELIVERED


@pytest.mark.django_db(transaction=True)
def test_generic_round_trip_through_a_live_server(
    live_server: Any, fake: FakeSmsGateway, settings: Any, school: School
) -> None:
    settings.HOMELINK_HTTP_SMS = fake.http_settings()
    settings.HOMELINK_PUBLIC_URL = live_server.url
    row = delivery(school, status=S.SENDING, gateway="", gateway_id="")
    gateway = HttpGateway()
    gateway_id = gateway.send_sms(to=NUMBER, text="Hi", key=row.idempotency_key)
    gateway.close()
    assert fake.send_http_receipt(gateway_id, "DELIVRD") == 204
    row.refresh_from_db()
    assert (row.status, row.gateway, row.gateway_id) == (S.DELIVERED, "http", gateway_id)


def test_a_signed_receipt_address_works_for_its_delivery_only(
    client: Client, school: School, settings: Any
) -> None:
    """The per-message address our gateway sends carries a signature for that delivery: a copy
    of it (in a provider's logs) cannot move any other delivery."""
    from homelink.messaging.gateways.base import delivery_signature

    settings.HOMELINK_HTTP_SMS = {
        "URL": "https://sms.example.org/send",
        "RECEIPT_SECRET": SECRET,
        "RECEIPT_ID_FIELD": "",
        "RECEIPT_STATUS_FIELD": "status",
        "STATUS_MAP": {"D": "delivered"},
    }
    mine = delivery(school, gateway="http", gateway_id="tl-1")
    other = delivery(school, gateway="http", gateway_id="tl-2")
    signature = delivery_signature(SECRET, mine.pk)
    forged = client.post(
        path_of(hook_url("sms_status", delivery=other.pk, sig=signature)), {"status": "D"}
    )
    assert forged.status_code == 403
    assert status_of(other) == S.SENT
    good = client.post(
        path_of(hook_url("sms_status", delivery=mine.pk, sig=signature)), {"status": "D"}
    )
    assert good.status_code == 204
    assert status_of(mine) == S.DELIVERED
