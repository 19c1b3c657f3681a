"""CPU time of a process tree, read from /proc (Linux): what the benchmarks charge to the emulator."""

from __future__ import annotations

import os
from pathlib import Path


def tree_cpu(pid: int) -> float:
    """CPU seconds used so far by a process and its descendants: the live ones, and (through each
    parent's cutime/cstime) those that have exited and been waited for. 0 where there is no /proc."""
    children: dict[int, list[int]] = {}
    used: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        me = int(stat.parent.name)
        children.setdefault(int(fields[1]), []).append(me)
        used[me] = sum(int(x) for x in fields[11:15]) / tick  # utime stime cutime cstime
    todo, total = [pid], 0.0
    while todo:
        current = todo.pop()
        total += used.get(current, 0.0)
        todo += children.get(current, [])
    return total
