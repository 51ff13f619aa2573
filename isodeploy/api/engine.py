"""The public TensorRT engine API: ``isodeploy build-engine`` is a thin shell over :func:`build_engine`.

:func:`build_engine` takes the command's defaults (FP16 strongly typed; profile batch 1 … 256, tuned
for the largest; the engine next to the ONNX as ``.plan``) and delegates to the builder in
:mod:`isodeploy.export.trt.build`; :class:`EngineMeta` (what ``<plan>.json`` records) is re-exported
from :mod:`isodeploy.runtime.trt.meta`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from isodeploy.core.api_args import check_path_arg
from isodeploy.core.errors import IsodeployError, ParameterError
from isodeploy.runtime.trt.meta import EngineMeta

__all__ = ["EngineMeta", "build_engine", "default_engine_path"]


def default_engine_path(onnx_path: str | Path) -> Path:
    """Where the engine of ``onnx_path`` goes when no path is given: the same path with ``.plan``."""
    return Path(check_path_arg("onnx_path", onnx_path)).with_suffix(".plan")


def build_engine(onnx_path: str | Path, out_path: str | Path | None = None, *, precision: str = "fp16", min_batch: int = 1,
                 opt_batch: int | None = None, max_batch: int = 256, workspace_gb: float | None = None, opt_level: int = 3,
                 timing_cache: str | Path | None = None, on_phase: Callable[[str], None] | None = None) -> EngineMeta:
    """Build a TensorRT engine (``out_path``, default :func:`default_engine_path`) plus its ``.plan.json``
    metadata (TensorRT, CUDA, GPU, profile, I/O, source hash) from an ONNX file; return the metadata.

    ``precision``: ``fp16`` (strongly typed from the mixed-precision ONNX; an FP32 ONNX is converted
    on the fly), ``fp32``, or ``fp16-legacy`` (BuilderFlag.FP16, TensorRT 10 only). ``opt_batch``
    (default ``max_batch``) is the batch TensorRT tunes kernels for: the batch you will run.
    ``timing_cache``: a folder of caches, one per TensorRT version and GPU. ``on_phase`` is told each
    phase. Bad arguments fail before TensorRT is loaded; no TensorRT is exit code 3, no GPU 4.
    """
    from isodeploy.export.trt.build import build_engine as _build

    onnx = check_path_arg("onnx_path", onnx_path)
    out = default_engine_path(onnx) if out_path is None else check_path_arg("out_path", out_path)
    cache = check_path_arg("timing_cache", timing_cache, optional=True)
    if out.suffix != ".plan":
        raise IsodeployError(f"engine path '{out}' must end in .plan (verify, bench and Triton recognise engines by it)")
    if workspace_gb is not None and (isinstance(workspace_gb, bool) or not isinstance(workspace_gb, (int, float))
                                     or not workspace_gb > 0):
        raise ParameterError("workspace_gb", f"must be positive, got {workspace_gb}")
    if isinstance(opt_level, bool) or not isinstance(opt_level, int) or not 0 <= opt_level <= 5:
        raise ParameterError("opt_level", f"must be in 0..5 (TensorRT's builder optimization level), got {opt_level}")
    return _build(onnx, out, precision=precision, min_batch=min_batch, opt_batch=opt_batch, max_batch=max_batch,
                  workspace_gb=workspace_gb, opt_level=opt_level, timing_cache=cache, on_phase=on_phase)
