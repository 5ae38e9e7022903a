"""Webhook endpoints of the shops (issue 13): where their refunds' events are POSTed."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Response, status

from api.deps import PrincipalDep, SessionDep, SettingsDep, TemporalDep
from api.errors import documented
from api.schemas import (
    PathId,
    RotateSecretIn,
    WebhookEndpointIn,
    WebhookEndpointList,
    WebhookEndpointOut,
    WebhookEndpointPatch,
    WebhookEndpointWithSecret,
)
from refunds.db.outbox import WebhookEndpointRepository
from refunds.runtime.webhook_relay import wake_quietly
from refunds.webhooks.targets import check_target

router = APIRouter(prefix="/v1/webhook_endpoints", tags=["webhooks"])

READERS = ("admin", "ops")
ERRORS = documented(401, 403, 404, 422)
# Routes that read a body: unreadable (400) or too large (413).
BODY_ERRORS = documented(400, 401, 403, 404, 413, 422)


@router.post(
    "",
    response_model=WebhookEndpointWithSecret,
    status_code=status.HTTP_201_CREATED,
    responses=documented(400, 401, 403, 413, 422),
)
async def create_endpoint(
    body: WebhookEndpointIn,
    principal: PrincipalDep,
    session: SessionDep,
    settings: SettingsDep,
    client: TemporalDep,
) -> WebhookEndpointWithSecret:
    """Register an endpoint; its signing secret is in this answer only (422 for an SSRF URL)."""
    principal.require("admin")
    await check_target(body.url, settings.webhook_allow_private_targets)
    endpoint = await WebhookEndpointRepository(session).create(
        body.url, [str(t) for t in body.event_types], body.enabled
    )
    await session.commit()
    await wake_quietly(client, settings, [endpoint.id])
    return WebhookEndpointWithSecret.model_validate(endpoint)


@router.get("", response_model=WebhookEndpointList, responses=documented(401, 403))
async def list_endpoints(principal: PrincipalDep, session: SessionDep) -> WebhookEndpointList:
    """Every endpoint, with whether it is failing (a delivery ran out of tries)."""
    principal.require(*READERS)
    endpoints = await WebhookEndpointRepository(session).all()
    return WebhookEndpointList(items=[WebhookEndpointOut.model_validate(e) for e in endpoints])


@router.get("/{endpoint_id}", response_model=WebhookEndpointOut, responses=ERRORS)
async def get_endpoint(
    endpoint_id: PathId, principal: PrincipalDep, session: SessionDep
) -> WebhookEndpointOut:
    """One endpoint (never its secret)."""
    principal.require(*READERS)
    return WebhookEndpointOut.model_validate(
        await WebhookEndpointRepository(session).get(endpoint_id)
    )


@router.patch("/{endpoint_id}", response_model=WebhookEndpointOut, responses=BODY_ERRORS)
async def update_endpoint(
    endpoint_id: PathId,
    body: WebhookEndpointPatch,
    principal: PrincipalDep,
    session: SessionDep,
    settings: SettingsDep,
    client: TemporalDep,
) -> WebhookEndpointOut:
    """Change its URL, its event types, or enable / disable it."""
    principal.require("admin")
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    if "url" in changes:
        await check_target(changes["url"], settings.webhook_allow_private_targets)
    if "event_types" in changes:
        changes["event_types"] = [str(t) for t in changes["event_types"]]
    repo = WebhookEndpointRepository(session)
    endpoint = await repo.get(endpoint_id, lock=True)
    await repo.update(endpoint, changes)
    out = WebhookEndpointOut.model_validate(endpoint)
    await session.commit()
    await wake_quietly(client, settings, [endpoint_id])
    return out


@router.post(
    "/{endpoint_id}/rotate_secret", response_model=WebhookEndpointWithSecret, responses=BODY_ERRORS
)
async def rotate_secret(
    endpoint_id: PathId,
    body: RotateSecretIn,
    principal: PrincipalDep,
    session: SessionDep,
    settings: SettingsDep,
) -> WebhookEndpointWithSecret:
    """A new secret, shown once; the old one keeps signing for the overlap."""
    principal.require("admin")
    overlap = (
        settings.webhook_secret_overlap
        if body.overlap_seconds is None
        else timedelta(seconds=body.overlap_seconds)
    )
    repo = WebhookEndpointRepository(session)
    endpoint = await repo.get(endpoint_id, lock=True)
    await repo.rotate(endpoint, overlap)
    out = WebhookEndpointWithSecret.model_validate(endpoint)
    await session.commit()
    return out


@router.delete(
    "/{endpoint_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=ERRORS,
)
async def delete_endpoint(
    endpoint_id: PathId, principal: PrincipalDep, session: SessionDep
) -> Response:
    """Remove it and its pending deliveries; its delivery workflow ends."""
    principal.require("admin")
    repo = WebhookEndpointRepository(session)
    await repo.delete(await repo.get(endpoint_id, lock=True))
    await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
