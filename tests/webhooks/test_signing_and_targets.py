"""Signatures a receiver can check, and the targets a delivery may not go to (issue 13)."""

from __future__ import annotations

import time

import pytest

from refunds.domain.errors import WebhookTargetRefused
from refunds.webhooks.signing import new_secret, sign, signature_header, verify
from refunds.webhooks.targets import check_target

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
