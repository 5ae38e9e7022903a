"""The console's pages: the approvals inbox, the ops queue, a refund, an order, a customer's own
refunds, search, and the small JSON answer the live script polls."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from api.console import format as fmt
from api.console.session import (
    ConsoleUser,
    SessionsDep,
    SignInRequired,
    UserDep,
    current_user,
)
from api.console.web import ConsoleRoute, home_of, render, settings_of
from api.deps import SessionDep
from api.params import MajorAmount, SearchKey
from api.read_models import (
    customer_refund,
    order_for,
    refund_for,
    refund_out,
    sees_shop_view,
    visible_order,
    visible_refund,
)
from api.schemas import PathKey
from refunds.db.console import AmountRange, ConsoleRepository, age_cutoff
from refunds.db.models import Order, Refund
from refunds.db.outbox import WebhookEndpointRepository
from refunds.db.repositories import OrderRepository, RefundRepository
from refunds.domain.errors import OrderNotFound, RefundNotFound
from refunds.domain.messages import TERMINAL_STATUSES, Channel, RefundStatus
from refunds.runtime.temporal_client import connect_config

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)

AGE_CHOICES = {0: "any age", 15: "15 minutes", 60: "1 hour", 1440: "1 day", 4320: "3 days"}
EXPONENTS = (0, 2, 3)


@dataclass(frozen=True)
class Row:
    """One refund as the lists show it, with its order's money beside it."""

    refund: Refund
    order: Order
    age: timedelta
    time_left: timedelta | None = None
    own: bool = False
    gateway: tuple[Any, ...] = ()

    @property
    def reserved_by_others(self) -> int:
        """Held by the order's other refunds under way (reserved, not yet refunded)."""
        own = self.refund.amount if self.refund.status not in TERMINAL_STATUSES else 0
        return max(0, self.order.reserved_amount - self.order.refunded_amount - own)


def workflow_url(request: Request, refund_no: str) -> str | None:
    """The refund's workflow page in the Temporal UI (REFUNDS_TEMPORAL_UI_URL)."""
    settings = settings_of(request)
    if not settings.temporal_ui_url:
        return None
    namespace = connect_config(settings).get("namespace", "default")
    base = settings.temporal_ui_url.rstrip("/")
    return f"{base}/namespaces/{quote(str(namespace))}/workflows/refund-{quote(refund_no)}"


async def _page(
    request: Request, sessions: SessionsDep, user: ConsoleUser, name: str, **context: Any
) -> Response:
    """A page with the live fingerprint (`version`, read before the page's data, so a change in
    between shows at the next poll) and counter; the flash and the draft are shown once."""
    repo: ConsoleRepository = context.pop("repo")
    response = render(
        request,
        name,
        user=user,
        waiting=await repo.waiting(user.principal.id, user.principal.roles),
        workflow_url=lambda no: workflow_url(request, no),
        here=request.url.path + (f"?{request.url.query}" if request.url.query else ""),
        **context,
    )
    await sessions.taken(user)
    return response


@router.get("")
async def console_home(user: UserDep) -> Response:
    """The signed-in person's first page."""
    return RedirectResponse(home_of(user), status_code=303)


@router.get("/inbox")
async def inbox(
    request: Request,
    user: UserDep,
    sessions: SessionsDep,
    session: SessionDep,
    channel: Channel | None = None,
    min_amount: MajorAmount = "",
    max_amount: MajorAmount = "",
    min_age: Annotated[int, Query(ge=0, le=525600)] = 0,
) -> Response:
    """Refunds waiting for a decision, oldest first."""
    user.principal.require("approver", "admin")
    repo = ConsoleRepository(session)
    now = datetime.now(UTC)
    version = await repo.version()
    rows = await repo.pending(
        channel=channel,
        amounts=AmountRange(_bounds(min_amount), _bounds(max_amount)),
        exponents=fmt.EXPONENTS,
        requested_before=age_cutoff(now, min_age),
    )
    timeout = settings_of(request).approval_timeout
    me = user.principal.id
    pending = [
        Row(r, o, now - r.created_at, r.created_at + timeout - now, r.requested_by == me)
        for r, o in rows
    ]
    decided = [Row(r, o, now - r.updated_at) for r, o in await repo.decided_by(user.principal.id)]
    filters = {
        "channel": channel.value if channel else "",
        "min_amount": min_amount,
        "max_amount": max_amount,
        "min_age": min_age,
    }
    return await _page(
        request,
        sessions,
        user,
        "inbox.html",
        repo=repo,
        rows=pending,
        decided=decided,
        filters=filters,
        age_choices=AGE_CHOICES,
        channels=list(Channel),
        approval_timeout=timeout,
        version=version,
    )


def _bounds(text: str) -> dict[int, int]:
    if not text.strip():
        return {}
    values = {e: fmt.to_minor(text, e) for e in EXPONENTS}
    return {e: v for e, v in values.items() if v is not None}


@router.get("/ops")
async def ops_queue(
    request: Request,
    user: UserDep,
    sessions: SessionsDep,
    session: SessionDep,
    processing_minutes: Annotated[int | None, Query(ge=0, le=525600)] = None,
) -> Response:
    """Abnormal refunds with every gateway answer, refunds processing past an age, and the
    shops' webhook endpoints that are failing."""
    user.principal.require("ops", "admin")
    repo = ConsoleRepository(session)
    version = await repo.version()
    now = datetime.now(UTC)
    if processing_minutes is None:
        processing_minutes = int(settings_of(request).overdue_processing.total_seconds() // 60)
    abnormal = await repo.in_status(RefundStatus.ABNORMAL)
    answers = await repo.gateway_events([r.refund_no for r, _ in abnormal])
    stale = await repo.in_status(
        RefundStatus.PROCESSING, moved_before=age_cutoff(now, processing_minutes)
    )
    stale_answers = await repo.gateway_events([r.refund_no for r, _ in stale])
    return await _page(
        request,
        sessions,
        user,
        "ops.html",
        repo=repo,
        abnormal=[
            Row(r, o, now - r.updated_at, gateway=tuple(answers[r.refund_no])) for r, o in abnormal
        ],
        stale=[
            Row(r, o, now - r.updated_at, gateway=tuple(stale_answers[r.refund_no]))
            for r, o in stale
        ],
        processing_minutes=processing_minutes,
        failing_endpoints=await WebhookEndpointRepository(session).failing(),
        now=now,
        can_resolve=user.principal.has("ops"),
        version=version,
    )


@router.get("/refunds/{refund_no}")
async def refund_page(
    refund_no: PathKey,
    request: Request,
    user: UserDep,
    sessions: SessionsDep,
    session: SessionDep,
) -> Response:
    """A refund: its timeline, restores, and the order's other refunds beside it; its customer
    reads the customer's model of it."""
    version = await ConsoleRepository(session).version()
    refund = await visible_refund(session, user.principal, refund_no)
    order = await OrderRepository(session).get(refund.order_no)
    repo = ConsoleRepository(session)
    if not sees_shop_view(user.principal):
        return await _customer_refund_page(request, sessions, user, session, refund, order, version)
    now = datetime.now(UTC)
    timeout = settings_of(request).approval_timeout
    return await _page(
        request,
        sessions,
        user,
        "refund.html",
        repo=repo,
        row=Row(
            refund,
            order,
            now - refund.created_at,
            refund.created_at + timeout - now,
            refund.requested_by == user.principal.id,
        ),
        events=await RefundRepository(session).events(refund_no),
        restorations=await repo.restorations(refund_no),
        siblings=await OrderRepository(session).refunds(order.order_no),
        can_decide=user.principal.has("approver", "admin"),
        can_resolve=user.principal.has("ops"),
        version=version,
    )


async def _customer_refund_page(
    request: Request,
    sessions: SessionsDep,
    user: ConsoleUser,
    session: SessionDep,
    refund: Refund,
    order: Order,
    version: str,
) -> Response:
    return await _page(
        request,
        sessions,
        user,
        "customer_refund.html",
        repo=ConsoleRepository(session),
        refund=await refund_for(session, user.principal, refund),
        order=await order_for(session, user.principal, order),
        version=version,
    )


@router.get("/orders/{order_no}")
async def order_page(
    order_no: PathKey,
    request: Request,
    user: UserDep,
    sessions: SessionsDep,
    session: SessionDep,
) -> Response:
    """An order: its money, items, restores and every refund side by side."""
    repo = ConsoleRepository(session)
    version = await repo.version()
    order = await visible_order(session, user.principal, order_no)
    name = "order.html" if sees_shop_view(user.principal) else "customer_order.html"
    return await _page(
        request,
        sessions,
        user,
        name,
        repo=repo,
        order=await order_for(session, user.principal, order),
        version=version,
    )


@router.get("/my-refunds")
async def my_refunds(
    request: Request, user: UserDep, sessions: SessionsDep, session: SessionDep
) -> Response:
    """A customer's own refunds, newest first, in the customer's model."""
    repo = ConsoleRepository(session)
    version = await repo.version()
    now = datetime.now(UTC)
    me = user.principal.id
    rows = [
        (customer_refund(refund_out(r), me), now - r.created_at)
        for r, _ in await repo.of_customer(me)
    ]
    return await _page(
        request, sessions, user, "my_refunds.html", repo=repo, rows=rows, version=version
    )


@router.get("/search")
async def search(
    request: Request,
    user: UserDep,
    sessions: SessionsDep,
    session: SessionDep,
    q: SearchKey = "",
) -> Response:
    """Go to a refund by refund_no or an order by order_no (only those the person may see)."""
    key = q.strip()
    if key:
        try:
            await visible_refund(session, user.principal, key)
            return RedirectResponse(f"/console/refunds/{quote(key)}", status_code=303)
        except RefundNotFound:
            pass
        try:
            await visible_order(session, user.principal, key)
            return RedirectResponse(f"/console/orders/{quote(key)}", status_code=303)
        except OrderNotFound:
            pass
    repo = ConsoleRepository(session)
    return await _page(
        request,
        sessions,
        user,
        "search.html",
        repo=repo,
        q=key,
        status=404 if key else 200,
        version=await repo.version(),
    )


@router.get("/live")
async def live(request: Request, sessions: SessionsDep, session: SessionDep) -> Response:
    """What the live script polls: a fingerprint of the refunds and what waits for this person."""
    try:
        user = await current_user(request, sessions)
    except SignInRequired:
        return JSONResponse({"signed_in": False}, status_code=401)
    repo = ConsoleRepository(session)
    waiting = await repo.waiting(user.principal.id, user.principal.roles)
    return JSONResponse(
        {"signed_in": True, "version": await repo.version(), "waiting": waiting},
        headers={"Cache-Control": "no-store"},
    )
