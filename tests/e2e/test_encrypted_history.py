"""A refund's Temporal history holds no personal data in clear: what the UI, the CLI or anyone
with the server's API reads without the payload keys is ciphertext, search attributes aside;
through the API's codec server staff read it all."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

from temporalio.api.history.v1 import History
from temporalio.client import Client, WorkflowHistory

from refunds.runtime.payload_codec import ENCODING, EncryptionCodec, payloads_in, transform_payloads
from tests.factories import Shop, uid
from tests.stack import TEST_PAYLOAD_KEYS
from workflows.refund import workflow_id

# The key the stack seals with (the first of its payload keys).
STACK_KEY_ID = TEST_PAYLOAD_KEYS.split(":", 1)[0].encode()

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


def in_clear(history: History) -> list[tuple[dict[str, bytes], bytes]]:
    """Payloads left unencrypted, but for search attributes (the SDK marks indexed values with
    their type) and the SDK's own bookkeeping of a local activity (its marker's `data`: seq,
    activity type, attempt, times), which Temporal never passes through a codec."""
    left = []
    for event in history.events:
        marker = event.marker_recorded_event_attributes.details.get("data")
        bookkeeping = list(marker.payloads) if marker is not None else []
        for payload in payloads_in(event):
            if payload.metadata.get("encoding") == ENCODING or "type" in payload.metadata:
                continue
            if payload in bookkeeping:
                continue
            left.append((dict(payload.metadata), payload.data))
    return left


def temporal_cli() -> str:
    return shutil.which("temporal") or str(Path(sys.executable).parent / "temporal")


def show(address: str, refund_no: str, *codec: str) -> bytes:
    """`temporal workflow show --output json`, as its payloads' bytes (JSON gives them in
    base64) and every other field serialized."""
    shown = subprocess.run(
        [temporal_cli(), "workflow", "show", "--workflow-id", workflow_id(refund_no)]
        + ["--address", address, "--output", "json", *codec],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    events = WorkflowHistory.from_json(workflow_id(refund_no), shown.stdout).events
    return History(events=events).SerializeToString()


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
    assert in_clear(proto) == []
    sealed = [p for p in payloads_in(proto) if p.metadata.get("encoding") == ENCODING]
    assert sealed and {p.metadata["encryption-key-id"] for p in sealed} == {STACK_KEY_ID}
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
    assert [s for s in secrets if s.encode() in plain] == []
    ops = shop.ops["Authorization"]
    codec = ["--codec-endpoint", f"{shop.stack.api_url}/codec", "--codec-auth", ops]
    decoded = await asyncio.to_thread(show, address, refund_no, *codec)
    assert [s for s in secrets if s.encode() not in decoded] == []
