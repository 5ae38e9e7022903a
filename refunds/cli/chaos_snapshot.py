"""Read what a chaos run left behind: our tables (plain SQL, read only, so the verifier shares no
code with the repositories it checks) and the sandboxes' own books via their control endpoints."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import httpx
import psycopg
from psycopg.rows import dict_row

from refunds.cli.chaos_checks import TERMINAL, Finding, GatewayRefund, Snapshot, gateway_status

ORDERS_SQL = """
SELECT order_no, paid_amount, refunded_amount, reserved_amount, points_used, coupon_code,
       payment_ref, fulfillment
FROM orders WHERE order_no = ANY(%(orders)s)"""
ITEMS_SQL = """
SELECT o.order_no, i.sku, i.quantity FROM order_items i JOIN orders o ON o.id = i.order_id
WHERE o.order_no = ANY(%(orders)s)"""
# By order, not by the refund_nos we were answered for: a refund that exists without a 202 counts.
REFUNDS_SQL = """
SELECT refund_no, order_no, amount, status, items FROM refunds WHERE order_no = ANY(%(orders)s)"""
RESTORATIONS_SQL = """
SELECT r.refund_no, r.kind FROM restorations r JOIN refunds f ON f.refund_no = r.refund_no
WHERE f.order_no = ANY(%(orders)s)"""
POINTS_SQL = """
SELECT refund_no, points FROM points_ledger
WHERE order_no = ANY(%(orders)s) AND kind = 'refund_restore'"""
MOVEMENTS_SQL = """
SELECT refund_no, sku, SUM(quantity) AS quantity FROM inventory_movements
WHERE order_no = ANY(%(orders)s) AND kind = 'refund_restock' GROUP BY refund_no, sku"""
REVERSED_POINTS_SQL = """
SELECT refund_no, points FROM points_ledger
WHERE order_no = ANY(%(orders)s) AND kind = 'refund_reversal'"""
REVERSED_MOVEMENTS_SQL = """
SELECT refund_no, sku, SUM(quantity) AS quantity FROM inventory_movements
WHERE order_no = ANY(%(orders)s) AND kind = 'refund_reversal' GROUP BY refund_no, sku"""
FINDINGS_SQL = """
SELECT kind, refund_no, subject FROM reconciliation_findings WHERE reconciliation_id = %(id)s"""
COUPONS_SQL = """
SELECT code, status, released_by_refund_no FROM coupons WHERE order_no = ANY(%(orders)s)"""
STATUS_SQL = "SELECT refund_no, status FROM refunds WHERE refund_no = ANY(%(refunds)s)"
# The state changes a shop hears of: the request, and each status move (its `to`).
CHANGES_SQL = (
    "SELECT refund_no, count(*) AS n FROM refund_events WHERE refund_no = ANY(%(refunds)s) "
    "AND (event = 'requested' OR detail ? 'to') GROUP BY refund_no"
)


def statuses(database_url: str, refund_nos: list[str]) -> dict[str, str]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(STATUS_SQL, {"refunds": refund_nos}).fetchall()
    return {str(no): str(status) for no, status in rows}


def state_changes(database_url: str, refund_nos: list[str]) -> dict[str, int]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(CHANGES_SQL, {"refunds": refund_nos}).fetchall()
    return {str(no): int(n) for no, n in rows}


def in_flight(database_url: str, refund_nos: list[str]) -> int:
    found = statuses(database_url, refund_nos)
    return sum(1 for status in found.values() if status not in TERMINAL)


def read_tables(database_url: str, order_nos: list[str]) -> Snapshot:
    with psycopg.connect(database_url, row_factory=dict_row) as conn:

        def rows(sql: str) -> list[dict[str, Any]]:
            return conn.execute(sql, {"orders": order_nos}).fetchall()

        orders = {r["order_no"]: {**r, "items": []} for r in rows(ORDERS_SQL)}
        for item in rows(ITEMS_SQL):
            orders[item["order_no"]]["items"].append(item)
        snap = Snapshot(orders, {r["refund_no"]: r for r in rows(REFUNDS_SQL)})
        restorations: dict[str, set[str]] = defaultdict(set)
        for r in rows(RESTORATIONS_SQL):
            restorations[r["refund_no"]].add(r["kind"])
        snap.restorations = restorations
        snap.points, snap.reversed_points = (
            _points(rows(POINTS_SQL)),
            _points(rows(REVERSED_POINTS_SQL)),
        )
        snap.movements = _movements(rows(MOVEMENTS_SQL))
        snap.reversed_movements = _movements(rows(REVERSED_MOVEMENTS_SQL))
        snap.coupons = {r["code"]: r for r in rows(COUPONS_SQL)}
    return snap


def _points(found: list[dict[str, Any]]) -> dict[str, list[int]]:
    points: dict[str, list[int]] = defaultdict(list)
    for r in found:
        points[r["refund_no"]].append(int(r["points"]))
    return points


def _movements(found: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    movements: dict[str, dict[str, int]] = defaultdict(dict)
    for r in found:
        movements[r["refund_no"]][r["sku"]] = int(r["quantity"])
    return movements


def findings(database_url: str, reconciliation_id: int, run_id: str) -> list[Finding]:
    """A reconciliation run's findings about this chaos run's refunds (the database may hold
    other refunds, which the run also saw)."""
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        rows = conn.execute(FINDINGS_SQL, {"id": reconciliation_id}).fetchall()
    found = [Finding(r["kind"], r["refund_no"] or r["subject"], r["subject"]) for r in rows]
    return [f for f in found if (f.refund_no or "").startswith(f"{run_id}-")]


async def gateway_refunds(
    http: httpx.AsyncClient, stripe_url: str, wechat_url: str
) -> list[GatewayRefund]:
    stripe = (await _get(http, f"{stripe_url}/_sandbox/refunds"))["data"]
    wechat = (await _get(http, f"{wechat_url}/sandbox/refunds"))["refunds"]
    seen = [
        GatewayRefund(
            refund_no=(r.get("metadata") or {}).get("refund_no"),
            payment_ref=str(r["payment_intent"]),
            amount=int(r["amount"]),
            status=gateway_status(str(r["status"])),
            gateway_id=str(r["id"]),
        )
        for r in stripe
    ]
    seen += [
        GatewayRefund(
            refund_no=r["out_refund_no"],
            payment_ref=str(r["transaction_id"]),
            amount=int(r["amount"]["refund"]),
            status=gateway_status(str(r["status"])),
            gateway_id=str(r["refund_id"]),
        )
        for r in wechat
    ]
    return seen


async def stripe_events(http: httpx.AsyncClient, stripe_url: str) -> dict[str, list[Any]]:
    grouped: dict[str, list[Any]] = defaultdict(list)
    for record in (await _get(http, f"{stripe_url}/_sandbox/events"))["data"]:
        grouped[str(record["refund_no"])].append(record)
    return grouped


async def wechat_notifications(http: httpx.AsyncClient, wechat_url: str) -> dict[str, list[Any]]:
    grouped: dict[str, list[Any]] = defaultdict(list)
    for note in (await _get(http, f"{wechat_url}/sandbox/notifications"))["notifications"]:
        grouped[str(note["refund_no"])].append(note)
    return grouped


async def _get(http: httpx.AsyncClient, url: str) -> Any:
    response = await http.get(url)
    response.raise_for_status()
    return response.json()
