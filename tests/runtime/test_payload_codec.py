"""The payload codec: AES-256-GCM per payload, the key named in it, rotation by key order, plain
payloads passed through; and the converter it sits under keeps the context-free sandbox."""

from __future__ import annotations

import pytest
from cryptography.exceptions import InvalidTag
from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.exceptions import ApplicationError

from refunds.domain.messages import RefundStatus
from refunds.runtime.payload_codec import (
    ENCODING,
    EncryptionCodec,
    PayloadKeyError,
    new_key_text,
    parse_payload_keys,
)
from refunds.runtime.payload_converter import DATA_CONVERTER, encrypted
from refunds.runtime.workflow_runner import ignores_context

OLD, NEW = new_key_text(), new_key_text()


def codec(keys: str) -> EncryptionCodec:
    return EncryptionCodec(parse_payload_keys(keys))


async def test_each_payload_is_sealed_under_its_own_nonce_and_names_its_key() -> None:
    sealing = codec(f"k1:{OLD}")
    plain = (await DATA_CONVERTER.encode(["arrived broken"]))[0]
    first, second = await sealing.encode([plain, plain])
    assert first.metadata["encoding"] == ENCODING and first.metadata["encryption-key-id"] == b"k1"
    assert first.data[:12] != second.data[:12] and b"broken" not in first.data
    assert await sealing.decode([first, second]) == [plain, plain]


async def test_a_rotation_encrypts_with_the_first_key_and_decrypts_with_either() -> None:
    before = codec(f"old:{OLD}")
    after = codec(f"new:{NEW},old:{OLD}")
    plain = (await DATA_CONVERTER.encode([{"note": "ok"}]))[0]
    [written_before] = await before.encode([plain])
    [written_after] = await after.encode([plain])
    assert written_after.metadata["encryption-key-id"] == b"new"
    assert await after.decode([written_before, written_after]) == [plain, plain]
    with pytest.raises(PayloadKeyError, match="'new'"):
        await before.decode([written_after])


async def test_a_tampered_payload_is_refused() -> None:
    [sealed] = await codec(f"k:{OLD}").encode([Payload(data=b"1")])
    sealed.data = sealed.data[:-1] + bytes([sealed.data[-1] ^ 1])
    with pytest.raises(InvalidTag):
        await codec(f"k:{OLD}").decode([sealed])


async def test_a_plain_payload_passes_through_so_old_histories_still_read() -> None:
    plain = (await DATA_CONVERTER.encode([RefundStatus.SUCCEEDED]))[0]
    assert await codec(f"k:{OLD}").decode([plain]) == [plain]


async def test_failure_messages_are_sealed_too() -> None:
    converter = encrypted(codec(f"k:{OLD}"))
    failure = Failure()
    await converter.encode_failure(ApplicationError("customer cust-7 said: broken"), failure)
    assert "cust-7" not in failure.message and "cust-7" not in failure.stack_trace
    assert failure.encoded_attributes.metadata["encoding"] == ENCODING
    error = await converter.decode_failure(failure)
    assert isinstance(error, ApplicationError) and error.message == "customer cust-7 said: broken"


@pytest.mark.parametrize(
    "raw",
    ["", "nokey", "k:", "k:not-base64!", f"k:{OLD[:20]}", f"bad id:{OLD}", f"k:{OLD},k:{NEW}"],
)
def test_unreadable_keys_are_refused_whole(raw: str) -> None:
    with pytest.raises(PayloadKeyError):
        parse_payload_keys(raw)


def test_keys_read_in_standard_or_url_safe_base64_and_never_print() -> None:
    standard = OLD.replace("-", "+").replace("_", "/") + "="
    [key] = parse_payload_keys(f"k:{standard}")
    assert key == parse_payload_keys(f"k:{OLD}")[0] and len(key.secret) == 32
    assert OLD not in repr(key)


def test_the_codec_takes_no_context_so_the_workers_runner_stays_context_free() -> None:
    assert ignores_context(encrypted(codec(f"k:{OLD}")))
