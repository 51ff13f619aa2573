"""How a latency-budget prune measures, checked once for every entry point (API, ``prune``, ``prune-export``).

The defaults are the bench's: onnxruntime CPU (TensorRT FP16 on the GPU with ``runtime='trt'``), its
batch (8 on CPU, 256 on GPU) and every usable core.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from isodeploy.benchmarking.suite import DEFAULT_BATCH
from isodeploy.core.errors import IsodeployError, ParameterError
from isodeploy.latency.budget import LatencyBudget, parse_latency_budget
from isodeploy.latency.build import DEFAULT_GRID

CHECK_BUDGET_S = 60.0  # the final measurement: the bench's adaptive protocol with this budget


@dataclass
class LatencySettings:
    """Where and how latency is measured; the bench's runtime, device, batch and threads."""

    budget: LatencyBudget
    runtime: str = "ort"
    device: str = "cpu"
    batch: int = DEFAULT_BATCH["cpu"]
    threads: int | None = None
    table_path: Path | None = None  # --latency-table: read it when it fits, build it there when missing
    use_cache: bool = True
    grid: tuple[float, ...] = DEFAULT_GRID
    check_budget_s: float = CHECK_BUDGET_S
    step_budget_s: float | None = None  # seconds per table step (None: STEP_PROTOCOL's); effort, not in the fingerprint
    work_dir: Path | None = None
    measurer: Callable[[Any, Any], Any] | None = None  # (dense model, example batch) → a Measurer; tests pass a synthetic one


def make_settings(target_latency: Any, *, latency_table: str | Path | None = None, runtime: str = "ort", device: str | None = None,
                  batch: int | None = None, threads: int | None = None, use_cache: bool = True,
                  check_budget_s: float | None = None, step_budget_s: float | None = None,
                  grid: tuple[float, ...] | None = None) -> LatencySettings:
    """Checked :class:`LatencySettings`; every bad value is one :class:`ParameterError` line naming it."""
    budget = parse_latency_budget(target_latency)
    if budget is None:
        raise ParameterError("target_latency", "is required: a time such as 300ms or a fraction of the dense latency such as 0.5")
    if runtime not in ("ort", "trt"):
        raise ParameterError("runtime", f"must be ort or trt; got '{runtime}'")
    device = device or ("cuda" if runtime == "trt" else "cpu")
    if device not in DEFAULT_BATCH:
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
    return LatencySettings(budget=budget, runtime=runtime, device=device, batch=batch or DEFAULT_BATCH[device], threads=threads,
                           table_path=table, use_cache=use_cache,
                           check_budget_s=CHECK_BUDGET_S if check_budget_s is None else float(check_budget_s),
                           step_budget_s=None if step_budget_s is None else float(step_budget_s),
                           grid=DEFAULT_GRID if grid is None else tuple(sorted((float(g) for g in grid), reverse=True)))


def refuse_explicit_cuts(given: list[str], latency_flag: str = "--target-latency", macs_flag: str = "--target-macs") -> None:
    """Ratios or a preset beside a latency budget contradict it: the solver decides each class's cut."""
    if given:
        raise IsodeployError(f"{latency_flag} chooses how much each class gives up: drop {', '.join(given)} "
                             f"({macs_flag} may stay: both must hold)")
