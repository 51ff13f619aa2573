"""Timing loops: warm-up, then one sample per step, on the host clock or on CUDA events.

Every step is timed on its own so that percentiles and the coefficient of variation are real. On
CPU the clock is ``perf_counter_ns`` (monotonic, highest resolution). On CUDA, events are recorded
on the stream the work is enqueued on and read after a single synchronize at the end, so the host
never stalls the queue between steps.
"""

from __future__ import annotations

import gc
import time
from typing import Any, Callable

ProgressFn = Callable[[int], None]


def _noop(_: int) -> None:
    pass


def time_host(step: Callable[[], Any], *, warmup: int, iters: int, sync: Callable[[], None] | None = None, advance: ProgressFn = _noop) -> list[float]:
    """Milliseconds per step on the monotonic clock; ``sync`` (if given) runs inside the timed region."""
    for _ in range(warmup):
        step()
        if sync:
            sync()
        advance(1)
    samples: list[float] = []
    gc_was_enabled = gc.isenabled()
    gc.disable()  # a collection in the middle of a step is noise, not model latency
    try:
        for _ in range(iters):
            t0 = time.perf_counter_ns()
            step()
            if sync:
                sync()
            samples.append((time.perf_counter_ns() - t0) / 1e6)
            advance(1)
    finally:
        if gc_was_enabled:
            gc.enable()
    return samples


def time_cuda(step: Callable[[], Any], stream: Any, *, warmup: int, iters: int, advance: ProgressFn = _noop) -> list[float]:
    """Milliseconds per step from CUDA events recorded on ``stream`` (a ``torch.cuda.Stream``)."""
    import torch

    with torch.cuda.stream(stream):
        for _ in range(warmup):
            step()
            advance(1)
        stream.synchronize()
        events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(iters)]
        for start, end in events:
            start.record(stream)
            step()
            end.record(stream)
            advance(1)
        stream.synchronize()
    return [start.elapsed_time(end) for start, end in events]


def time_steps(prepared: Any, *, warmup: int, iters: int, advance: ProgressFn = _noop) -> list[float]:
    """Time a :class:`~isodeploy.runtime.base.TimedStep` with the clock its device calls for."""
    if prepared.cuda_stream is not None:
        return time_cuda(prepared.step, prepared.cuda_stream, warmup=warmup, iters=iters, advance=advance)
    return time_host(prepared.step, warmup=warmup, iters=iters, sync=getattr(prepared, "sync", None), advance=advance)


def round_sizes(iters: int, rounds: int) -> list[int]:
    """Split ``iters`` timed steps into at most ``rounds`` interleaved rounds, as evenly as possible."""
    rounds = max(1, min(rounds, iters))
    base, extra = divmod(iters, rounds)
    return [base + (1 if i < extra else 0) for i in range(rounds)]
