"""What the console's forms do: approve, reject, resolve. Each goes through the same workflow
update as the JSON API (`api.refund_commands`), so the four-eyes rule, the validators and the
error codes are the workflow's. The outcome, a lost race included, is told on the next page."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import RedirectResponse, Response

from api import refund_commands
from api.console import format as fmt
from api.console.session import CheckedFormDep, ConsoleUser, SessionsDep, UserDep, draft_of
from api.console.web import ConsoleRoute, safe_next
from api.deps import SessionDep, SettingsDep, TemporalDep
from api.schemas import PathKey
from refunds.db.models import Refund, RefundEvent
from refunds.db.repositories import RefundRepository
from refunds.domain.errors import (
    ApproverIsRequester,
    GatewayRefundPending,
    GatewayReportedSuccess,
    GatewayUnconfirmed,
    RefundNotAbnormal,
    RefundNotPendingApproval,
)
from refunds.domain.messages import RefundStatus, Resolution, ResolveOutcome

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)

NOTE_LIMIT = 500
# A lost decision is explained from the ledger; the winner's move may take a moment to land.
SETTLE_SECONDS = 5.0


@router.post("/refunds/{refund_no}/decision")
async def decide(
    refund_no: PathKey,
    user: UserDep,
    form: CheckedFormDep,
    sessions: SessionsDep,
    session: SessionDep,
    client: TemporalDep,
    settings: SettingsDep,
) -> Response:
    """Approve or reject a pending refund with a note."""
    user.principal.require("approver", "admin")
    back = _back(form, refund_no)
    action, note = form.get("action", ""), form.get("note", "").strip()
    message = form.get("customer_message", "").strip() if action == "approve" else ""
    problem = _note_problem(note, required=action == "reject") or _note_problem(
        message, required=False, what="message to the customer"
    )
    if action not in ("approve", "reject"):
        problem = "Choose approve or reject."
    if problem:
        return await _refuse(sessions, user, form, back, problem)
    refund = await RefundRepository(session).get(refund_no)
    what = f"{refund_no} ({fmt.money(refund.amount, refund.currency)} of order {refund.order_no})"
    await session.rollback()  # no snapshot held across the workflow round trip
    try:
        if action == "approve":
            await refund_commands.approve(
                client,
                session,
                refund_no,
                user.principal.id,
                note,
                key=settings.decision_key,
                customer_message=message,
            )
        else:
            await refund_commands.reject(
                client, session, refund_no, user.principal.id, note, key=settings.decision_key
            )
    except ApproverIsRequester:
        text = f"You requested {what} yourself: another approver must decide it (four-eyes rule)."
        return await _told(sessions, user, back, "error", text, refund_no)
    except RefundNotPendingApproval:
        text = await _lost_race(session, refund_no, what)
        return await _told(sessions, user, back, "warning", text, refund_no)
    verb = "Approved" if action == "approve" else "Rejected"
    return await _told(sessions, user, back, "success", f"{verb} {what}.", refund_no)


@router.post("/refunds/{refund_no}/resolution")
async def resolve(
    refund_no: PathKey,
    user: UserDep,
    form: CheckedFormDep,
    sessions: SessionsDep,
    session: SessionDep,
    client: TemporalDep,
    settings: SettingsDep,
) -> Response:
    """Ops settle an abnormal refund: paid back offline (with a note) or failed."""
    user.principal.require("ops")
    back = _back(form, refund_no)
    outcome, note = form.get("outcome", ""), form.get("note", "").strip()
    message = form.get("customer_message", "").strip()
    problem = _note_problem(note, required=outcome == ResolveOutcome.SUCCEEDED) or _note_problem(
        message, required=False, what="message to the customer"
    )
    if outcome not in (ResolveOutcome.SUCCEEDED, ResolveOutcome.FAILED):
        problem = "Choose succeeded (paid back offline) or failed."
    if problem:
        return await _refuse(sessions, user, form, back, problem)
    await session.rollback()
    resolution = Resolution(user.principal.id, ResolveOutcome(outcome), note)
    try:
        await refund_commands.resolve(
            client,
            session,
            refund_no,
            resolution,
            key=settings.decision_key,
            customer_message=message,
        )
    except RefundNotAbnormal:
        refund, move = await _settled(session, refund_no, RefundStatus.ABNORMAL)
        text = f"{refund_no} is no longer abnormal: {_who_moved(refund, move)}."
        return await _told(sessions, user, back, "warning", text, refund_no)
    except (GatewayReportedSuccess, GatewayRefundPending, GatewayUnconfirmed) as exc:
        return await _told(sessions, user, back, "error", exc.message, refund_no)
    text = f"Resolved {refund_no}: {outcome}."
    return await _told(sessions, user, back, "success", text, refund_no)


def _back(form: dict[str, str], refund_no: str) -> str:
    return safe_next(form.get("return_to"), f"/console/refunds/{refund_no}")


def _note_problem(note: str, *, required: bool, what: str = "note") -> str | None:
    if "\x00" in note:
        return f"The {what} holds a character that cannot be stored."
    if len(note) > NOTE_LIMIT:
        return f"The {what} is {len(note)} characters long; at most {NOTE_LIMIT}."
    if required and not note:
        return "Write a note: it is required for this decision."
    return None


async def _refuse(
    sessions: SessionsDep, user: ConsoleUser, form: dict[str, str], back: str, problem: str
) -> Response:
    """Nothing was sent: the form comes back filled, with what to fix."""
    draft = draft_of(form)
    if draft:
        await sessions.keep_draft(user, draft)
    refund_no = form.get("form_id", "").partition(":")[2]
    return await _told(sessions, user, back, "error", problem, refund_no)


async def _told(
    sessions: SessionsDep, user: ConsoleUser, back: str, kind: str, text: str, refund_no: str
) -> Response:
    await sessions.flash(user, kind, text, refund_no=refund_no)
    return RedirectResponse(back, status_code=303)


async def _lost_race(session: SessionDep, refund_no: str, what: str) -> str:
    """Who decided instead, or that it expired: read from the ledger."""
    refund, move = await _settled(session, refund_no, RefundStatus.PENDING_APPROVAL)
    if refund.status == RefundStatus.PENDING_APPROVAL:
        return f"{what} was being decided by someone else at the same moment: reload to see it."
    return f"Your decision on {what} was not recorded: {_who_moved(refund, move)}."


async def _settled(
    session: SessionDep, refund_no: str, was: RefundStatus
) -> tuple[Refund, RefundEvent | None]:
    """The refund once it has left `was` (or as it is after a few seconds), and the move that
    took it out."""
    repo = RefundRepository(session)
    deadline = asyncio.get_running_loop().time() + SETTLE_SECONDS
    while True:
        await session.rollback()
        refund = await repo.get(refund_no)
        if refund.status != was or asyncio.get_running_loop().time() > deadline:
            moves = [e for e in await repo.events(refund_no) if e.detail.get("from") == was]
            return refund, moves[0] if moves else None
        await asyncio.sleep(0.2)


def _who_moved(refund: Refund, move: RefundEvent | None) -> str:
    if move is None:
        return f"it is {refund.status}"
    when = fmt.timestamp(move.at)
    if move.event == "expired":
        return f"it expired at {when}"
    return f"{move.event} by {move.actor} at {when}"
