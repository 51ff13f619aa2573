"""Open the right runner for an artifact file, and say what precision it computes in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from isodeploy.core.errors import IsodeployError

ONNX_SUFFIXES = (".onnx",)
PLAN_SUFFIXES = (".plan", ".engine")
ONNX_RUNTIMES = ("ort", "reference")


def open_runner(artifact_path: Path | str, threads: int | None = None, *, runtime: str = "ort", device: str = "cpu") -> Any:
    """``.onnx`` → onnxruntime (or the reference evaluator); ``.plan``/``.engine`` → TensorRT."""
    path = Path(artifact_path)
    suffix = path.suffix.lower()
    if runtime not in ONNX_RUNTIMES + ("trt",):
        raise IsodeployError(f"unknown ONNX runtime '{runtime}': choose ort or reference")
    if suffix in ONNX_SUFFIXES:
        if runtime == "reference":
            from isodeploy.runtime.reference import ReferenceRunner

            return ReferenceRunner(path, device=device)
        from isodeploy.runtime.ort import OrtRunner

        return OrtRunner(path, threads=threads, device=device)
    if suffix in PLAN_SUFFIXES:
        if not path.is_file():
            raise IsodeployError(f"engine file '{path}' does not exist")
        from isodeploy.runtime.trt.runner import TrtRunner

        return TrtRunner(path, threads=threads)
    if not path.exists():
        raise IsodeployError(f"artifact '{path}' does not exist")
    raise IsodeployError(f"unknown artifact type '{suffix or path.name}' for '{path}': expected a .onnx or a .plan file")


def runner_precision(runner: Any) -> str:
    """What precision an artifact computes in, which decides the default ``verify`` gates."""
    precision = getattr(runner, "precision", None) or getattr(getattr(runner, "meta", None), "precision", None)
    if precision:
        return "fp32" if str(precision).lower() == "fp32" else "fp16"
    return "fp16" if str(getattr(runner, "path", "")).endswith(PLAN_SUFFIXES) else "fp32"
