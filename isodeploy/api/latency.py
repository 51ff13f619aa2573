"""Pruning to a measured latency budget: the settings :func:`~isodeploy.api.prune` (``target_latency=``),
``isodeploy prune --target-latency`` and ``prune-export --target-latency`` share, checked before any
model is built. How the table, the solver and the measured check work: ``docs/latency.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from isodeploy.core.errors import IsodeployError, ParameterError
from isodeploy.latency.budget import LatencyBudget, parse_latency_budget
from isodeploy.latency.search import LatencySettings

__all__ = ["LatencyBudget", "LatencySettings", "latency_settings", "parse_latency_budget"]

DEFAULT_CPU_BATCH, DEFAULT_GPU_BATCH = 8, 256  # the bench's defaults


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
    budget = parse_latency_budget(target_latency)
    if budget is None:
        raise ParameterError("target_latency", "is required: a time such as 300ms or a fraction of the dense latency such as 0.5")
    if runtime not in ("ort", "trt"):
        raise ParameterError("runtime", f"must be ort or trt; got '{runtime}'")
    device = device or ("cuda" if runtime == "trt" else "cpu")
    if device not in ("cpu", "cuda"):
        raise ParameterError("device", f"must be cpu or cuda; got '{device}'")
    if runtime == "trt" and device != "cuda":
        raise IsodeployError("TensorRT latency tables are measured on the GPU: drop device='cpu' or use runtime='ort'")
    for name, value in (("batch", batch), ("threads", threads)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ParameterError(name, f"must be an integer ≥ 1; got {value!r}")
    for name, value in (("check_budget_s", check_budget_s), ("step_budget_s", step_budget_s)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0):
            raise ParameterError(name, f"must be a positive number of seconds; got {value!r}")
    if grid is not None:
        grid = tuple(grid)
        if not grid or any(isinstance(g, bool) or not isinstance(g, (int, float)) or not 0 < g < 1 for g in grid):
            raise ParameterError("grid", f"must be kept fractions in (0, 1), e.g. (0.75, 0.5); got {grid!r}")
    table = Path(latency_table) if latency_table is not None else None
    if table is not None and table.suffix.lower() != ".json":
        raise ParameterError("latency_table", f"must be a .json file path; got '{table}'")
    if table is not None and table.exists() and not table.is_file():
        raise ParameterError("latency_table", f"'{table}' is not a regular file; pass a .json file path")
    settings = LatencySettings(budget=budget, runtime=runtime, device=device,
                               batch=batch or (DEFAULT_GPU_BATCH if device == "cuda" else DEFAULT_CPU_BATCH), threads=threads,
                               table_path=table, use_cache=use_cache)
    if check_budget_s is not None:
        settings.check_budget_s = float(check_budget_s)
    settings.step_budget_s = None if step_budget_s is None else float(step_budget_s)
    if grid is not None:
        settings.grid = tuple(sorted((float(g) for g in grid), reverse=True))
    return settings
