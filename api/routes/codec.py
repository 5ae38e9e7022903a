"""Temporal's remote codec server (`POST /codec/encode`, `POST /codec/decode`): the Temporal UI
and `temporal` CLI send the payloads they show here, and staff read them decrypted.

The body is Temporal's JSON of `Payloads` (`{"payloads": [{"metadata": {...}, "data": ...}]}`,
bytes in base64), the answer the same. Staff only: a customer's token is refused, since a history
holds other customers' reasons and ids. CORS for the Temporal UI's origin is `CodecCors`.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidTag
from fastapi import APIRouter, Depends, Request, Response
from google.protobuf import json_format
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send
from temporalio.api.common.v1 import Payload, Payloads

from api.auth import Principal
from api.deps import PrincipalDep
from refunds.domain.errors import PayloadNotDecodable
from refunds.runtime.payload_codec import EncryptionCodec, PayloadKeyError

PREFIX = "/codec"
STAFF = ("ops", "admin", "approver")

# Temporal's protocol, documented by Temporal: kept out of this API's own OpenAPI.
router = APIRouter(prefix=PREFIX, tags=["codec"], include_in_schema=False)


async def staff(principal: PrincipalDep) -> Principal:
    principal.require(*STAFF)
    return principal


async def get_codec(request: Request) -> EncryptionCodec:
    codec: EncryptionCodec = request.app.state.codec
    return codec


StaffDep = Annotated[Principal, Depends(staff)]
CodecDep = Annotated[EncryptionCodec, Depends(get_codec)]


@router.post("/encode")
async def encode(request: Request, _: StaffDep, codec: CodecDep) -> Response:
    """Encrypt payloads as the workers would (Temporal's codec server protocol)."""
    payloads = await _payloads(request)
    return _answer(await codec.encode(payloads.payloads))


@router.post("/decode")
async def decode(request: Request, _: StaffDep, codec: CodecDep) -> Response:
    """Decrypt payloads for the Temporal UI or CLI; plain ones come back unchanged."""
    payloads = await _payloads(request)
    try:
        return _answer(await codec.decode(payloads.payloads))
    except (PayloadKeyError, InvalidTag):
        raise PayloadNotDecodable("a payload cannot be decrypted with this API's keys") from None


async def _payloads(request: Request) -> Payloads:
    try:
        return json_format.Parse(await request.body(), Payloads(), ignore_unknown_fields=True)
    except (json_format.ParseError, UnicodeDecodeError):
        raise PayloadNotDecodable('the body is not {"payloads": [...]}') from None


def _answer(payloads: list[Payload]) -> Response:
    body = json_format.MessageToJson(Payloads(payloads=payloads), indent=None)
    return Response(body, media_type="application/json")


def origin_of(url: str) -> str:
    """`scheme://host[:port]` of a URL: what a browser sends as `Origin`."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class CodecCors:
    """CORS for the codec server alone, for the Temporal UI's origin: the rest of the API stays
    closed to cross-origin scripts. The UI sends `Authorization` (its user's access token) and
    `X-Namespace`, and with "include credentials" its cookies."""

    def __init__(self, app: ASGIApp, ui_url: str | None) -> None:
        self.app = app
        origins = [origin_of(ui_url)] if ui_url else []
        self.cors = CORSMiddleware(
            app,
            allow_origins=origins,
            allow_methods=["POST"],
            allow_headers=["Authorization", "Content-Type", "X-Namespace"],
            allow_credentials=True,
            max_age=600,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and str(scope["path"]).startswith(PREFIX + "/"):
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)
