"""The chaos run, small: 40 refunds over both gateways through the HTTP API, every third gateway
call failing, webhook faults, planned gateway failures, gateways that answer only after the
outcome deadline, ops decisions racing the gateway's word, another system's refunds under our
refund_nos, failures days after a success with every webhook lost, two reconciliation runs (the
first with lookups refused) and two worker SIGKILLs; nothing lost, nothing doubled, the money and
restores agree. The same code as `refunds chaos`, run once for the module."""

from __future__ import annotations

import pytest

from refunds.cli.chaos import ChaosOptions, ChaosReport, describe, run_chaos


@pytest.fixture(scope="module")
def report(
    tmp_path_factory: pytest.TempPathFactory, database_url: str, temporal_address: str
) -> ChaosReport:
    options = ChaosOptions(refunds=40, workers=2, seed=8, kills=2)
    return run_chaos(options, database_url, temporal_address, tmp_path_factory.mktemp("chaos"))


def details(report: ChaosReport) -> str:
    return f"{report.line()}\n{describe(report)}"


def test_refunds_hold_under_gateway_faults_ops_races_and_worker_kills(
    report: ChaosReport,
) -> None:
    foreign = report.planned("foreign")
    # Every rule but the foreign refunds' (see the next test) holds for every refund.
    problems = [p for p in report.problems if p.refund_no not in foreign]
    assert problems == [], details(report)
    assert report.events_delivered > 0, details(report)
    # The faults were really injected, and the kills really happened mid-run.
    for name in ("stripe", "wechatpay"):
        hits = report.chaos[name]["hits"]
        assert hits.get("http_500", 0) > 0 and hits.get("timeout", 0) > 0, details(report)
    assert len(report.kills) == 2 and all(k.in_flight > 0 for k in report.kills), details(report)
    assert report.statuses["failed"] > 0 and report.statuses["succeeded"] > 0, details(report)
    # Late refunds were answered only after their deadline made them abnormal.
    late = [r.refund_no for r in report.plan.refunds if r.late]
    assert late and sorted(report.late_answered) == sorted(late), details(report)


def test_ops_decisions_raced_the_gateway_and_some_were_refused(report: ChaosReport) -> None:
    assert set(report.ops.raced) == report.planned("race"), details(report)
    assert report.ops.refused > 0, details(report)


def test_reconciliation_found_each_late_failure_and_refused_lookup_then_left_ops_alone(
    report: ChaosReport,
) -> None:
    late = report.planned("late_failure")
    assert late and report.late_failures_found == late, details(report)
    assert report.ops.found(1, "adjudicated") >= late, details(report)
    refused = report.planned("lookup_refused")
    assert refused and report.ops.found(0, "lookup_failed") == refused, details(report)
    assert [run.summary.failed_phases for run in report.ops.runs] == [[], []], details(report)


def test_a_foreign_refund_under_our_refund_no_leaves_ours_as_if_it_did_not_exist(
    report: ChaosReport,
) -> None:
    foreign = report.planned("foreign")
    assert foreign and set(report.ops.foreign) == foreign, details(report)
    problems = [p for p in report.problems if p.refund_no in foreign]
    assert problems == [], details(report)
