"""GET /v1/reconciliations: the runs of the daily reconciliation, for ops and admins only."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from refunds.db.reconciliations import ReconciliationRepository
from refunds.domain.messages import Channel, FindingKind
from tests.factories import Shop, uid

Sessions = async_sessionmaker[AsyncSession]
WINDOW = (datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC))


async def recorded_run(
    sessionmaker: Sessions, findings: list[tuple[FindingKind, str]], *, finished: bool = True
) -> int:
    """A run as the reconciliation activities leave it."""
    async with sessionmaker() as session:
        repo = ReconciliationRepository(session)
        run_id = await repo.open(uid("run"), uid("reconcile"), *WINDOW)
        for kind, subject in findings:
            await repo.add_finding(run_id, kind, subject, subject, Channel.WECHATPAY, {"why": kind})
        if finished:
            await repo.finish(run_id, f"{len(findings)} findings")
        await session.commit()
    return run_id


async def test_customers_and_approvers_are_403(shop: Shop, sessionmaker: Sessions) -> None:
    run_id = await recorded_run(sessionmaker, [])
    for who in (shop.customer, shop.approver):
        for path in ("/v1/reconciliations", f"/v1/reconciliations/{run_id}"):
            response = await shop.http.get(path, headers=who)
            assert response.status_code == 403, path
            assert response.json()["error"]["code"] == "forbidden"


async def test_without_a_token_it_is_401(shop: Shop) -> None:
    response = await shop.http.get("/v1/reconciliations")
    assert (response.status_code, response.json()["error"]["code"]) == (401, "unauthorized")


async def test_an_unknown_run_is_404_reconciliation_not_found(shop: Shop) -> None:
    response = await shop.http.get(f"/v1/reconciliations/{2**62}", headers=shop.ops)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "reconciliation_not_found"


async def test_ops_see_a_run_with_its_counts_and_findings(
    shop: Shop, sessionmaker: Sessions
) -> None:
    first, second = uid("rf"), uid("rf")
    run_id = await recorded_run(
        sessionmaker, [(FindingKind.MISMATCH, first), (FindingKind.OVERDUE, second)]
    )
    response = await shop.http.get(f"/v1/reconciliations/{run_id}", headers=shop.ops)
    assert response.status_code == 200, response.text
    run = response.json()
    assert run["id"] == run_id and run["summary"] == "2 findings"
    assert run["finished_at"] is not None
    assert run["window_start"].startswith("2026-03-01T00:00:00")
    assert run["counts"] == {kind.value: 0 for kind in FindingKind} | {
        FindingKind.MISMATCH.value: 1,
        FindingKind.OVERDUE.value: 1,
    }
    assert [(f["kind"], f["subject"], f["refund_no"]) for f in run["findings"]] == [
        (FindingKind.MISMATCH, first, first),
        (FindingKind.OVERDUE, second, second),
    ]
    assert run["findings"][0]["channel"] == Channel.WECHATPAY
    assert run["findings"][0]["detail"] == {"why": FindingKind.MISMATCH}


async def test_a_run_still_going_has_no_counts_yet(shop: Shop, sessionmaker: Sessions) -> None:
    run_id = await recorded_run(sessionmaker, [(FindingKind.REPAIRED, uid("rf"))], finished=False)
    run = (await shop.http.get(f"/v1/reconciliations/{run_id}", headers=shop.admin)).json()
    assert (run["finished_at"], run["counts"], len(run["findings"])) == (None, {}, 1)


async def test_the_list_is_newest_first_and_pages_with_a_cursor(
    shop: Shop, sessionmaker: Sessions
) -> None:
    ids = [await recorded_run(sessionmaker, []) for _ in range(3)]
    seen: list[int] = []
    cursor: str | None = None
    for _ in ids:
        params: dict[str, str | int] = {"limit": 1} | ({"cursor": cursor} if cursor else {})
        response = await shop.http.get("/v1/reconciliations", params=params, headers=shop.admin)
        assert response.status_code == 200, response.text
        page = response.json()
        seen += [item["id"] for item in page["items"]]
        assert "findings" not in page["items"][0]
        cursor = page["next_cursor"]
    assert seen == ids[::-1]


async def test_a_cursor_this_api_did_not_return_is_422(shop: Shop) -> None:
    response = await shop.http.get(
        "/v1/reconciliations", params={"cursor": "not-a-cursor"}, headers=shop.ops
    )
    assert (response.status_code, response.json()["error"]["code"]) == (422, "invalid_cursor")
