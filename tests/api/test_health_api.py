"""Liveness, readiness and metrics as an operator's probes and scraper see them."""

from __future__ import annotations

import httpx

from tests.factories import Shop


async def test_liveness_and_readiness_report_both_dependencies(http: httpx.AsyncClient) -> None:
    assert (await http.get("/healthz")).json() == {"status": "ok"}
    ready = await http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"database": "ok", "temporal": "ok"}}


def counter(exposition: str, prefix: str) -> float:
    """The value of the one sample line that starts with `prefix`, 0 when there is none."""
    lines = [line for line in exposition.splitlines() if line.startswith(prefix)]
    assert len(lines) <= 1, lines
    return float(lines[0].rsplit(" ", 1)[1]) if lines else 0.0


async def test_metrics_count_requests_by_route_template_not_by_id(shop: Shop) -> None:
    sample = (
        'refunds_http_requests_total{method="GET",route="/v1/refunds/{refund_no}",status="404"}'
    )
    before = counter((await shop.http.get("/metrics")).text, sample)
    for n in range(3):
        await shop.http.get(f"/v1/refunds/missing-{n}", headers=shop.admin)
    after = (await shop.http.get("/metrics")).text
    assert counter(after, sample) == before + 3
    assert "missing-0" not in after
