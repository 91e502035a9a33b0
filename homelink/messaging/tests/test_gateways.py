"""The Twilio and generic HTTP gateways, over real HTTP to the fake provider on 127.0.0.1."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from contextlib import closing
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.exceptions import ImproperlyConfigured

from homelink.messaging.fakes import FakeSmsGateway
from homelink.messaging.gateways import sms_gateway
from homelink.messaging.gateways.base import (
    GatewayError,
    delivery_id_from_key,
    delivery_signature,
    is_local_url,
    refuse_fictional,
)
from homelink.messaging.gateways.connection import is_transient
from homelink.messaging.gateways.http import HttpGateway, dotted_get, dotted_set, http_sms_config
from homelink.messaging.gateways.twilio import TwilioGateway

TO = "+447700900123"
PUBLIC = "https://homelink.example.org"


@pytest.fixture
def fake() -> Iterator[FakeSmsGateway]:
    with FakeSmsGateway() as gateway:
        yield gateway


@pytest.fixture
def twilio(fake: FakeSmsGateway, settings: Any) -> Iterator[TwilioGateway]:
    for name, value in fake.twilio_settings().items():
        setattr(settings, name, value)
    settings.HOMELINK_PUBLIC_URL = PUBLIC
    gateway = TwilioGateway()
    yield gateway
    gateway.close()


@pytest.fixture
def generic(fake: FakeSmsGateway, settings: Any) -> Iterator[HttpGateway]:
    settings.HOMELINK_HTTP_SMS = fake.http_settings()
    settings.HOMELINK_PUBLIC_URL = PUBLIC
    gateway = HttpGateway()
    yield gateway
    gateway.close()


# --- Twilio -------------------------------------------------------------------------------------


def test_twilio_posts_the_message_and_returns_its_sid(
    fake: FakeSmsGateway, twilio: TwilioGateway
) -> None:
    sid = twilio.send_sms(to=TO, text="Closed today", key="homelink-0123abcd-42")
    assert sid.startswith("SM")
    (taken,) = fake.accepted
    assert (taken.id, taken.protocol, taken.to, taken.text) == (sid, "twilio", TO, "Closed today")
    assert taken.sender == "+447700900000"  # HOMELINK_TWILIO_FROM
    # The receipt comes back to our public hook, naming the delivery.
    assert taken.callback == f"{PUBLIC}/hooks/twilio/status/?delivery=42"


def test_twilio_uses_the_schools_sender_name_when_given(
    fake: FakeSmsGateway, twilio: TwilioGateway
) -> None:
    twilio.send_sms(to=TO, text="Hi", sender="EXAMPLEACAD")
    assert fake.accepted[0].sender == "EXAMPLEACAD"


def test_twilio_sends_the_messaging_service_instead_of_a_number(
    fake: FakeSmsGateway, settings: Any
) -> None:
    for name, value in fake.twilio_settings().items():
        setattr(settings, name, value)
    settings.HOMELINK_TWILIO_FROM = ""
    settings.HOMELINK_TWILIO_MESSAGING_SERVICE_SID = "MG" + "0" * 32
    gateway = TwilioGateway()
    try:
        gateway.send_sms(to=TO, text="Hi")
    finally:
        gateway.close()
    assert fake.accepted[0].sender == "MG" + "0" * 32


def test_twilio_without_a_sender_configured_waits_for_the_settings(
    fake: FakeSmsGateway, settings: Any
) -> None:
    for name, value in fake.twilio_settings().items():
        setattr(settings, name, value)
    settings.HOMELINK_TWILIO_FROM = ""
    with pytest.raises(GatewayError) as caught:
        TwilioGateway().send_sms(to=TO, text="Hi")
    assert caught.value.retry
    assert fake.requests == 0


def test_twilio_keeps_one_connection_for_a_batch(
    fake: FakeSmsGateway, twilio: TwilioGateway
) -> None:
    ids = {twilio.send_sms(to=TO, text=f"message {n}") for n in range(5)}
    assert len(ids) == 5
    assert fake.connections == 1
    assert twilio.connections_opened == 1


def test_twilio_transient_errors_can_be_retried_and_the_connection_survives(
    fake: FakeSmsGateway, twilio: TwilioGateway
) -> None:
    fake.fail_next(1)
    with pytest.raises(GatewayError) as caught:
        twilio.send_sms(to=TO, text="Hi")
    assert caught.value.retry
    assert caught.value.reason.startswith("twilio 20503")
    assert twilio.send_sms(to=TO, text="Hi")
    assert fake.count == 1
    assert fake.connections == 1


def test_twilio_permanent_errors_carry_twilios_code_and_message(
    fake: FakeSmsGateway, twilio: TwilioGateway
) -> None:
    fake.fail_next(1, permanent=True, reason="The 'To' number +447700900123 is not valid.")
    with pytest.raises(GatewayError) as caught:
        twilio.send_sms(to=TO, text="Hi")
    assert not caught.value.retry
    # The number in Twilio's message is not kept: reasons reach logs and the dashboard.
    assert caught.value.reason == "twilio 21211: The 'To' number … is not valid."


def test_twilio_wrong_credentials_wait_for_the_settings_to_be_fixed(
    fake: FakeSmsGateway, settings: Any
) -> None:
    for name, value in fake.twilio_settings().items():
        setattr(settings, name, value)
    settings.HOMELINK_TWILIO_AUTH_TOKEN = "wrong"
    with closing(TwilioGateway()) as gateway, pytest.raises(GatewayError) as caught:
        gateway.send_sms(to=TO, text="Hi")
    assert caught.value.retry
    assert caught.value.reason == "twilio 20003: Authenticate"
    assert fake.count == 0


def test_the_configured_gateway_is_built_from_settings(fake: FakeSmsGateway, settings: Any) -> None:
    for name, value in fake.twilio_settings().items():
        setattr(settings, name, value)
    settings.HOMELINK_SMS_GATEWAY = "homelink.messaging.gateways.twilio.TwilioGateway"
    gateway = sms_gateway()
    assert gateway.name == "twilio"
    gateway.send_sms(to=TO, text="Hi")
    gateway.close()
    assert fake.count == 1


# --- the generic HTTP gateway -------------------------------------------------------------------


def test_generic_posts_json_and_reads_the_id_from_the_answer(
    fake: FakeSmsGateway, generic: HttpGateway
) -> None:
    gateway_id = generic.send_sms(
        to=TO, text="Closed today", sender="EXAMPLEACAD", key="homelink-0123abcd-7"
    )
    (taken,) = fake.accepted
    assert (taken.id, taken.protocol, taken.to, taken.text) == (
        gateway_id,
        "http",
        TO,
        "Closed today",
    )
    assert taken.sender == "EXAMPLEACAD"
    assert taken.key == "homelink-0123abcd-7"
    # The address names the delivery and is signed for it alone: never the shared secret.
    assert taken.callback == (
        f"{PUBLIC}/hooks/sms/status/?delivery=7&sig={delivery_signature(fake.receipt_secret, 7)}"
    )
    assert fake.receipt_secret not in taken.callback


def test_generic_form_format(fake: FakeSmsGateway, settings: Any) -> None:
    gateway = HttpGateway(fake.http_settings(FORMAT="form", SENDER="SCHOOL"))
    try:
        gateway.send_sms(to=TO, text="a & b = c")
    finally:
        gateway.close()
    (taken,) = fake.accepted
    assert (taken.text, taken.sender) == ("a & b = c", "SCHOOL")


def test_generic_sends_the_idempotency_key_and_a_repeat_is_not_a_second_message(
    fake: FakeSmsGateway, generic: HttpGateway
) -> None:
    first = generic.send_sms(to=TO, text="Hi", key="homelink-0123abcd-1")
    again = generic.send_sms(to=TO, text="Hi", key="homelink-0123abcd-1")
    other = generic.send_sms(to=TO, text="Hi", key="homelink-0123abcd-2")
    assert first == again != other
    assert fake.count == 2
    assert fake.repeated_keys == 1


def test_a_provider_that_took_the_message_then_hung_up_is_not_sent_again_at_once(
    fake: FakeSmsGateway, generic: HttpGateway
) -> None:
    generic.send_sms(to=TO, text="warm the connection up", key="homelink-0123abcd-1")
    fake.drop_next(1, after_accept=True)
    # The request went out whole: the provider may have it, so the gateway does not send it
    # again by itself; the dispatcher retries it once, later, with the same key.
    with pytest.raises(GatewayError) as caught:
        generic.send_sms(to=TO, text="Hi", key="homelink-0123abcd-2")
    assert (caught.value.retry, caught.value.unanswered) == (True, True)
    assert fake.count == 2
    gateway_id = generic.send_sms(to=TO, text="Hi", key="homelink-0123abcd-2")
    assert fake.count == 2
    assert fake.repeated_keys == 1
    assert fake.accepted[1].id == gateway_id


def test_a_provider_slower_than_the_timeout_gets_one_request_per_send(
    fake: FakeSmsGateway,
) -> None:
    gateway = HttpGateway(fake.http_settings(TIMEOUT=0.3))
    fake.slow_next(1, 1.0)
    with closing(gateway), pytest.raises(GatewayError) as caught:
        gateway.send_sms(to=TO, text="Hi", key="homelink-0123abcd-3")
    assert caught.value.unanswered and caught.value.gateway_wide
    assert "it may have been sent" in caught.value.reason
    assert fake.requests == 1  # not sent again on a new connection at once
    assert fake.count == 1


def test_a_connection_the_provider_closed_while_idle_is_replaced(
    fake: FakeSmsGateway, generic: HttpGateway
) -> None:
    generic.send_sms(to=TO, text="one")
    fake.drop_connections()
    generic.send_sms(to=TO, text="two")
    assert fake.count == 2
    assert fake.connections == 2


def test_a_connection_dropped_after_the_request_is_a_send_without_an_answer(
    fake: FakeSmsGateway, generic: HttpGateway
) -> None:
    fake.drop_next(1)
    with pytest.raises(GatewayError) as caught:
        generic.send_sms(to=TO, text="Hi")
    assert (caught.value.retry, caught.value.unanswered) == (True, True)
    assert caught.value.reason == "http: no answer (RemoteDisconnected); it may have been sent"
    assert fake.requests == 1


def test_a_gateway_that_is_not_listening_is_a_transient_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Nothing listens on the port any more.
    gateway = HttpGateway({"URL": f"http://127.0.0.1:{port}/sms"})
    with pytest.raises(GatewayError) as caught:
        gateway.send_sms(to=TO, text="Hi")
    assert caught.value.retry and caught.value.gateway_wide
    assert not caught.value.unanswered  # it provably never reached anyone
    assert "ConnectionRefusedError" in caught.value.reason


def test_generic_transient_and_permanent_errors(fake: FakeSmsGateway, generic: HttpGateway) -> None:
    fake.fail_next(1)
    fake.fail_next(1, permanent=True, reason="unknown number")
    with pytest.raises(GatewayError) as transient:
        generic.send_sms(to=TO, text="Hi")
    with pytest.raises(GatewayError) as permanent:
        generic.send_sms(to=TO, text="Hi")
    assert (transient.value.retry, transient.value.reason) == (True, "http 503: overloaded")
    assert (permanent.value.retry, permanent.value.reason) == (False, "http 400: unknown number")


def test_generic_answer_without_an_id_is_not_retried(fake: FakeSmsGateway) -> None:
    # A provider answering 200 with a failure inside (Textlocal does): it may have been taken.
    gateway = HttpGateway(fake.http_settings(ID_FIELD="messages.0.message_id"))
    with closing(gateway), pytest.raises(GatewayError) as caught:
        gateway.send_sms(to=TO, text="Hi")
    assert not caught.value.retry
    assert caught.value.reason == "http: answer without a message id"


@pytest.mark.parametrize(
    ("status", "transient"),
    [(400, False), (404, False), (422, False), (401, True), (429, True), (500, True), (503, True)],
)
def test_which_answers_are_worth_retrying(status: int, transient: bool) -> None:
    assert is_transient(status) is transient


def test_nested_fields_both_ways() -> None:
    document: dict[str, Any] = {}
    dotted_set(document, "messages.0.to", "+447700900123")
    dotted_set(document, "messages.0.body", "Hi")
    dotted_set(document, "source", "homelink")
    assert document == {"messages": [{"to": "+447700900123", "body": "Hi"}], "source": "homelink"}
    answer = json.loads('{"data": {"messages": [{"message_id": "abc"}]}}')
    assert dotted_get(answer, "data.messages.0.message_id") == "abc"
    assert dotted_get(answer, "data.messages.1.message_id") is None
    assert dotted_get({"a.b": 1}, "a.b") == 1  # a flat form field with a dot in its name


def test_a_misspelt_setting_is_an_error(settings: Any) -> None:
    settings.HOMELINK_HTTP_SMS = {"URL": "https://sms.example.org/send", "TO_FEILD": "to"}
    with pytest.raises(ImproperlyConfigured, match="TO_FEILD"):
        http_sms_config()
    settings.HOMELINK_HTTP_SMS = {"URL": "https://x.example.org", "STATUS_MAP": {"D": "done"}}
    with pytest.raises(ImproperlyConfigured, match="done"):
        http_sms_config()


def test_no_url_configured_waits_for_the_setting(settings: Any) -> None:
    settings.HOMELINK_HTTP_SMS = {}
    gateway = HttpGateway()
    with pytest.raises(GatewayError) as caught:
        gateway.send_sms(to="+447788178715", text="Hi")
    gateway.close()
    assert caught.value.retry
    assert caught.value.reason == "http: HOMELINK_HTTP_SMS has no URL"


def test_the_digits_number_format(fake: FakeSmsGateway) -> None:
    gateway = HttpGateway(fake.http_settings(TO_FORMAT="digits"))
    gateway.send_sms(to=TO, text="Hi")
    gateway.close()
    assert fake.accepted[0].to == "447700900123"


# --- fictional numbers never leave this machine -------------------------------------------------


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Any name lookup or connection fails the test: the decision must be made offline."""
    attempts: list[str] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        attempts.append(repr(args[:1]))
        raise AssertionError("the network was used")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    return attempts


@pytest.mark.usefixtures("settings")
def test_a_fictional_number_is_refused_by_twilio_itself_without_touching_the_network(
    offline: list[str],
) -> None:
    gateway = TwilioGateway(
        account_sid="AC" + "1" * 32,
        auth_token="token",
        from_number="+447700900000",
        api_url="https://api.twilio.com",
    )
    with pytest.raises(GatewayError) as caught:
        gateway.send_sms(to=TO, text="Hi")
    assert not caught.value.retry
    assert "fictional" in caught.value.reason
    assert offline == []


def test_a_fictional_number_is_refused_by_a_remote_http_gateway_offline(
    offline: list[str],
) -> None:
    gateway = HttpGateway({"URL": "https://api.sms-provider.example.com/v1/send"})
    with pytest.raises(GatewayError) as caught:
        gateway.send_sms(to="+447700999999", text="Hi")
    assert not caught.value.retry
    assert offline == []


def test_a_real_number_may_go_to_the_local_fake(fake: FakeSmsGateway, generic: HttpGateway) -> None:
    generic.send_sms(to="+447788178715", text="Hi")
    assert fake.accepted[0].to == "+447788178715"


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("http://127.0.0.1:8025/sms", True),
        ("http://127.9.9.9/", True),
        ("http://[::1]:8000/", True),
        ("https://api.twilio.com", False),
        ("https://127.0.0.1.nip.io/", False),  # a name that a DNS answer would make loopback
        ("http://10.0.0.5/", False),
        ("http://0.0.0.0/", False),
        ("not a url", False),
    ],
)
def test_which_urls_are_this_machine_decided_without_dns(
    url: str, local: bool, offline: list[str]
) -> None:
    assert is_local_url(url) is local
    assert offline == []


def test_localhost_counts_as_this_machine() -> None:
    assert is_local_url("http://localhost:8000/")
    refuse_fictional(TO, "http://localhost:8000/")  # allowed: no exception


def test_the_delivery_id_is_read_from_its_key_only() -> None:
    assert delivery_id_from_key("homelink-0123abcdef012345-981") == 981
    assert delivery_id_from_key("") is None
    assert delivery_id_from_key("something-else-12") is None


def test_twilio_callback_without_a_key_has_no_delivery(
    fake: FakeSmsGateway, twilio: TwilioGateway
) -> None:
    twilio.send_sms(to=TO, text="Hi")
    callback = urlsplit(fake.accepted[0].callback)
    assert callback.path == "/hooks/twilio/status/"
    assert parse_qs(callback.query) == {}
