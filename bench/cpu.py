"""Where the CPU went: per-process CPU seconds of the stack (by process group), Postgres, RabbitMQ and the
load generator itself, read from /proc before and after each step."""

from __future__ import annotations

import os
import time
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: str) -> tuple[str, int, int, int, int] | None:
    """(comm, ppid, pgrp, own ticks, reaped children's ticks)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    comm = raw[raw.index("(") + 1: raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2:].split()
    # fields[0] is state (field 3 of stat); utime=14, stime=15, cutime=16, cstime=17, ppid=4, pgrp=5
    return comm, int(fields[1]), int(fields[2]), int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14])


def snapshot(groups: dict[str, int]) -> dict[str, float]:
    """CPU seconds so far: each named process group, 'postgres' (every backend, and the ones already gone),
    'rabbitmq', 'bench' (this process), and 'other' (everything else on the machine)."""
    by_group = {pgid: name for name, pgid in groups.items()}
    totals = {name: 0 for name in groups} | {"postgres": 0, "rabbitmq": 0, "other": 0}
    stats = {pid: s for pid in os.listdir("/proc") if pid.isdigit() and (s := _stat(pid)) is not None}
    comms = {int(pid): s[0] for pid, s in stats.items()}
    me = os.getpid()
    for pid, (comm, ppid, pgrp, ticks, child_ticks) in stats.items():
        if int(pid) == me:
            continue
        if pgrp in by_group:
            totals[by_group[pgrp]] += ticks
        elif comm == "postgres":
            totals["postgres"] += ticks + (child_ticks if comms.get(ppid) != "postgres" else 0)
        elif comm in ("beam.smp", "erl_child_setup", "epmd", "inet_gethost"):
            totals["rabbitmq"] += ticks
        else:
            totals["other"] += ticks
    seconds = {name: ticks / _TICK for name, ticks in totals.items()}
    t = os.times()
    seconds["bench"] = t.user + t.system
    seconds["_wall"] = time.monotonic()
    return seconds


def difference(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU seconds per process over the interval, plus '_wall' (seconds) and 'total'."""
    diff = {k: round(after[k] - before.get(k, 0.0), 2) for k in after}
    # 'other' is the rest of the machine (it can even shrink, when processes end): not in our total.
    diff["total"] = round(sum(v for k, v in diff.items() if not k.startswith("_") and k != "other"), 2)
    return diff
