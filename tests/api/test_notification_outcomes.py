"""Every way a notification can reach a refund's run is recorded as one outcome (issue 11)."""

from __future__ import annotations

from api.notifications import OUTCOME_OF_DELIVERY
from refunds.domain.notifications import NotificationOutcome
from refunds.runtime.refund_runs import Delivery


def test_every_delivery_has_the_outcome_of_its_name() -> None:
    assert set(OUTCOME_OF_DELIVERY) == set(Delivery)
    assert all(outcome.value == d.value for d, outcome in OUTCOME_OF_DELIVERY.items())
    # what is left is decided before any delivery: news no workflow acts on (still
    # processing), not news, or no refund of ours
    assert set(NotificationOutcome) - set(OUTCOME_OF_DELIVERY.values()) == {
        NotificationOutcome.RECORDED,
        NotificationOutcome.DUPLICATE,
        NotificationOutcome.NOT_OURS,
    }
