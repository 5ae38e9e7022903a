"""Gateway webhooks: verify, dedupe, signal. A forged, stale or replayed one changes nothing."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from api.deps import GatewaysDep, SessionDep, SettingsDep, TemporalDep
from api.errors import error_response
from api.metrics import WEBHOOKS
from api.notifications import accept_notification
from gateways.base import InvalidNotification

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])
log = logging.getLogger("refunds.webhooks")


@router.post("/stripe")
async def stripe_webhook(
    request: Request,
    session: SessionDep,
    client: TemporalDep,
    settings: SettingsDep,
    gateways: GatewaysDep,
) -> Response:
    """Stripe events carrying refund status, verified with the endpoint secret."""
    body = await request.body()
    try:
        parsed = gateways["stripe"].parse_notification(dict(request.headers), body)
    except InvalidNotification as exc:
        WEBHOOKS.labels("stripe", "rejected").inc()
        log.warning("stripe webhook rejected", extra={"code": exc.code})
        return error_response(400, exc.code, exc.message)
    fresh = await accept_notification(session, client, settings, "stripe", parsed)
    WEBHOOKS.labels("stripe", "accepted" if fresh else "duplicate").inc()
    return JSONResponse({"received": True, "duplicate": not fresh})


@router.post("/wechatpay")
async def wechatpay_webhook(
    request: Request,
    session: SessionDep,
    client: TemporalDep,
    settings: SettingsDep,
    gateways: GatewaysDep,
) -> Response:
    """WeChat Pay v3 refund notifications: signed headers, AES-256-GCM resource."""
    body = await request.body()
    try:
        parsed = gateways["wechatpay"].parse_notification(dict(request.headers), body)
    except InvalidNotification as exc:
        WEBHOOKS.labels("wechatpay", "rejected").inc()
        log.warning("wechatpay notification rejected", extra={"code": exc.code})
        status = 401 if exc.code in ("invalid_signature", "stale_timestamp") else 400
        return JSONResponse({"code": "FAIL", "message": exc.message}, status_code=status)
    fresh = await accept_notification(session, client, settings, "wechatpay", parsed)
    WEBHOOKS.labels("wechatpay", "accepted" if fresh else "duplicate").inc()
    return Response(status_code=204)
