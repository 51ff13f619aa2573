"""The runners ``bench`` times, made through the one runtime layer (:mod:`isodeploy.runtime`).

This module only decides *which* runner an artifact gets on a runtime and checks that the runtime
can run here (TensorRT missing → exit 3, CUDA missing → exit 4) before anything is loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from isodeploy.core.errors import ExitCode, IsodeployError
from isodeploy.runtime.base import CPU_TIMING, CUDA_EVENT_TIMING, CUDA_SYNC_TIMING, TimedStep  # noqa: F401 - re-exported
from isodeploy.runtime.torch_runner import require_cuda  # noqa: F401 - re-exported

Prepared = TimedStep  # the name the suite used before the runtime layer


def require_tensorrt() -> None:
    """TensorRT importable, else exit code 3 (the pipeline relies on that code)."""
    from isodeploy.runtime.trt.env import tensorrt_available

    reason = tensorrt_available()
    if reason:
        raise IsodeployError(reason, exit_code=ExitCode.NO_TENSORRT)


def torch_runner(loaded: Any, *, device: str, threads: int | None, precision: str, compile: bool, label: str) -> Any:
    from isodeploy.runtime.torch_runner import TorchRunner

    return TorchRunner(loaded.model, device, name=f"torch:{label}", precision=precision, compile=compile, threads=threads,
                       input_size=tuple(loaded.input_size))


def ort_runner(path: Path, *, device: str, threads: int | None) -> Any:
    from isodeploy.runtime.ort import OrtRunner

    return OrtRunner(path, threads=threads, device=device)


def trt_runner(plan: Path) -> Any:
    from isodeploy.runtime.trt.runner import TrtRunner

    return TrtRunner(plan)
