"""Orders: registered by admins, read by their owner and staff."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from api import orders_service
from api.deps import PrincipalDep, SessionDep, SettingsDep, TemporalDep
from api.errors import documented
from api.read_models import order_for, order_out, visible_order
from api.schemas import CustomerOrderOut, OrderIn, OrderOut, PathKey

router = APIRouter(prefix="/v1/orders", tags=["orders"])

# As for refunds: staff read `OrderOut`, the order's customer `CustomerOrderOut`.
EITHER_VIEW = OrderOut | CustomerOrderOut
VIEWS = "`OrderOut` for staff (approver, admin, ops); `CustomerOrderOut` for the customer"


@router.post(
    "",
    response_model=OrderOut,
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"model": OrderOut, "description": "The same order, registered before"},
        **documented(400, 401, 403, 409, 413, 422, 503),
    },
)
async def create_order(
    body: OrderIn,
    principal: PrincipalDep,
    session: SessionDep,
    client: TemporalDep,
    settings: SettingsDep,
    response: Response,
) -> OrderOut:
    """Register an order, a paid one checked against its payment at the gateway; the same body
    again answers 200 with the same order."""
    principal.require("admin")
    order, created = await orders_service.register_order(session, body, client, settings)
    if not created:
        response.status_code = status.HTTP_200_OK
    return await order_out(session, order)


@router.get(
    "/{order_no}",
    response_model=EITHER_VIEW,
    responses={200: {"description": VIEWS}, **documented(401, 403, 404, 422)},
)
async def get_order(
    order_no: PathKey, principal: PrincipalDep, session: SessionDep
) -> OrderOut | CustomerOrderOut:
    """An order with its refunds, refundable amount and what its refunds restored."""
    principal.require("customer", "admin", "approver", "ops")
    return await order_for(session, principal, await visible_order(session, principal, order_no))


@router.post(
    "/{order_no}/cancel",
    response_model=EITHER_VIEW,
    responses={200: {"description": VIEWS}, **documented(401, 403, 404, 409, 422)},
)
async def cancel_order(
    order_no: PathKey, principal: PrincipalDep, session: SessionDep
) -> OrderOut | CustomerOrderOut:
    """Cancel a pending or fully refunded order; a paid one must be refunded first (409)."""
    principal.require("customer", "admin")
    order = await visible_order(session, principal, order_no)
    if not principal.has("admin") and order.user_id != principal.id:
        principal.require("admin")
    return await order_for(session, principal, await orders_service.cancel_order(session, order))
