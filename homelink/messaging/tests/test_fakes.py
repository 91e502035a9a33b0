"""The fake provider itself: what the benchmark and the crash test rely on."""

from __future__ import annotations

import base64
import http.client
import json
import subprocess
import sys
import threading
import time
from urllib.parse import urlencode, urlsplit

import pytest

from homelink.messaging.fakes import Accepted, FakeSmsGateway
from homelink.messaging.gateways.http import HttpGateway

TO = "+447700900123"


def raw_post(
    fake: FakeSmsGateway, path: str, body: bytes, headers: dict[str, str]
) -> tuple[int, dict[str, object]]:
    status, data, _ = post(fake, path, body, headers)
    return status, data


def post(
    fake: FakeSmsGateway,
    path: str,
    body: bytes,
    headers: dict[str, str],
    *,
    conn: http.client.HTTPConnection | None = None,
    timeout: float = 10,
) -> tuple[int, dict[str, object], http.client.HTTPMessage]:
    """One POST; on ``conn`` if given (kept alive, so a burst is quick), else on its own."""
    own = conn is None
    if conn is None:
        parts = urlsplit(fake.url)
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
    try:
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"{}"), response.headers
    finally:
        if own:
            conn.close()


def connect(fake: FakeSmsGateway) -> http.client.HTTPConnection:
    parts = urlsplit(fake.url)
    return http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)


def twilio_path(fake: FakeSmsGateway) -> str:
    return f"/2010-04-01/Accounts/{fake.account_sid}/Messages.json"


def twilio_body(text: str = "Hi") -> bytes:
    return urlencode({"To": TO, "From": "+447700900000", "Body": text}).encode()


def http_headers(fake: FakeSmsGateway, key: str = "") -> dict[str, str]:
    headers = {"Authorization": f"Bearer {fake.api_key}", "Content-Type": "application/json"}
    if key:
        headers["Idempotency-Key"] = key
    return headers


def http_body(text: str = "Hi") -> bytes:
    return json.dumps({"to": TO, "text": text}).encode()


def burst(fake: FakeSmsGateway, n: int) -> list[int]:
    """``n`` generic sends back to back on one connection; their statuses."""
    conn = connect(fake)
    try:
        return [post(fake, "/sms", http_body(), http_headers(fake), conn=conn)[0] for _ in range(n)]
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


# The rate limit


def test_a_send_over_the_rate_gets_429_with_retry_after_on_both_protocols() -> None:
    # Two a second: a full bucket holds two, and the third, straight after, is refused.
    with FakeSmsGateway(rate=2) as fake:
        conn = connect(fake)
        for _ in range(2):
            assert (
                post(fake, twilio_path(fake), twilio_body(), twilio_headers(fake), conn=conn)[0]
                == 201
            )
        status, error, headers = post(
            fake, twilio_path(fake), twilio_body("late"), twilio_headers(fake), conn=conn
        )
        assert status == 429
        assert error == {
            "code": 20429,
            "message": "Too Many Requests",
            "more_info": "https://www.twilio.com/docs/errors/20429",
            "status": 429,
        }
        assert headers["Retry-After"] == "1"
        # The connection survives a refusal, as it does at Twilio.
        status, error, headers = post(
            fake, "/sms", http_body("late"), http_headers(fake), conn=conn
        )
        conn.close()
        assert status == 429
        assert error == {"error": {"code": 429, "message": "rate limit exceeded"}}
        assert headers["Retry-After"] == "1"
        assert fake.count == 2
        assert all(item.text == "Hi" for item in fake.accepted)
        assert (fake.refused, fake.requests) == (2, 4)


def test_retry_after_is_the_whole_seconds_until_a_token_and_can_be_left_out() -> None:
    # Under one a second the bucket still holds one; the next is two seconds away.
    with FakeSmsGateway(rate=0.5) as fake:
        assert burst(fake, 2) == [200, 429]
        _, _, headers = post(fake, "/sms", http_body(), http_headers(fake))
        assert headers["Retry-After"] == "2"
    with FakeSmsGateway(rate=0.5, retry_after=False) as fake:
        assert burst(fake, 1) == [200]
        status, _, headers = post(fake, "/sms", http_body(), http_headers(fake))
        assert status == 429
        assert "Retry-After" not in headers


def test_the_bucket_refills_at_the_rate() -> None:
    with FakeSmsGateway(rate=20) as fake:
        conn = connect(fake)
        statuses: list[int] = []
        # Until the bucket runs dry; a bound, not a count, so that a slow machine still gets there.
        while 429 not in statuses and len(statuses) < 1000:
            statuses.append(post(fake, "/sms", http_body(), http_headers(fake), conn=conn)[0])
        conn.close()
        assert statuses[:20] == [200] * 20
        assert statuses[-1] == 429
        # Whatever was left over, a twentieth of a second refills at least one token.
        time.sleep(1 / 20 + 0.02)
        assert burst(fake, 1) == [200]
        assert fake.count == statuses.count(200) + 1
        assert fake.refused == 1


def test_repeated_keys_spend_tokens_too_and_refusals_use_up_no_failures() -> None:
    with FakeSmsGateway(rate=1) as fake:
        assert post(fake, "/sms", http_body(), http_headers(fake, key="k1"))[0] == 200
        fake.fail_next(1)
        # Refused by the rate, not by the queued failure, which waits for a send that gets in.
        assert post(fake, "/sms", http_body(), http_headers(fake, key="k1"))[0] == 429
        assert (fake.repeated_keys, fake.refused, fake.count) == (0, 1, 1)
        fake.rate = None
        assert post(fake, "/sms", http_body(), http_headers(fake))[0] == 503


def test_max_in_window_bounds_what_the_provider_took() -> None:
    with FakeSmsGateway() as fake:
        assert fake.max_in_window() == 0
        burst(fake, 10)
        # Unlimited: the whole burst lands well within a second, and none within no time.
        assert fake.max_in_window(1.0) == 10
        assert fake.max_in_window(0) == 0
    with FakeSmsGateway(rate=20) as fake:
        started = time.monotonic()
        while time.monotonic() - started < 0.3:
            burst(fake, 10)
        elapsed = time.monotonic() - started
        # The full bucket, then what refilled while the burst went on; never a second's worth
        # more than the rate allows.
        assert fake.count <= 20 + 20 * elapsed + 1
        assert fake.max_in_window(1.0) <= 20 + 20 * 1.0
        assert fake.max_in_window(0.1) <= 20 + 20 * 0.1
        assert fake.max_in_window(1.0) == fake.count
        assert fake.refused > 0


def test_max_in_window_slides_over_the_times() -> None:
    fake = FakeSmsGateway()
    # Straight onto the record: the two-pointer walk is what is under test, not the server.
    for at in [0.0, 0.1, 0.5, 0.95, 1.0, 1.05, 2.5, 3.4, 3.45]:
        fake._accepted.append(Accepted(f"m{at}", "http", TO, "Hi", "", "", "", at, at))
    assert fake.max_in_window(1.0) == 5  # 0.1 .. 1.05; 1.0 after 0.0 is a full second on
    assert fake.max_in_window(0.1) == 2
    assert fake.max_in_window(10) == 9


def test_reset_forgets_refusals_and_refills_the_bucket() -> None:
    with FakeSmsGateway(rate=3) as fake:
        assert burst(fake, 4) == [200, 200, 200, 429]
        assert fake.refused == 1
        fake.reset()
        assert (fake.refused, fake.count, fake.requests) == (0, 0, 0)
        assert burst(fake, 4) == [200, 200, 200, 429]


def test_a_rate_can_be_set_while_running() -> None:
    with FakeSmsGateway() as fake:
        assert burst(fake, 5) == [200] * 5
        fake.rate = 2
        assert burst(fake, 3) == [200, 200, 429]


# Late answers


def test_slow_next_takes_the_message_then_answers_late() -> None:
    with FakeSmsGateway() as fake:
        fake.slow_next(1, 0.4)
        with pytest.raises(TimeoutError):
            post(fake, "/sms", http_body("taken"), http_headers(fake), timeout=0.1)
        # The client gave up, but the provider has it: a retry must not send it twice.
        assert [item.text for item in fake.accepted] == ["taken"]
        fake.slow_next(1, 0.15)
        started = time.monotonic()
        assert post(fake, "/sms", http_body(), http_headers(fake))[0] == 200
        assert time.monotonic() - started >= 0.15
        # Used up: the next is prompt again.
        started = time.monotonic()
        assert post(fake, "/sms", http_body(), http_headers(fake))[0] == 200
        assert time.monotonic() - started < 0.15
        assert fake.count == 3


def test_latency_can_be_changed_while_running_and_answers_after_taking() -> None:
    with FakeSmsGateway() as fake:
        fake.latency = 0.3
        with pytest.raises(TimeoutError):
            post(fake, "/sms", http_body(), http_headers(fake), timeout=0.1)
        assert fake.count == 1
        fake.latency = 0.0
        started = time.monotonic()
        assert post(fake, "/sms", http_body(), http_headers(fake))[0] == 200
        assert time.monotonic() - started < 0.2


# In its own process


def test_main_serves_in_its_own_process_until_stdin_closes() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "homelink.messaging.fakes", "--rate", "1"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        where = json.loads(proc.stdout.readline())
        url = where["url"]
        assert where["twilio"]["HOMELINK_TWILIO_API_URL"] == url
        settings = json.loads(where["http"]["HOMELINK_HTTP_SMS"])
        gateway = HttpGateway(settings)
        gateway.send_sms(to=TO, text="Hi")
        # The rate came through: a second send straight after is refused.
        parts = urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
        headers = {"Authorization": settings["AUTH_VALUE"], "Content-Type": "application/json"}
        conn.request("POST", "/sms", body=http_body(), headers=headers)
        assert conn.getresponse().status == 429
        conn.close()
        gateway.close()
        proc.stdin.close()
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_main_stops_on_sigterm() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "homelink.messaging.fakes"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert json.loads(proc.stdout.readline())["url"].startswith("http://127.0.0.1:")
        proc.terminate()
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                pipe.close()
