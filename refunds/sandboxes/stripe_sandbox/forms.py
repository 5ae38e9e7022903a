"""Stripe's form encoding: `metadata[refund_no]=R1`, `expand[0]=charge`, `a[]=x`, `created[gte]=T`.

The official client form-encodes every v1 request body and query string with bracketed keys;
this turns them back into nested dicts and lists.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl

from refunds.sandboxes.stripe_sandbox.errors import StripeAPIError

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


RANGE_BOUNDS: dict[str, Callable[[int, int], bool]] = {
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}


def parse_range(params: dict[str, Any], name: str) -> Callable[[int], bool]:
    """A Stripe range filter (`created=T` or `created[gte]=A&created[lt]=B`) as a predicate;
    an absent filter keeps everything. Unknown bounds are refused, as Stripe refuses them."""
    raw = params.get(name)
    if raw is None or raw == "":
        return lambda value: True
    if not isinstance(raw, dict):
        exact = parse_int(params, name, required=True)
        return lambda value: value == exact
    bounds = [(_range_test(name, op), _range_int(name, op, bound)) for op, bound in raw.items()]
    return lambda value: all(test(value, bound) for test, bound in bounds)


def _range_test(name: str, op: str) -> Callable[[int, int], bool]:
    test = RANGE_BOUNDS.get(op)
    if test is None:
        raise StripeAPIError.invalid(f"Received unknown parameter: {name}[{op}]", f"{name}[{op}]")
    return test


def _range_int(name: str, op: str, bound: Any) -> int:
    value = parse_int({f"{name}[{op}]": bound}, f"{name}[{op}]", required=True)
    assert value is not None  # required=True raises instead
    return value
