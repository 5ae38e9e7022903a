"""The bench's arithmetic and its table: percentiles, rate windows, ratios, targets."""

from __future__ import annotations

from collections import Counter

import pytest

from refunds.bench.history import FirstTask, history_stats
from refunds.bench.matching import Handed, QueueMatching
from refunds.bench.report import (
    Phase,
    RateWindows,
    apply_lines,
    matching_lines,
    percentile,
    table,
    targets_line,
)


@pytest.mark.parametrize(
    ("q", "expected"), [(0.0, 1.0), (0.5, 5.0), (0.95, 10.0), (0.9, 9.0), (1.0, 10.0)]
)
def test_percentiles_are_nearest_rank(q: float, expected: float) -> None:
    assert percentile([float(v) for v in range(10, 0, -1)], q) == expected


def test_the_percentile_of_nothing_is_zero() -> None:
    assert percentile([], 0.5) == 0.0


def test_rate_windows_are_per_second_from_first_to_last() -> None:
    windows = RateWindows.of([100, 100, 100, 101, 103, 103])
    assert (windows.peak, windows.seconds, windows.requests) == (3, 4, 6)
    assert windows.mean == 1.5
    assert windows.counts == (3, 1, 0, 2)
    assert windows.held(3) and not windows.held(2)
    assert windows.over(1) == 2
    assert windows.busiest(2) == 2.0 and windows.busiest(10) == 1.5
    assert RateWindows.of([]) == RateWindows(0, 0.0, 0, 0)


def phase(name: str, count: int, seconds: float, apply: float, events: int) -> Phase:
    done = [apply * 10] * count
    result = Phase(name, count, seconds, [apply] * count, [apply] * count, done)
    result.events = history_stats([Counter({"WORKFLOW_TASK_COMPLETED": events})])
    return result


def test_the_table_has_both_rows_and_their_ratio() -> None:
    product = phase("product", 10, 2.0, 0.3, 36)
    bare = phase("bare", 10, 1.0, 0.1, 24)
    header, product_row, bare_row, ratio = table(product, bare)
    assert "apply p50" in header and "events" in header
    assert product_row.split()[:3] == ["product", "5.0", "300"]
    assert bare_row.split()[:3] == ["bare", "10.0", "100"]
    assert ratio.split()[:3] == ["ratio", "0.50", "×3.00"]
    assert ratio.split()[-1] == "×1.50"


def test_targets_say_which_are_met() -> None:
    line = targets_line(phase("product", 10, 1.2, 0.12, 30), phase("bare", 10, 1.0, 0.1, 24))
    assert line == (
        "targets: throughput 0.83 × bare (≥ 0.6): met; events/refund 30 (≤ 30): met; "
        "apply p50 ×1.20 bare (≤ 1.5): met"
    )
    assert "not met" in targets_line(phase("product", 10, 4.0, 0.3, 40), None)


def test_apply_is_split_into_the_first_tasks_wait_run_and_what_lies_outside_temporal() -> None:
    product = phase("product", 4, 1.0, 0.8, 29)
    bare = phase("bare", 4, 1.0, 0.3, 29)
    product.events = history_stats(
        [Counter({"X": 1})] * 3,
        [FirstTask(0.5, 0.15, 0.68), FirstTask(0.4, 0.1, 0.6), FirstTask(0.6, 0.2, 0.9)],
    )
    bare.events = history_stats([Counter({"X": 1})], [FirstTask(0.2, 0.05, 0.28)])
    header, product_row, bare_row = apply_lines(product, bare)
    assert "task wait" in header and "outside" in header and "(1+ histories)" in header
    assert product_row.split() == ["product", "500", "ms", "150", "ms", "680", "ms", "120", "ms"]
    assert bare_row.split() == ["bare", "200", "ms", "50", "ms", "280", "ms", "20", "ms"]


def test_no_first_task_read_says_so() -> None:
    assert apply_lines(phase("product", 1, 1.0, 0.1, 29), None) == [
        "apply breakdown: no first workflow task read"
    ]


def test_paced_runs_do_not_judge_throughput() -> None:
    line = targets_line(
        phase("product", 10, 2.0, 0.12, 29), phase("bare", 10, 1.0, 0.1, 29), paced=True
    )
    assert line.startswith("targets: throughput: not compared (both paced); events/refund 29")
    assert line.endswith("apply p50 ×1.20 bare (≤ 1.5): met")


def test_matching_shows_the_share_of_tasks_handed_to_a_waiting_poll() -> None:
    product = phase("product", 4, 1.0, 0.8, 29)
    product.matching = QueueMatching(Handed(400, 18), Handed(1200, 448))
    bare = phase("bare", 4, 1.0, 0.3, 29)
    bare.matching = QueueMatching(Handed(300, 120), Handed(0, 0))
    title, product_line, bare_line = matching_lines(product, bare)
    assert "waiting" in title
    assert product_line.split() == (
        "product first tasks 18 of 400 (4%), later (sticky) tasks 448 of 1200 (37%)".split()
    )
    assert (
        bare_line.split() == "bare first tasks 120 of 300 (40%), later (sticky) tasks none".split()
    )
    assert matching_lines(phase("product", 1, 1.0, 0.1, 29), None) == [
        "workflow tasks to a waiting poll: not measured (no server metrics)"
    ]
