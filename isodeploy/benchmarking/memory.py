"""Peak memory, one method per device for every runtime: a fresh subprocess runs
:mod:`isodeploy.benchmarking.memory_probe` on the same runner and batch the benchmark timed.

In-process figures would count everything the benchmark already holds (other models, the exporter,
torch's caches), and each runtime's own counter measures something different (torch's allocator
excludes its cache, TensorRT's context size excludes I/O), so none of them is used.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from isodeploy.benchmarking.memory_probe import CPU_METHOD, CUDA_METHOD
from isodeploy.benchmarking.report import MemoryFigure

PROBE_ITERS = 2  # the first run allocates the arena/workspaces; the second shows it is reused
METHODS = {
    CPU_METHOD: "CPU: peak RSS of a fresh subprocess that loads the artifact and runs {iters} batches of {batch} through the benchmark's runner; "
                "memory added = peak − the same process's RSS after importing the runtime (the + figure in bench tables)",
    CUDA_METHOD: "CUDA: device memory in use (cudaMemGetInfo total − free) in a fresh subprocess after loading and running {iters} batches of {batch} "
                 "through the benchmark's runner, minus the reading once the CUDA context existed: weights, activations, workspaces, "
                 "allocator caches and the I/O tensors, the same for torch, onnxruntime and TensorRT",
}


def probe_spec(runtime: str, *, device: str, batch: int, threads: int | None, loaded: Any = None, onnx: Path | None = None,
               plan: Path | None = None, img_size: int | None = None, precision: str = "fp32", compile: bool = False) -> dict[str, Any]:
    """What the child needs to rebuild the runner: a model query (timm name or folder), an ONNX or an engine."""
    spec: dict[str, Any] = {"runtime": runtime, "device": device, "batch": batch, "threads": threads, "iters": PROBE_ITERS,
                            "img_size": img_size, "precision": precision, "compile": compile}
    if runtime == "torch":
        query = str(loaded.folder) if getattr(loaded, "folder", None) else loaded.timm_name
        weights = loaded.weights if loaded.weights in ("pretrained", "random") or Path(str(loaded.weights)).exists() else "random"
        kwargs = dict(getattr(loaded, "create_kwargs", {}) or {})
        spec.update(model=query, weights=weights, img_size=kwargs.pop("img_size", None) or img_size,
                    create_kwargs={k: list(v) if isinstance(v, tuple) else v for k, v in kwargs.items()})
    elif runtime in ("ort", "reference"):
        spec["onnx"] = str(onnx)
    elif runtime == "trt":
        spec["plan"] = str(plan)
    return spec


def measure_peak(spec: dict[str, Any], repeats: int = 1, timeout_s: float = 900.0) -> tuple[MemoryFigure | None, str | None]:
    """(figure, None) on success, (None, reason) when a probe failed; a failed probe is a note, not fatal.

    With ``repeats`` > 1 the probe runs that many times; the figure is the median and ``samples_mb``
    keeps each delta, so memory ratios get a spread like latency ones.
    """
    readings = []
    for _ in range(max(1, repeats)):
        data, why = _probe_once(spec, timeout_s)
        if why:
            return None, why
        readings.append(data)
    peaks = [float(d["peak_mb"]) for d in readings]
    bases = [float(d["baseline_mb"]) for d in readings]
    deltas = [p - b for p, b in zip(peaks, bases)]
    method_id = readings[0]["method_id"]
    text = METHODS[method_id].format(iters=spec.get("iters", PROBE_ITERS), batch=spec["batch"]) + f" ({readings[0]['how']})"
    return MemoryFigure(peak_mb=statistics.median(peaks), baseline_mb=statistics.median(bases), delta_mb=statistics.median(deltas),
                        method=text, method_id=method_id, samples_mb=deltas, pids=[int(d.get("pid", 0)) for d in readings]), None


def _probe_once(spec: dict[str, Any], timeout_s: float) -> tuple[dict[str, Any], str | None]:
    cmd = [sys.executable, "-m", "isodeploy.benchmarking.memory_probe", json.dumps(spec)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {}, f"memory probe timed out after {timeout_s:.0f} s"
    lines = [ln for ln in proc.stdout.strip().splitlines() if ln.startswith("{")]
    if not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1][:200]
        return {}, f"memory probe failed (exit {proc.returncode}): {tail}"
    data = json.loads(lines[-1])
    if "error" in data:
        return {}, f"memory probe failed: {data['error']}"
    return data, None
