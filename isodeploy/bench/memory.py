"""Peak memory on CPU: run :mod:`isodeploy.bench.memory_probe` in a fresh subprocess.

In-process RSS would count everything the benchmark already holds (other models, the exporter,
torch's caches), so each CPU figure comes from a new interpreter that loads only one artifact. GPU
figures are read in-process by the backends (see :mod:`isodeploy.bench.backends`).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from isodeploy.bench.report import MemoryFigure

PROBE_ITERS = 2  # the first run allocates the arena/workspaces; the second shows it is reused


def probe_spec_for_model(loaded: Any, *, batch: int, threads: int | None) -> dict[str, Any]:
    """A probe spec that rebuilds ``loaded`` (same timm name, weights and creation kwargs) in the child."""
    query = str(loaded.folder) if getattr(loaded, "folder", None) else loaded.timm_name
    weights = loaded.weights if loaded.weights in ("pretrained", "random") or Path(str(loaded.weights)).exists() else "random"
    kwargs = dict(getattr(loaded, "create_kwargs", {}) or {})
    img_size = kwargs.pop("img_size", None)
    return {"runtime": "torch", "model": query, "weights": weights, "img_size": img_size,
            "create_kwargs": _jsonable(kwargs), "batch": batch, "threads": threads, "iters": PROBE_ITERS}


def probe_spec_for_onnx(path: Path, *, batch: int, threads: int | None, img_size: int | None = None) -> dict[str, Any]:
    return {"runtime": "ort", "onnx": str(path), "img_size": img_size, "batch": batch, "threads": threads, "iters": PROBE_ITERS}


def _jsonable(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in kwargs.items()}


def measure_peak_rss(spec: dict[str, Any], timeout_s: float = 900.0) -> tuple[MemoryFigure | None, str | None]:
    """(figure, None) on success, (None, reason) when the probe failed; a failed probe is a note, not fatal."""
    cmd = [sys.executable, "-m", "isodeploy.bench.memory_probe", json.dumps(spec)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return None, f"memory probe timed out after {timeout_s:.0f} s"
    lines = [ln for ln in proc.stdout.strip().splitlines() if ln.startswith("{")]
    if not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1][:200]
        return None, f"memory probe failed (exit {proc.returncode}): {tail}"
    data = json.loads(lines[-1])
    if "error" in data:
        return None, f"memory probe failed: {data['error']}"
    runtime = "torch" if spec["runtime"] == "torch" else "onnxruntime"
    method = (
        f"CPU {runtime}: peak RSS of a fresh subprocess that loads the artifact and runs {spec.get('iters', PROBE_ITERS)} batches; "
        f"baseline = the same process after importing {runtime}, before loading ({data['how']})"
    )
    peak, base = float(data["peak_mb"]), float(data["baseline_mb"])
    return MemoryFigure(peak_mb=peak, baseline_mb=base, delta_mb=peak - base, method=method), None
