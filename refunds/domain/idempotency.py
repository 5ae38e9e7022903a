"""When a repeated refund request is "the same" one (SPEC §5: same refund_no and body → same
refund; other body → 409). Shared by the API, which answers repeats before starting anything,
and the apply activity, which decides for a repeat that raced past the API."""

from __future__ import annotations

import hashlib
import json

from refunds.domain.messages import RefundRequest, RefundSource


def request_fingerprint(request: RefundRequest) -> str:
    """A digest of what the caller asked for; the refund_no itself is the key, not the body."""
    body = {
        "order_no": request.order_no,
        "amount": request.amount,
        "reason": request.reason,
        "items": sorted((i.sku, i.quantity) for i in request.items),
        "requested_by": request.requested_by,
        "source": str(request.source),
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def hidden_from(request: RefundRequest, owner: str) -> bool:
    """A customer reusing another customer's refund_no must not learn that refund exists."""
    return request.source == RefundSource.CUSTOMER and request.requested_by != owner
