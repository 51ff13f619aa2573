"""Pruning to a measured latency budget: the settings :func:`~isodeploy.api.prune` (``target_latency=``),
``isodeploy prune --target-latency`` and ``prune-export --target-latency`` share, checked before any
model is built. How the table, the solver and the measured check work: ``docs/latency.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from isodeploy.latency.budget import LatencyBudget, parse_latency_budget
from isodeploy.latency.settings import LatencySettings, make_settings

__all__ = ["LatencyBudget", "LatencySettings", "latency_settings", "parse_latency_budget"]

def latency_settings(target_latency: Any, *, latency_table: str | Path | None = None, runtime: str = "ort", device: str | None = None,
                     batch: int | None = None, threads: int | None = None, use_cache: bool = True,
                     check_budget_s: float | None = None, step_budget_s: float | None = None,
                     grid: tuple[float, ...] | None = None) -> LatencySettings:
    """Checked settings for a latency-budget prune: ``target_latency`` is ``'300ms'`` or a fraction such as ``0.5``.

    ``runtime``: ``ort`` (onnxruntime, CPU unless ``device='cuda'``) or ``trt`` (TensorRT FP16 on the GPU).
    ``batch``/``threads`` default to the bench's (8 on CPU, 256 on GPU; every usable core).
    ``latency_table``: a table file to reuse (it must match this machine kind, runtime, threads and batch),
    or where to write the one built; without it tables are cached under ``$ISODEPLOY_CACHE_DIR``
    (default ``~/.cache/isodeploy``) unless ``use_cache=False``. ``check_budget_s`` bounds the final
    measurement (default 60 s), ``step_budget_s`` each table step (default 4 s); ``grid`` is the kept
    fractions each class is timed at (default 0.875 … 0.25 in eighths).
    """
    return make_settings(target_latency, latency_table=latency_table, runtime=runtime, device=device, batch=batch, threads=threads,
                         use_cache=use_cache, check_budget_s=check_budget_s, step_budget_s=step_budget_s, grid=grid)
