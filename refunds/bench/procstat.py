"""CPU seconds per process tree, from /proc: what each part of the stack spent in a phase.

A server's forks count as its own (PostgreSQL's backends, which leave the postmaster's process
group with setsid, so the tree is followed by parent pid): a tree's CPU is the sum over its live
processes of utime + stime, plus cutime + cstime, the time of children that already exited and
were reaped by their parent.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class Stat:
    pid: int
    ppid: int
    ticks: int  # own utime + stime, and reaped children's cutime + cstime


def parse_stat(text: str) -> Stat:
    """One /proc/PID/stat line. The command name (field 2) sits in parentheses and may hold
    spaces or parentheses itself, so the fields are counted from the last ')'."""
    pid = int(text[: text.index("(")])
    rest = text[text.rindex(")") + 2 :].split()
    # rest[0] is field 3 (state): ppid is field 4, utime, stime, cutime, cstime fields 14-17.
    return Stat(pid, int(rest[1]), sum(int(v) for v in rest[11:15]))


def read_stats(proc: Path = PROC) -> list[Stat]:
    stats = []
    for entry in proc.iterdir():
        if entry.name.isdigit():
            try:
                stats.append(parse_stat((entry / "stat").read_text()))
            except (OSError, ValueError, IndexError):
                continue  # gone meanwhile
    return stats


def tree_ticks(stats: Iterable[Stat], root: int) -> int:
    """CPU ticks of `root` and every live descendant (reaped ones are in their parents')."""
    children: dict[int, list[Stat]] = {}
    by_pid: dict[int, Stat] = {}
    for stat in stats:
        children.setdefault(stat.ppid, []).append(stat)
        by_pid[stat.pid] = stat
    if root not in by_pid:
        return 0
    total, todo = 0, [by_pid[root]]
    while todo:
        stat = todo.pop()
        total += stat.ticks
        todo += children.get(stat.pid, [])
    return total


class CpuSampler:
    """CPU seconds per role (role -> the pids of its processes), sampled around a phase."""

    def __init__(self, roles: Mapping[str, Iterable[int]], proc: Path = PROC) -> None:
        self.roles = {role: list(pids) for role, pids in roles.items()}
        self.proc = proc
        self.hz = os.sysconf("SC_CLK_TCK")

    def sample(self) -> dict[str, float]:
        stats = read_stats(self.proc)
        # The bench itself: the servers are its children, so its own process only.
        bench = parse_stat((self.proc / str(os.getpid()) / "stat").read_text()).ticks
        ticks = {
            role: sum(tree_ticks(stats, pid) for pid in pids) for role, pids in self.roles.items()
        }
        return {role: t / self.hz for role, t in {**ticks, "bench": bench}.items()}


def spent(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    return {role: max(0.0, after[role] - before.get(role, 0.0)) for role in after}
