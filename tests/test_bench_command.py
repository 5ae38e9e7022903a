"""`refunds bench --compare-bare` end to end, tiny: its own stack comes up, both phases run, and
the report has every part. Never a timing assertion: numbers come from the command, not tests."""

from __future__ import annotations

import re
import subprocess
import sys


def test_bench_compare_bare_prints_both_rows_events_cpu_and_the_gateway_rate() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "refunds.cli.main", "bench", "--compare-bare"]
        + ["--refunds", "4", "--concurrency", "2", "--refund-delay", "0.2", "--stripe-rate", "50"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = done.stdout
    assert done.returncode == 0, f"{out}\n{done.stderr[-3000:]}"
    assert out.startswith("machine: ") and "4 refunds, concurrency 2" in out
    assert re.search(r"^product +\d+\.\d +\d+ ms", out, re.M), out
    assert re.search(r"^bare +\d+\.\d +\d+ ms", out, re.M), out
    assert re.search(r"^ratio +\d+\.\d\d +×\d", out, re.M), out
    assert re.search(r"^product events per refund: min \d+, median \d+, max \d+", out, re.M)
    assert re.search(r"^bare events per workflow: min \d+", out, re.M), out
    assert "local activities" in out and "signals" in out and "by type: " in out
    product_cpu = re.search(r"^cpu s/refund \(product phase\) (.*)$", out, re.M)
    assert product_cpu, out
    for role in ("temporal", "postgres", "api", "worker", "sandbox", "bench", "total"):
        assert re.search(rf"\b{role} \d+\.\d{{3}}", product_cpu.group(1)), out
    assert re.search(r"^cpu s/wf +\(bare phase\) .*bare-worker \d+\.\d{3}", out, re.M), out
    assert re.search(r"^stripe refunds created per 1 s window: peak \d+, .*limit 50/s", out, re.M)
    assert out.rstrip().splitlines()[-1].startswith("targets: "), out
