"""Stripe's form encoding: `metadata[refund_no]=R1`, `expand[0]=charge`, `a[]=x`.

The official client form-encodes every v1 request body and query string with bracketed keys;
this turns them back into nested dicts and lists.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl

from sandboxes.stripe_sandbox.errors import StripeAPIError

_SEGMENT = re.compile(r"\[([^\]]*)\]")
_INTEGER = re.compile(r"^-?\d+$")


def parse_form(body: bytes | str) -> dict[str, Any]:
    """Decode an `application/x-www-form-urlencoded` body into nested params."""
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    return nest_pairs(parse_qsl(text, keep_blank_values=True))


def nest_pairs(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Nest flat `a[b][c]` pairs; dicts whose keys are all indexes become lists."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        head, _, rest = key.partition("[")
        path = [head, *_SEGMENT.findall("[" + rest)] if rest else [head]
        node = root
        for i, part in enumerate(path[:-1]):
            nxt = path[i + 1]
            default: Any = [] if nxt == "" else {}
            node = _child(node, part, default)
        last = path[-1]
        if isinstance(node, list):
            node.append(value)
        elif last == "" and isinstance(node, dict):
            node.setdefault("", []).append(value)
        else:
            node[last] = value
    return _listify(root)


def _child(node: Any, part: str, default: Any) -> Any:
    if isinstance(node, list):
        node.append(default)
        return default
    return node.setdefault(part, default)


def _listify(node: Any) -> Any:
    if isinstance(node, dict):
        items = {k: _listify(v) for k, v in node.items()}
        if items and all(k.isdigit() for k in items):
            return [items[k] for k in sorted(items, key=int)]
        return items
    if isinstance(node, list):
        return [_listify(v) for v in node]
    return node


def parse_int(params: dict[str, Any], name: str, *, required: bool) -> int | None:
    """Amounts are integers in minor units: reject `12.5`, `abc`, and missing required values."""
    raw = params.get(name)
    if raw is None or raw == "":
        if required:
            raise StripeAPIError.invalid(
                f"Missing required param: {name}.", name, "parameter_missing"
            )
        return None
    if not isinstance(raw, str) or not _INTEGER.match(raw):
        raise StripeAPIError.invalid(f"Invalid integer: {raw}", name, "parameter_invalid_integer")
    return int(raw)


def parse_bool(params: dict[str, Any], name: str) -> bool:
    return str(params.get(name, "")).lower() == "true"


def parse_metadata(params: dict[str, Any]) -> dict[str, str]:
    """Stripe metadata is a flat string map; an empty value unsets a key."""
    raw = params.get("metadata") or {}
    if not isinstance(raw, dict):
        raise StripeAPIError.invalid("Invalid metadata: must be a hash", "metadata")
    return {str(k): str(v) for k, v in raw.items() if v != ""}
