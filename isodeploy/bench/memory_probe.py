"""``python -m isodeploy.bench.memory_probe SPEC_JSON``: peak RSS of loading and running one artifact.

Runs in a fresh process so that nothing the parent allocated (other models, the exporter) counts.
The baseline is taken after the runtime library is imported and before the artifact is loaded;
then the kernel's high-water mark is reset (``/proc/self/clear_refs`` ← 5) so VmHWM afterwards is
the peak of loading plus running. Prints one JSON line.
"""

from __future__ import annotations

import json
import sys
from typing import Any

KB = 1024
MB = 2**20


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


def _load_and_run(spec: dict[str, Any]) -> None:
    batch, iters, threads = int(spec["batch"]), int(spec.get("iters", 2)), spec.get("threads")
    if spec["runtime"] == "torch":
        import torch

        from isodeploy.zoo import load_model

        if threads:
            torch.set_num_threads(int(threads))
        kwargs = dict(spec.get("create_kwargs") or {})
        kwargs.pop("img_size", None)
        loaded = load_model(spec["model"], weights=spec.get("weights", "random"), img_size=spec.get("img_size"), **kwargs)
        x = loaded.example_input(batch)
        with torch.inference_mode():
            for _ in range(iters):
                loaded.model(x)
    elif spec["runtime"] == "ort":
        from isodeploy.bench.backends import ort_input, ort_session

        session = ort_session(spec["onnx"], device="cpu", threads=threads)
        name, x = ort_input(session, batch, spec.get("img_size"))
        for _ in range(iters):
            session.run(None, {name: x})
    else:
        raise ValueError(f"memory probe supports runtimes torch and ort, not {spec['runtime']!r}")


def _import_runtime(runtime: str) -> None:
    """Import what loading needs before the baseline, so library code does not count as the model's."""
    import numpy  # noqa: F401

    if runtime == "torch":
        import timm  # noqa: F401  (zoo imports timm lazily; its import alone is ~200 MB of RSS)
        import torch  # noqa: F401

        import isodeploy.zoo  # noqa: F401
    else:
        import onnxruntime  # noqa: F401

        import isodeploy.bench.backends  # noqa: F401


def probe(spec: dict[str, Any]) -> dict[str, Any]:
    _import_runtime(spec["runtime"])
    rss_kb = _status_kb("VmRSS")
    if rss_kb is not None and _reset_peak():
        baseline = rss_kb * KB
        _load_and_run(spec)
        peak = (_status_kb("VmHWM") or 0) * KB
        how = "VmRSS before loading; VmHWM after running, its high-water mark reset after the baseline"
    else:  # no /proc (macOS) or no reset: ru_maxrss is a process-lifetime peak
        baseline = _maxrss_bytes()
        _load_and_run(spec)
        peak = _maxrss_bytes()
        how = "ru_maxrss before loading and after running (a process-lifetime peak)"
    return {"baseline_mb": baseline / MB, "peak_mb": peak / MB, "how": how}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m isodeploy.bench.memory_probe SPEC_JSON", file=sys.stderr)
        return 2
    try:
        result = probe(json.loads(argv[0]))
    except Exception as exc:  # the parent turns this into a note, not a crash
        print(json.dumps({"error": f"{type(exc).__name__}: {str(exc).strip()[:300]}"}))
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
