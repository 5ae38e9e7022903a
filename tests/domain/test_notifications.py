"""What a notification records about what was done with it (issue 11)."""

from __future__ import annotations

import pytest

from refunds.domain.notifications import NotificationOutcome as Outcome
from refunds.domain.notifications import most_done


@pytest.mark.parametrize(
    ("outcomes", "recorded"),
    [
        ([], Outcome.NOT_OURS),  # an event about no refund at all
        ([Outcome.NOT_OURS], Outcome.NOT_OURS),
        ([Outcome.DUPLICATE, Outcome.NOT_OURS], Outcome.DUPLICATE),
        # a charge.refunded lists every refund of the charge: news for one is what was done
        ([Outcome.DUPLICATE, Outcome.SIGNALLED], Outcome.SIGNALLED),
        ([Outcome.IGNORED, Outcome.DUPLICATE], Outcome.IGNORED),
        ([Outcome.SIGNALLED, Outcome.REPAIRED], Outcome.REPAIRED),
        ([Outcome.REPAIRED, Outcome.REOPENED, Outcome.SIGNALLED], Outcome.REOPENED),
    ],
)
def test_a_notification_records_the_most_done_for_any_refund_it_names(
    outcomes: list[Outcome], recorded: Outcome
) -> None:
    assert most_done(outcomes) == recorded
