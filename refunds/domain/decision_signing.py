"""People's decisions carry the API's signature, so only the API decides for a person.

Anyone who can reach Temporal can send an update; the refund workflow takes an approve, reject
or resolve only when it is signed with a decision key (`REFUNDS_DECISION_KEY`) that the worker
holds: the API signs what its authenticated principal decided (actor, verb, outcome, note), so a
Temporal client without the key can neither decide nor pass four-eyes with another actor. The
check runs in the updates' validators, which a replay never runs, so a key rotated away later
cannot change a stored history. Standard library only: the workflow sandbox imports it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable

# The keys this process verifies with (the worker installs them at start; several during a
# rotation). Shared with the workflow sandbox, which imports this module passed through.
_trusted: list[bytes] = []


def trust(keys: Iterable[str | None]) -> None:
    """The keys decisions may be signed with from now on, the signing one first."""
    _trusted[:] = [key.encode() for key in keys if key]


def decision_signature(
    key: str, verb: str, refund_no: str, actor: str, outcome: str, note: str
) -> str:
    """HMAC-SHA256 over the decision's fields, written unambiguously (a JSON list)."""
    message = json.dumps([verb, refund_no, actor, outcome, note], ensure_ascii=False)
    return hmac.new(key.encode(), message.encode(), hashlib.sha256).hexdigest()


def is_authentic(
    signature: str, verb: str, refund_no: str, actor: str, outcome: str, note: str
) -> bool:
    """Signed by a trusted key. No key installed trusts nothing: a worker without its key
    refuses every decision rather than take unsigned ones."""
    if not signature:
        return False
    return any(
        hmac.compare_digest(
            signature, decision_signature(key.decode(), verb, refund_no, actor, outcome, note)
        )
        for key in _trusted
    )
