"""Was the machine busy while we timed? Load average before/after, and what *other* processes used.

The load average alone misleads here: a pipeline's own prune and export stages leave it near the
core count just before the bench starts. So the report also records the CPU time the whole machine
spent busy (``/proc/stat``) minus this process's own CPU time, over the timed part: the cores that
other processes took. That is what slows an interleaved run down and widens its intervals.
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import asdict, dataclass

BUSY_SHARE = 0.25  # other processes using more than this share of the cores: a busy machine


def _proc_busy_s() -> float | None:
    try:
        with open("/proc/stat") as fh:
            fields = fh.readline().split()[1:]
        ticks = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        return None
    values = [int(x) for x in fields[:8]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return (sum(values) - idle) / ticks


def _own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


@dataclass
class MachineLoad:
    load_before: list[float] | None
    load_after: list[float] | None
    other_cores: float | None  # mean cores used by other processes during the timed part
    cores: int
    busy: bool

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        parts = []
        if self.load_before and self.load_after:
            parts.append(f"load average {self.load_before[0]:.2f} before, {self.load_after[0]:.2f} after")
        if self.other_cores is not None:
            parts.append(f"other processes used {self.other_cores:.2f} of {self.cores} cores while timing")
        return "; ".join(parts) or "machine load not measurable here"


class LoadWatch:
    """Start before timing, ``stop()`` after; the result says whether others were competing."""

    def __init__(self, cores: int | None = None) -> None:
        self.cores = cores or os.cpu_count() or 1
        self.load_before = _loadavg()
        self._t0, self._busy0, self._own0 = time.monotonic(), _proc_busy_s(), _own_cpu_s()

    def stop(self) -> MachineLoad:
        wall = time.monotonic() - self._t0
        busy1, own1 = _proc_busy_s(), _own_cpu_s()
        other = None
        if self._busy0 is not None and busy1 is not None and wall > 0.5:
            other = max(0.0, ((busy1 - self._busy0) - (own1 - self._own0)) / wall)
        busy = other is not None and other > BUSY_SHARE * self.cores
        return MachineLoad(self.load_before, _loadavg(), round(other, 3) if other is not None else None, self.cores, busy)
