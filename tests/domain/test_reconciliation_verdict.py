"""The reconciliation's table of ledger status × gateway status, and when ops' word is final."""

from __future__ import annotations

import pytest

from refunds.domain.messages import FindingKind, GatewayStatus, RefundStatus
from refunds.domain.reconciliation import Verdict, adjudicated, verdict

L, G, K = RefundStatus, GatewayStatus, FindingKind

TABLE = [
    (L.PROCESSING, G.SUCCEEDED, Verdict(K.GATEWAY_SUCCEEDED, deliver=True)),
    (L.ABNORMAL, G.SUCCEEDED, Verdict(K.GATEWAY_SUCCEEDED, deliver=True)),
    (L.PROCESSING, G.PROCESSING, Verdict(None)),
    (L.PROCESSING, G.FAILED, Verdict(None)),  # its own workflow hears the failure
    (L.SUCCEEDED, G.SUCCEEDED, Verdict(None)),
    (L.SUCCEEDED, G.FAILED, Verdict(K.GATEWAY_FAILED, deliver=True)),
    (L.FAILED, G.FAILED, Verdict(None)),
    (L.FAILED, G.SUCCEEDED, Verdict(K.GATEWAY_SUCCEEDED_AFTER_FAILURE, deliver=True)),
    # Money that may still go out: reported, nothing a run can act on yet.
    (L.FAILED, G.PROCESSING, Verdict(K.GATEWAY_SUCCEEDED_AFTER_FAILURE)),
    (L.FAILED, G.ABNORMAL, Verdict(K.GATEWAY_SUCCEEDED_AFTER_FAILURE)),
    (L.PENDING_APPROVAL, G.PROCESSING, Verdict(None)),
]


@pytest.mark.parametrize(("ledger", "gateway", "expected"), TABLE)
def test_each_ledger_and_gateway_status_pair_has_one_verdict(
    ledger: RefundStatus, gateway: GatewayStatus, expected: Verdict
) -> None:
    assert verdict(ledger, gateway, is_adjudicated=False) == expected


@pytest.mark.parametrize("ledger", [L.REJECTED, L.EXPIRED])
@pytest.mark.parametrize("gateway", list(G))
def test_a_gateway_refund_of_a_rejected_or_expired_refund_is_a_mismatch_never_delivered(
    ledger: RefundStatus, gateway: GatewayStatus
) -> None:
    found = verdict(ledger, gateway, is_adjudicated=False)
    assert (found.kind, found.deliver) == (K.MISMATCH, False)
    assert found.reason and ledger.value in found.reason


@pytest.mark.parametrize(
    ("ledger", "gateway"),
    [(L.SUCCEEDED, G.FAILED), (L.FAILED, G.FAILED), (L.FAILED, G.SUCCEEDED)],
)
def test_an_adjudicated_refund_the_gateway_disagrees_with_is_reported_never_delivered(
    ledger: RefundStatus, gateway: GatewayStatus
) -> None:
    assert verdict(ledger, gateway, is_adjudicated=True) == Verdict(K.ADJUDICATED)


def test_an_adjudicated_refund_the_gateway_agrees_with_is_no_finding() -> None:
    assert verdict(L.SUCCEEDED, G.SUCCEEDED, is_adjudicated=True) == Verdict(None)


@pytest.mark.parametrize(
    ("timeline", "expected"),
    [
        (["requested", "succeeded"], False),
        (["succeeded", "gateway_failed_after_success"], False),  # ops have not decided yet
        (["succeeded", "gateway_failed_after_success", "resolved_succeeded"], True),
        (["succeeded", "gateway_failed_after_success", "resolved_failed"], True),
        # resolved before any late failure (an abnormal refund): not an adjudication of one
        (["abnormal", "resolved_succeeded"], False),
        # a second late failure after the first was decided: undecided again
        (
            ["gateway_failed_after_success", "resolved_succeeded", "gateway_failed_after_success"],
            False,
        ),
    ],
)
def test_a_refund_is_adjudicated_when_ops_resolved_it_after_its_last_late_failure(
    timeline: list[str], expected: bool
) -> None:
    assert adjudicated(timeline) is expected
