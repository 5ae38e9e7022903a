"""Signatures a receiver can check, and the targets a delivery may not go to (issue 13)."""

from __future__ import annotations

import ipaddress
import time

import pytest

from refunds.domain.errors import WebhookTargetRefused
from refunds.webhooks.signing import new_secret, sign, signature_header, verify
from refunds.webhooks.targets import (
    check_target,
    embedded_ipv4,
    refused_address,
    vetted_addresses,
)

BODY = b'{"id":"evt_1","type":"refund.succeeded"}'


def test_a_signature_verifies_with_its_secret_and_no_other() -> None:
    secret, other = new_secret(), new_secret()
    header = signature_header([secret], BODY, int(time.time()))
    assert verify(header, BODY, secret)
    assert not verify(header, BODY, other)
    assert not verify(header, BODY + b" ", secret)


def test_during_an_overlap_both_secrets_verify() -> None:
    new, old = new_secret(), new_secret()
    header = signature_header([new, old], BODY, int(time.time()))
    assert verify(header, BODY, new) and verify(header, BODY, old)


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    import hashlib
    import hmac

    expected = hmac.new(b"k", b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert sign("k", 1700000000, BODY) == expected
    assert signature_header(["k"], BODY, 1700000000) == f"t=1700000000,v1={expected}"


def test_an_old_timestamp_is_refused() -> None:
    secret = new_secret()
    header = signature_header([secret], BODY, int(time.time()) - 3600)
    assert not verify(header, BODY, secret)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/hook",
        "http://localhost/hook",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.5/",
        "http://192.168.1.1/",
        "http://172.16.0.1/",
        "http://0.0.0.0/",
        "http://224.0.0.1/",
        "ftp://example.com/",
        "file:///etc/passwd",
        "http:///nohost",
        "http://[::1/unclosed",
    ],
)
async def test_private_and_non_http_targets_are_refused(url: str) -> None:
    with pytest.raises(WebhookTargetRefused):
        await check_target(url, allow_private=False)


async def test_a_public_address_is_allowed_and_private_ones_when_the_setting_says_so() -> None:
    await check_target("https://93.184.216.34/hook", allow_private=False)
    await check_target("http://127.0.0.1:9/hook", allow_private=True)
    with pytest.raises(WebhookTargetRefused):
        await check_target("ftp://127.0.0.1/", allow_private=True)


@pytest.mark.parametrize(
    ("address", "range_"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "IPv6 loopback"),
        ("10.1.2.3", "private 10/8"),
        ("172.16.0.1", "private 172.16/12"),
        ("192.168.1.1", "private 192.168/16"),
        ("100.64.0.1", "shared address space (CGNAT)"),
        ("169.254.169.254", "link-local (cloud metadata)"),
        ("fe80::1", "IPv6 link-local"),
        ("fe80::1%eth0", "IPv6 link-local with a scope id"),
        ("fc00::1", "unique local"),
        ("fec0::1", "site-local"),
        ("feff:ffff::1", "site-local, top of the range"),
        ("0.0.0.0", "unspecified"),
        ("::", "IPv6 unspecified"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "IPv6 multicast"),
        ("240.0.0.1", "reserved"),
        ("198.18.0.1", "benchmarking"),
        ("::ffff:127.0.0.1", "IPv4-mapped loopback"),
        ("::ffff:10.0.0.1", "IPv4-mapped private"),
        ("::ffff:169.254.169.254", "IPv4-mapped link-local"),
        ("2002:7f00:1::", "6to4 of 127.0.0.1"),
        ("2002:a00:1::1", "6to4 of 10.0.0.1"),
        ("2002:a9fe:a9fe::", "6to4 of 169.254.169.254"),
        ("64:ff9b::7f00:1", "NAT64 of 127.0.0.1"),
        ("64:ff9b::a00:1", "NAT64 of 10.0.0.1"),
        ("64:ff9b::c0a8:101", "NAT64 of 192.168.1.1"),
        ("64:ff9b:1::a00:1", "local-use NAT64 prefix"),
        ("::127.0.0.1", "IPv4-compatible (deprecated)"),
        ("2001:db8::1", "documentation"),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
    ],
)
def test_an_address_in_a_refused_range_is_refused(address: str, range_: str) -> None:
    assert refused_address(address), range_


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("93.184.216.34", "a public IPv4"),
        ("2606:4700:4700::1111", "a public IPv6"),
        ("::ffff:93.184.216.34", "IPv4-mapped public"),
        ("2002:5db8:d822::1", "6to4 of a public IPv4"),
        ("64:ff9b::5db8:d822", "NAT64 of a public IPv4"),
    ],
)
def test_a_public_address_is_allowed_also_when_embedded(address: str, why: str) -> None:
    assert not refused_address(address), why


@pytest.mark.parametrize(
    ("address", "embedded"),
    [
        ("::ffff:10.0.0.1", "10.0.0.1"),
        ("2002:a00:1::1", "10.0.0.1"),
        ("64:ff9b::a00:1", "10.0.0.1"),
        ("10.0.0.1", None),
        ("2606:4700:4700::1111", None),
    ],
)
def test_the_ipv4_an_ipv6_address_stands_for(address: str, embedded: str | None) -> None:
    found = embedded_ipv4(ipaddress.ip_address(address))
    assert (str(found) if found else None) == embedded


async def test_a_name_is_refused_when_any_of_its_addresses_is() -> None:
    # `localhost` resolves (from /etc/hosts) to loopback only.
    with pytest.raises(WebhookTargetRefused, match="localhost"):
        await vetted_addresses("localhost", 80, allow_private=False)
    assert "127.0.0.1" in await vetted_addresses("localhost", 80, allow_private=True)
