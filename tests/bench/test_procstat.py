"""CPU time per process tree from /proc/PID/stat, a server's forks counted as its own."""

from __future__ import annotations

import os
from pathlib import Path

from refunds.bench.procstat import CpuSampler, Stat, parse_stat, spent, tree_ticks

# Field 2 may hold spaces and parentheses; utime..cstime are fields 14-17.
LINE = "4242 (postgres: (x) idle) S 4000 4242 4242 0 -1 4194560 10 0 0 0 7 3 2 1 20 0 1 0 5 1 1"


def test_stat_fields_are_counted_from_the_last_parenthesis() -> None:
    assert parse_stat(LINE) == Stat(pid=4242, ppid=4000, ticks=7 + 3 + 2 + 1)


def test_a_tree_counts_its_descendants_and_not_its_neighbours() -> None:
    stats = [
        Stat(10, 1, 5),  # the server
        Stat(11, 10, 7),  # a backend in its own session (setsid), still the server's child
        Stat(12, 11, 1),  # a grandchild
        Stat(20, 1, 100),  # another server
    ]
    assert tree_ticks(stats, 10) == 13
    assert tree_ticks(stats, 20) == 100
    assert tree_ticks(stats, 99) == 0  # gone


def write_proc(root: Path, pid: int, ppid: int, utime: int) -> None:
    (root / str(pid)).mkdir(parents=True, exist_ok=True)
    stat = f"{pid} (x) S {ppid} {pid} {pid} 0 -1 0 0 0 0 0 {utime} 0 0 0 20 0 1 0 5 1 1"
    (root / str(pid) / "stat").write_text(stat)


def test_a_phase_spends_what_each_role_used_between_two_samples(tmp_path: Path) -> None:
    hz = os.sysconf("SC_CLK_TCK")
    write_proc(tmp_path, os.getpid(), 1, 0)
    write_proc(tmp_path, 10, 1, hz)
    write_proc(tmp_path, 11, 10, 0)
    sampler = CpuSampler({"postgres": [10]}, proc=tmp_path)
    before = sampler.sample()
    write_proc(tmp_path, 11, 10, 3 * hz)
    write_proc(tmp_path, os.getpid(), 1, hz // 2)
    assert spent(before, sampler.sample()) == {"postgres": 3.0, "bench": (hz // 2) / hz}
