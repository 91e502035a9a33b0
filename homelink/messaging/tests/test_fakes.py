"""The fake provider itself: what the benchmark and the crash test rely on."""

from __future__ import annotations

import base64
import http.client
import json
import threading
from urllib.parse import urlencode, urlsplit

import pytest

from homelink.messaging.fakes import FakeSmsGateway
from homelink.messaging.gateways.http import HttpGateway

TO = "+447700900123"


def raw_post(
    fake: FakeSmsGateway, path: str, body: bytes, headers: dict[str, str]
) -> tuple[int, dict[str, object]]:
    parts = urlsplit(fake.url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        conn.close()


def twilio_headers(fake: FakeSmsGateway, key: str = "") -> dict[str, str]:
    pair = f"{fake.account_sid}:{fake.auth_token}".encode()
    headers = {
        "Authorization": "Basic " + base64.b64encode(pair).decode(),
        "Content-Type": "application/x-www-form-urlencoded",
    }
    if key:
        headers["Idempotency-Key"] = key
    return headers


def test_start_stop_and_the_context_manager() -> None:
    fake = FakeSmsGateway().start()
    url = fake.url
    assert url.startswith("http://127.0.0.1:")
    fake.stop()
    fake.stop()  # twice is harmless
    with pytest.raises(RuntimeError):
        _ = fake.url
    with FakeSmsGateway() as other:
        assert other.url != ""


def test_twilio_protocol_answers_like_twilio_and_honours_idempotency_keys() -> None:
    with FakeSmsGateway() as fake:
        path = f"/2010-04-01/Accounts/{fake.account_sid}/Messages.json"
        body = urlencode({"To": TO, "From": "+447700900000", "Body": "Hi"}).encode()
        status, first = raw_post(fake, path, body, twilio_headers(fake, key="k1"))
        assert status == 201
        assert str(first["sid"]).startswith("SM") and len(str(first["sid"])) == 34
        _, again = raw_post(fake, path, body, twilio_headers(fake, key="k1"))
        assert again["sid"] == first["sid"]
        assert (fake.count, fake.repeated_keys, fake.requests) == (1, 1, 2)


def test_wrong_credentials_bad_numbers_and_unknown_paths_are_refused() -> None:
    with FakeSmsGateway() as fake:
        path = f"/2010-04-01/Accounts/{fake.account_sid}/Messages.json"
        body = urlencode({"To": TO, "From": "+447700900000", "Body": "Hi"}).encode()
        headers = {**twilio_headers(fake), "Authorization": "Basic eDp5"}
        assert raw_post(fake, path, body, headers)[0] == 401
        bad = urlencode({"To": "07700", "From": "+447700900000", "Body": "Hi"}).encode()
        status, error = raw_post(fake, path, bad, twilio_headers(fake))
        assert (status, error["code"]) == (400, 21211)
        assert raw_post(fake, "/elsewhere", body, twilio_headers(fake))[0] == 404
        assert fake.count == 0


def test_failures_are_used_up_in_order() -> None:
    with FakeSmsGateway() as fake:
        gateway = HttpGateway(fake.http_settings())
        fake.fail_next(2)
        fake.fail_next(1, permanent=True, reason="barred")
        outcomes = []
        for _ in range(4):
            try:
                gateway.send_sms(to=TO, text="Hi")
                outcomes.append("ok")
            except Exception as exc:
                outcomes.append(str(exc))
        gateway.close()
        assert outcomes == [
            "http 503: overloaded",
            "http 503: overloaded",
            "http 400: barred",
            "ok",
        ]
        assert fake.count == 1


def test_many_senders_at_once_are_all_counted() -> None:
    with FakeSmsGateway() as fake:

        def send(n: int) -> None:
            gateway = HttpGateway(fake.http_settings())
            for i in range(20):
                gateway.send_sms(to=TO, text="Hi", key=f"homelink-00-{n * 100 + i}")
            gateway.close()

        threads = [threading.Thread(target=send, args=(n,)) for n in range(5)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert fake.wait_for(100)
        assert len({item.id for item in fake.accepted}) == 100
        assert fake.connections == 5


def test_environ_points_a_separate_process_here() -> None:
    with FakeSmsGateway() as fake:
        env = fake.environ()
        assert env["HOMELINK_SMS_GATEWAY"].endswith("HttpGateway")
        assert json.loads(env["HOMELINK_HTTP_SMS"])["URL"] == fake.url + "/sms"
        twilio = fake.environ("twilio")
        assert twilio["HOMELINK_TWILIO_API_URL"] == fake.url
