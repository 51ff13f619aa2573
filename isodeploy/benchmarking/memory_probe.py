"""``python -m isodeploy.benchmarking.memory_probe SPEC_JSON``: peak memory of loading and running one artifact.

Runs in a fresh process so that nothing the parent allocated (other models, the exporter) counts, and
goes through the same runtime layer and the same timed step as the benchmark, at the batch measured,
so every runner is measured by one method per device:

* CPU: the baseline is VmRSS after the runtime library is imported and before the artifact is loaded;
  the kernel's high-water mark is then reset (``/proc/self/clear_refs`` ← 5), so VmHWM afterwards is the
  peak of loading plus running (``ru_maxrss`` where /proc is missing).
* CUDA: device memory in use (total − free from ``cudaMemGetInfo``, via ``torch.cuda.mem_get_info``)
  after the CUDA context exists and before loading, vs after loading and running: weights, activations,
  workspaces, the runtime's allocator cache and the I/O tensors, for torch, onnxruntime and TensorRT alike.

Prints one JSON line.
"""

from __future__ import annotations

import json
import sys
from typing import Any

KB = 1024
MB = 2**20
CPU_METHOD = "cpu-peak-rss-fresh-process"
CUDA_METHOD = "cuda-mem-get-info-fresh-process"


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux ≥ 4.0); False where the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _maxrss_bytes() -> int:
    import resource

    value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return value if sys.platform == "darwin" else value * KB  # bytes on macOS, kB on Linux


def make_runner(spec: dict[str, Any]) -> Any:
    """The runner the benchmark used, rebuilt from the spec (same runtime, device, precision, threads)."""
    runtime, device, threads = spec["runtime"], spec.get("device", "cpu"), spec.get("threads")
    if runtime == "torch":
        from isodeploy.runtime.torch_runner import TorchRunner
        from isodeploy.loading import load_model

        kwargs = dict(spec.get("create_kwargs") or {})
        kwargs.pop("img_size", None)
        loaded = load_model(spec["model"], weights=spec.get("weights", "random"), img_size=spec.get("img_size"), **kwargs)
        return TorchRunner(loaded.model, device, precision=spec.get("precision", "fp32"), compile=bool(spec.get("compile")),
                           threads=threads, input_size=tuple(loaded.input_size))
    if runtime == "ort":
        from isodeploy.runtime.ort import OrtRunner

        return OrtRunner(spec["onnx"], threads=threads, device=device)
    if runtime == "reference":
        from isodeploy.runtime.reference import ReferenceRunner

        return ReferenceRunner(spec["onnx"])
    if runtime == "trt":
        from isodeploy.runtime.trt.runner import TrtRunner

        return TrtRunner(spec["plan"])
    raise ValueError(f"memory probe supports runtimes torch, ort, reference and trt, not {runtime!r}")


def _import_runtime(spec: dict[str, Any]) -> None:
    """Import what loading needs before the baseline, so library code does not count as the model's."""
    import numpy  # noqa: F401

    import isodeploy.runtime.base  # noqa: F401

    runtime = spec["runtime"]
    if runtime == "torch" or spec.get("device") == "cuda":
        import timm  # noqa: F401  (zoo imports timm lazily; its import alone is ~200 MB of RSS)
        import torch  # noqa: F401

        import isodeploy.zoo  # noqa: F401
    if runtime in ("ort", "reference"):
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    if runtime == "reference":
        import onnx.reference  # noqa: F401
    if runtime == "trt":
        import tensorrt  # noqa: F401


def _run(spec: dict[str, Any]) -> None:
    runner = make_runner(spec)
    timed = runner.timed_step(int(spec["batch"]), spec.get("img_size"))
    for _ in range(int(spec.get("iters", 2))):
        timed.step()
    if spec.get("device") == "cuda":
        import torch

        torch.cuda.synchronize()
    spec["_keep"] = (runner, timed)  # alive until the reading: the figure is "in use while running"


def probe_cpu(spec: dict[str, Any]) -> dict[str, Any]:
    rss_kb = _status_kb("VmRSS")
    if rss_kb is not None and _reset_peak():
        baseline = rss_kb * KB
        _run(spec)
        peak = (_status_kb("VmHWM") or 0) * KB
        how = "VmRSS before loading; VmHWM after running, its high-water mark reset after the baseline"
    else:  # no /proc (macOS) or no reset: ru_maxrss is a process-lifetime peak
        baseline = _maxrss_bytes()
        _run(spec)
        peak = _maxrss_bytes()
        how = "ru_maxrss before loading and after running (a process-lifetime peak)"
    return {"baseline_mb": baseline / MB, "peak_mb": peak / MB, "how": how, "method_id": CPU_METHOD}


def probe_cuda(spec: dict[str, Any]) -> dict[str, Any]:
    import torch

    torch.cuda.init()
    torch.zeros(1, device="cuda")  # the primary context, shared by torch, onnxruntime and TensorRT
    torch.cuda.synchronize()
    free, total = torch.cuda.mem_get_info()
    baseline = total - free
    _run(spec)
    free, total = torch.cuda.mem_get_info()
    used = total - free
    return {"baseline_mb": baseline / MB, "peak_mb": used / MB, "method_id": CUDA_METHOD,
            "how": "device memory in use (total − free, cudaMemGetInfo) after the CUDA context was created vs after loading and running"}


def probe(spec: dict[str, Any]) -> dict[str, Any]:
    _import_runtime(spec)
    return probe_cuda(spec) if spec.get("device") == "cuda" else probe_cpu(spec)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m isodeploy.benchmarking.memory_probe SPEC_JSON", file=sys.stderr)
        return 2
    try:
        result = probe(json.loads(argv[0]))
    except Exception as exc:  # the parent turns this into a note, not a crash
        print(json.dumps({"error": f"{type(exc).__name__}: {str(exc).strip()[:300]}"}))
        return 1
    import os

    result["pid"] = os.getpid()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
