"""The codec server as the Temporal UI and CLI call it: staff read decrypted payloads, nobody
else; only the Temporal UI's origin may call it from a browser."""

from __future__ import annotations

import base64
from typing import Any

import httpx
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads

from refunds.runtime.payload_codec import EncryptionCodec, new_key_text, parse_payload_keys
from refunds.settings import Settings
from tests.factories import Shop
from tests.stack import TEST_PAYLOAD_KEYS

# The key the stack seals with (the first of its payload keys).
STACK_KEY_ID = TEST_PAYLOAD_KEYS.split(":", 1)[0].encode()

UI = "http://temporal-ui.example:8080"


def body(*texts: str) -> dict[str, Any]:
    """Temporal's JSON of `Payloads`: metadata and data in base64."""
    plain = base64.b64encode(b"json/plain").decode()
    return {
        "payloads": [
            {"metadata": {"encoding": plain}, "data": base64.b64encode(t.encode()).decode()}
            for t in texts
        ]
    }


async def test_staff_encode_and_decode_payloads_as_the_workers_do(shop: Shop) -> None:
    given = body('"arrived broken"', '{"note": "ok"}')
    sealed = (await shop.http.post("/codec/encode", json=given, headers=shop.ops)).json()
    kid = base64.b64decode(sealed["payloads"][0]["metadata"]["encryption-key-id"])
    assert kid == STACK_KEY_ID and b"broken" not in base64.b64decode(sealed["payloads"][0]["data"])
    for staff in (shop.ops, shop.admin, shop.approver):
        opened = await shop.http.post("/codec/decode", json=sealed, headers=staff)
        assert (opened.status_code, opened.json()) == (200, given)


async def test_plain_payloads_come_back_unchanged(shop: Shop) -> None:
    given = body('"from before the codec"')
    opened = await shop.http.post("/codec/decode", json=given, headers=shop.ops)
    assert opened.json() == given


async def test_a_customer_is_403_and_no_token_is_401(shop: Shop) -> None:
    sealed = (await shop.http.post("/codec/encode", json=body('"x"'), headers=shop.ops)).json()
    customer = await shop.http.post("/codec/decode", json=sealed, headers=shop.customer)
    assert (customer.status_code, customer.json()["error"]["code"]) == (403, "forbidden")
    anonymous = await shop.http.post("/codec/decode", json=sealed)
    assert anonymous.status_code == 401


async def test_a_payload_under_an_unknown_key_or_tampered_is_400(shop: Shop) -> None:
    other = EncryptionCodec(parse_payload_keys(f"elsewhere:{new_key_text()}"))
    foreign = Payloads(payloads=[other.encrypt(Payload(metadata={"encoding": b"json/plain"}))])
    unknown = await shop.http.post(
        "/codec/decode", content=json_format.MessageToJson(foreign), headers=shop.ops
    )
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (
        400,
        "payload_not_decodable",
    )
    sealed = (await shop.http.post("/codec/encode", json=body('"x"'), headers=shop.ops)).json()
    data = bytearray(base64.b64decode(sealed["payloads"][0]["data"]))
    data[-1] ^= 1
    sealed["payloads"][0]["data"] = base64.b64encode(bytes(data)).decode()
    tampered = await shop.http.post("/codec/decode", json=sealed, headers=shop.ops)
    assert (tampered.status_code, tampered.json()["error"]["code"]) == (
        400,
        "payload_not_decodable",
    )
    not_payloads = await shop.http.post("/codec/decode", content=b"[1]", headers=shop.ops)
    assert not_payloads.status_code == 400


async def test_only_the_temporal_ui_origin_passes_the_preflight(shop: Shop) -> None:
    settings: Settings = shop.stack.settings.model_copy(update={"temporal_ui_url": f"{UI}/"})
    url = shop.stack.api(settings)
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type,x-namespace",
    }
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        ui = await http.options("/codec/decode", headers={"Origin": UI, **preflight})
        assert ui.status_code == 200 and ui.headers["access-control-allow-origin"] == UI
        assert ui.headers["access-control-allow-credentials"] == "true"
        other = await http.options("/codec/decode", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
        # The rest of the API answers no cross-origin script, the UI's included.
        api = await http.get("/healthz", headers={"Origin": UI})
        assert "access-control-allow-origin" not in api.headers
