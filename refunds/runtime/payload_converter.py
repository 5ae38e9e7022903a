"""The data converter every Temporal client here connects with: Temporal's default JSON, with
each dataclass's field types resolved once per process instead of on every payload.

The SDK decodes a dataclass payload by calling `typing.get_type_hints` on the class each time;
with `from __future__ import annotations` (as in `refunds.domain.messages`) that evaluates every
field's annotation string again, for every update result, activity input and marker a refund
carries (issue 11: a few per cent of the API's and the worker's CPU). The wire format is the
SDK's own, unchanged: payloads written by either converter read the same with the other.

`encrypted` adds the payload codec every client and worker here connects with (`DATA_CONVERTER`
alone is the plain converter below it), and moves failure messages and stack traces into the
failure's encoded attributes, so the codec seals them too.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import types
import typing
from typing import Any, get_type_hints

from temporalio.converter import (
    CompositePayloadConverter,
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    DefaultPayloadConverter,
    JSONPlainPayloadConverter,
    JSONTypeConverter,
    PayloadCodec,
    value_to_type,
)

# JSON's own scalar types: a value already of the field's exact type converts to itself.
_PLAIN = frozenset({str, int, float, bool})


@dataclasses.dataclass(frozen=True)
class _Field:
    name: str
    hint: Any
    init: bool
    optional: bool  # `X | None`: a null converts to None
    enum: type[enum.Enum] | None  # the field's enum (or `enum | None`'s), built from its value


@functools.cache
def _fields_of(cls: type) -> tuple[_Field, ...]:
    """A dataclass's fields with their resolved types; classes never change in a process."""
    hints = get_type_hints(cls)
    return tuple(_field(f, hints[f.name]) for f in dataclasses.fields(cls))


def _field(field: dataclasses.Field[Any], hint: Any) -> _Field:
    args = typing.get_args(hint)
    is_union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    optional = is_union and type(None) in args
    inner = [a for a in args if a is not type(None)] if is_union else [hint]
    only = inner[0] if len(inner) == 1 else None
    is_enum = isinstance(only, type) and issubclass(only, enum.Enum)
    return _Field(field.name, hint, field.init, optional, only if is_enum else None)


class DataclassFromJSON(JSONTypeConverter):
    """Temporal's own dataclass decoding (unknown keys ignored, a missing required field fails
    at construction, `init=False` fields restored after), with the field types cached."""

    def to_typed_value(self, hint: type, value: Any) -> Any:
        if not (isinstance(hint, type) and dataclasses.is_dataclass(hint)):
            return JSONTypeConverter.Unhandled
        if not isinstance(value, dict):
            raise TypeError(f"Cannot convert to dataclass {hint}, value is {type(value)} not dict")
        init_values: dict[str, Any] = {}
        later_values: dict[str, Any] = {}
        for field in _fields_of(hint):
            if field.name not in value:
                continue
            raw = value[field.name]
            try:
                if type(raw) is field.hint and field.hint in _PLAIN:
                    converted = raw
                elif raw is None and field.optional:
                    converted = None
                elif field.enum is not None and type(raw) is str:
                    converted = field.enum(raw)
                else:
                    converted = value_to_type(field.hint, raw, [self])
            except Exception as err:
                raise TypeError(
                    f"Failed converting field {field.name} on dataclass {hint}"
                ) from err
            (init_values if field.init else later_values)[field.name] = converted
        obj = hint(**init_values)
        for name, converted in later_values.items():
            object.__setattr__(obj, name, converted)
        return obj


class RefundsPayloadConverter(CompositePayloadConverter):
    """Temporal's default converters in their order, the JSON one decoding dataclasses above."""

    def __init__(self) -> None:
        json = JSONPlainPayloadConverter(custom_type_converters=[DataclassFromJSON()])
        super().__init__(
            *(
                json if isinstance(c, JSONPlainPayloadConverter) else c
                for c in DefaultPayloadConverter().converters.values()
            )
        )


DATA_CONVERTER = dataclasses.replace(
    DataConverter.default, payload_converter_class=RefundsPayloadConverter
)


def encrypted(codec: PayloadCodec) -> DataConverter:
    """`DATA_CONVERTER` with `codec` below it, failures' messages encoded by it as well."""
    return dataclasses.replace(
        DATA_CONVERTER,
        payload_codec=codec,
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )
