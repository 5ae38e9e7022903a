"""A refund's Temporal history holds no personal data in clear: what the UI, the CLI or anyone
with the server's API reads without the payload keys is ciphertext, search attributes aside;
through the API's codec server staff read it all."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

from temporalio.api.common.v1 import Payload
from temporalio.api.history.v1 import History
from temporalio.client import Client

from refunds.runtime.payload_codec import ENCODING, EncryptionCodec, payloads_in, transform_payloads
from tests.factories import Shop, uid
from workflows.refund import workflow_id

# The happy path's length (tests/workflows/test_replay.py): the codec changes payloads only.
HAPPY_PATH_EVENTS = 29


async def succeeded_refund(shop: Shop) -> tuple[dict, str, str, str]:
    """A refund with words of its own, approved with a note: (order, refund_no, reason, note)."""
    order = await shop.order(amount=4200)
    reason = f"box arrived crushed {uid('reason')}"
    refund = await shop.refund(order, 4200, reason=reason)
    note = f"photos checked {uid('note')}"
    approved = await shop.http.post(
        f"/v1/refunds/{refund['refund_no']}/approve", json={"note": note}, headers=shop.approver
    )
    assert approved.status_code == 200, approved.text
    done = await shop.wait_status(refund["refund_no"], "succeeded")
    return order, done["refund_no"], reason, note


def personal(shop: Shop, order: dict, reason: str, note: str, refund: dict) -> list[str]:
    approver = str(refund["approved_by"])
    return [reason, note, shop.customer_id, approver, order["payment_ref"]]


def is_search_attribute(payload: Payload) -> bool:
    return "type" in payload.metadata  # the SDK marks indexed values with their type


def temporal_cli() -> str:
    return shutil.which("temporal") or str(Path(sys.executable).parent / "temporal")


def show(address: str, refund_no: str, *codec: str) -> str:
    shown = subprocess.run(
        [temporal_cli(), "workflow", "show", "--workflow-id", workflow_id(refund_no)]
        + ["--address", address, "--output", "json", *codec],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    return shown.stdout


async def test_history_read_without_the_keys_holds_no_reason_note_or_user_id(
    shop: Shop, temporal: Client
) -> None:
    order, refund_no, reason, note = await succeeded_refund(shop)
    refund = await shop.get_refund(refund_no)
    secrets = personal(shop, order, reason, note, refund)
    address = shop.stack.settings.temporal_address
    assert address is not None
    bare = await Client.connect(address)  # no codec: what the Temporal UI shows undecoded
    history = await bare.get_workflow_handle(workflow_id(refund_no)).fetch_history()
    assert len(history.events) == HAPPY_PATH_EVENTS
    proto = History(events=history.events)
    payloads = list(payloads_in(proto))
    clear = [p for p in payloads if p.metadata.get("encoding") != ENCODING]
    assert payloads and all(is_search_attribute(p) for p in clear)
    assert {p.metadata["encryption-key-id"] for p in payloads if p not in clear} == {b"dev"}
    raw = proto.SerializeToString()
    assert [s for s in secrets if s.encode() in raw] == []
    # Decrypted with the workers' keys, the same history holds every one of them.
    codec = EncryptionCodec(shop.stack.settings.payload_key_set())
    transform_payloads(proto, codec.decrypt)
    opened = proto.SerializeToString()
    assert [s for s in secrets if s.encode() not in opened] == []


async def test_temporal_cli_shows_ciphertext_and_staff_decode_it_at_the_codec_server(
    shop: Shop,
) -> None:
    order, refund_no, reason, note = await succeeded_refund(shop)
    secrets = personal(shop, order, reason, note, await shop.get_refund(refund_no))
    address = shop.stack.settings.temporal_address
    assert address is not None
    plain = await asyncio.to_thread(show, address, refund_no)
    assert [s for s in secrets if s in plain] == []
    ops = shop.ops["Authorization"]
    codec = ["--codec-endpoint", f"{shop.stack.api_url}/codec", "--codec-auth", ops]
    decoded = await asyncio.to_thread(show, address, refund_no, *codec)
    assert reason in decoded and note in decoded and shop.customer_id in decoded
    customer = ["--codec-endpoint", f"{shop.stack.api_url}/codec"]
    customer += ["--codec-auth", shop.customer["Authorization"]]
    refused = await asyncio.to_thread(
        subprocess.run,
        [temporal_cli(), "workflow", "show", "--workflow-id", workflow_id(refund_no)]
        + ["--address", address, "--output", "json", *customer],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert reason not in refused.stdout
