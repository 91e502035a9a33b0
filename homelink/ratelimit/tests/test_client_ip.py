"""Which address a request is counted by: spoof-resistant, and one bucket per IPv6 /64."""

from __future__ import annotations

import pytest
from django.http import HttpRequest
from django.test import RequestFactory

from homelink.ratelimit.ip import client_ip


def request(remote: str = "203.0.113.5", forwarded: str | None = None) -> HttpRequest:
    req = RequestFactory().get("/")
    req.META["REMOTE_ADDR"] = remote
    if forwarded is not None:
        req.META["HTTP_X_FORWARDED_FOR"] = forwarded
    return req


def test_remote_addr_by_default() -> None:
    assert client_ip(request("203.0.113.5")) == "203.0.113.5"


def test_forwarded_for_is_ignored_without_trusted_proxies(settings) -> None:
    settings.HOMELINK_TRUSTED_PROXIES = []
    assert client_ip(request("203.0.113.5", "198.51.100.1")) == "203.0.113.5"


def test_forwarded_for_is_ignored_when_the_sender_is_not_a_trusted_proxy(settings) -> None:
    settings.HOMELINK_TRUSTED_PROXIES = ["10.0.0.1"]
    assert client_ip(request("203.0.113.5", "198.51.100.1")) == "203.0.113.5"


def test_behind_a_trusted_proxy_the_client_is_the_right_most_untrusted_hop(settings) -> None:
    settings.HOMELINK_TRUSTED_PROXIES = ["10.0.0.0/8", "127.0.0.1"]
    # The client forged the first entry; the load balancer (10.1.1.1) appended the real address.
    forged = "192.0.2.99, 198.51.100.7, 10.1.1.1"
    assert client_ip(request("127.0.0.1", forged)) == "198.51.100.7"


def test_a_chain_of_trusted_proxies_falls_back_to_the_left_most(settings) -> None:
    settings.HOMELINK_TRUSTED_PROXIES = ["10.0.0.0/8"]
    assert client_ip(request("10.0.0.1", "10.0.0.3, 10.0.0.2")) == "10.0.0.3"


def test_garbage_in_forwarded_for_keys_by_the_last_address_vouched_for(settings) -> None:
    settings.HOMELINK_TRUSTED_PROXIES = ["10.0.0.0/8"]
    # A fresh string per request must not mean a fresh bucket per request.
    assert client_ip(request("10.0.0.1", "not-an-ip-1234")) == "10.0.0.1"
    assert client_ip(request("10.0.0.1", "")) == "10.0.0.1"
    assert client_ip(request("10.0.0.1", "junk, 10.0.0.2")) == "10.0.0.2"


def test_forwarded_addresses_with_ports(settings) -> None:
    settings.HOMELINK_TRUSTED_PROXIES = ["10.0.0.1"]
    assert client_ip(request("10.0.0.1", "198.51.100.7:51234")) == "198.51.100.7"
    assert client_ip(request("10.0.0.1", "[2001:db8:1:2::9]:443")) == "2001:db8:1:2::/64"


@pytest.mark.parametrize(
    ("remote", "expected"),
    [
        ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"),
        ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
        ("2001:DB8:1:3::1", "2001:db8:1:3::/64"),
        ("::ffff:192.0.2.44", "192.0.2.44"),
    ],
)
def test_ipv6_is_keyed_by_its_64(remote, expected) -> None:
    assert client_ip(request(remote)) == expected


def test_a_whole_64_shares_one_identity() -> None:
    first = client_ip(request("2001:db8:1:2::1"))
    assert client_ip(request("2001:db8:1:2:ffff:ffff:ffff:ffff")) == first
    assert client_ip(request("2001:db8:1:3::1")) != first


def test_ipv6_trusted_proxy(settings) -> None:
    settings.HOMELINK_TRUSTED_PROXIES = ["fd00::/8"]
    assert client_ip(request("fd00::1", "2001:db8:9:9::5, fd00::2")) == "2001:db8:9:9::/64"


def test_a_missing_or_broken_remote_addr_shares_one_bucket() -> None:
    assert client_ip(request("")) == "unknown"
    assert client_ip(request("bogus")) == "unknown"
