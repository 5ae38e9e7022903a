"""Gateway webhooks: verify, dedupe, signal the news. A forged, stale or replayed one changes
nothing."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from api.deps import GatewaysDep, SessionDep, SettingsDep, TemporalDep
from api.errors import documented, error_response
from api.metrics import WEBHOOKS
from api.notifications import accept_notification
from api.schemas import WebhookAck, WeChatAnswer
from refunds.gateways.base import InvalidNotification

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])
log = logging.getLogger("refunds.webhooks")


def signed_body(description: str, *headers: str) -> dict[str, Any]:
    """The OpenAPI of a body the route verifies itself, as raw bytes against its signature."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}}},
            "description": description,
        },
        "parameters": [
            {"name": name, "in": "header", "required": True, "schema": {"type": "string"}}
            for name in headers
        ],
    }


WECHAT_REFUSALS: dict[int | str, dict[str, Any]] = {
    status: {"model": WeChatAnswer, "description": description}
    for status, description in (
        (400, "Not a refund notification we can read"),
        (401, "Bad signature or stale timestamp"),
    )
}


async def _receive(
    gateway: str,
    request: Request,
    session: SessionDep,
    client: TemporalDep,
    settings: SettingsDep,
    gateways: GatewaysDep,
) -> bool | InvalidNotification:
    """True: accepted; False: a duplicate; an InvalidNotification: rejected, nothing changed."""
    body = await request.body()
    try:
        parsed = gateways[gateway].parse_notification(dict(request.headers), body)
    except InvalidNotification as exc:
        WEBHOOKS.labels(gateway, "rejected").inc()
        log.warning("webhook_rejected", extra={"gateway": gateway, "code": exc.code})
        return exc
    outcome = await accept_notification(session, client, settings, gateway, parsed)
    fresh = outcome is not None
    WEBHOOKS.labels(gateway, "accepted" if fresh else "duplicate").inc()
    for refund in parsed.refunds:
        log.info(
            "webhook_accepted" if fresh else "webhook_duplicate",
            extra={
                "gateway": gateway,
                "refund_no": refund.refund_no,
                "event_id": parsed.notification_id,
                "event_type": parsed.event_type,
                "gateway_status": refund.status.value,
                "outcome": outcome.value if outcome else None,
            },
        )
    return fresh


@router.post(
    "/stripe",
    response_model=WebhookAck,
    responses=documented(400, 413, 503),
    openapi_extra=signed_body("A Stripe event", "Stripe-Signature"),
)
async def stripe_webhook(
    request: Request,
    session: SessionDep,
    client: TemporalDep,
    settings: SettingsDep,
    gateways: GatewaysDep,
) -> Response:
    """Stripe events carrying refund status, verified with the endpoint secret."""
    outcome = await _receive("stripe", request, session, client, settings, gateways)
    if isinstance(outcome, InvalidNotification):
        return error_response(400, outcome.code, outcome.message)
    return JSONResponse({"received": True, "duplicate": not outcome})


@router.post(
    "/wechatpay",
    status_code=204,
    response_class=Response,
    responses={**WECHAT_REFUSALS, **documented(413, 503)},
    openapi_extra=signed_body(
        "A WeChat Pay v3 notification",
        "Wechatpay-Signature",
        "Wechatpay-Timestamp",
        "Wechatpay-Nonce",
        "Wechatpay-Serial",
    ),
)
async def wechatpay_webhook(
    request: Request,
    session: SessionDep,
    client: TemporalDep,
    settings: SettingsDep,
    gateways: GatewaysDep,
) -> Response:
    """WeChat Pay v3 refund notifications: signed headers, AES-256-GCM resource.

    Answered the way WeChat Pay expects: 204 on success, 4xx with `{"code", "message"}` else.
    """
    outcome = await _receive("wechatpay", request, session, client, settings, gateways)
    if isinstance(outcome, InvalidNotification):
        status = 401 if outcome.code in ("invalid_signature", "stale_timestamp") else 400
        return JSONResponse({"code": "FAIL", "message": outcome.message}, status_code=status)
    return Response(status_code=204)
