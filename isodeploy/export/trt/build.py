"""Build TensorRT engines (TensorRT 10 and 11) from ONNX: FP16 strongly typed by default.

``build_engine`` checks everything it can without TensorRT first (the ONNX, the batch flags, the
precision path), then needs TensorRT (exit code 3 when absent) and a CUDA GPU (exit code 4). The
engine and its ``.plan.json`` metadata are written atomically; the metadata is what the runner checks
against the running TensorRT/GPU and what the Triton writer reads.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType
from typing import Any

from isodeploy.core.version import __version__
from isodeploy.core.errors import IsodeployError
from isodeploy.core.safe_write import check_target, make_temp_dir, remove_quietly, replace_into
from isodeploy.core.hashing import sha256_file
from isodeploy.runtime.trt import env as trt_env
from isodeploy.runtime.trt.env import TrtCaps, cuda_available, tensorrt_available  # noqa: F401 - agreed API
from isodeploy.runtime.trt.meta import EngineMeta, TensorMeta, meta_path, timing_cache_file, write_meta_text
from isodeploy.export.trt.onnx_prep import ProfileShape, load_onnx_proto, profile_shapes, read_onnx_io
from isodeploy.export.trt.precision import BuildPlan, plan_precision

__all__ = ["build_engine", "tensorrt_available", "cuda_available", "EngineMeta"]

Phase = Callable[[str], None]


def _write_atomic(path: Path, data: Any) -> None:
    """Write a buffer (bytes, TensorRT IHostMemory) or text through a temp file in the same folder."""
    from isodeploy.core.safe_write import atomic_path

    with atomic_path(path) as tmp, open(tmp, "w" if isinstance(data, str) else "wb") as fh:
        fh.write(data)


def make_logger(trt: ModuleType):
    """The process-wide TensorRT logger (TensorRT keeps one logger pointer per process)."""
    from isodeploy.runtime.trt.runner import shared_logger

    return shared_logger(trt)


def _call(obj: Any, name: str, default: Any = None) -> Any:
    fn = getattr(obj, name, None)
    try:
        return fn() if callable(fn) else default
    except Exception:  # an accessor an older TensorRT lacks or cannot answer
        return default


def parser_error_message(parser: Any, onnx_path: Path, label: str | None = None) -> str:
    """Name the first failing node and its op (from the parser, else from the ONNX by index)."""
    count = int(parser.num_errors)
    if count == 0:
        return f"TensorRT's ONNX parser rejected '{onnx_path}' without an error message"
    err = parser.get_error(0)
    name, op, index = _call(err, "node_name", ""), _call(err, "node_operator", ""), _call(err, "node", -1)
    if not (name and op) and isinstance(index, int) and index >= 0:
        nodes = load_onnx_proto(onnx_path).graph.node
        if index < len(nodes):
            name, op = name or nodes[index].name, op or nodes[index].op_type
    where = f"node '{name or '?'}' (op {op or '?'})" if (name or op) else "the graph"
    desc = " ".join(str(_call(err, "desc", "")).split())
    more = f" (+{count - 1} more)" if count > 1 else ""
    return f"TensorRT's ONNX parser rejected {label or repr(str(onnx_path))} at {where}: {desc}{more}"


def convert_to_fp16(onnx_path: Path, out_path: Path) -> Path:
    """Hand an FP32 ONNX to the export helper's mixed-precision converter, with its defaults.

    Same result as ``isodeploy export --precision fp16``: FP32 I/O, the FP32 block list, and its own
    random-normal calibration batches for the FP16 range check.
    """
    try:
        from isodeploy.export.fp16 import convert_fp16
    except ModuleNotFoundError as exc:
        if exc.name != "isodeploy.export.fp16":
            raise
        raise IsodeployError(
            f"'{onnx_path}' is an FP32 ONNX and this isodeploy has no FP16 converter: "
            f"pass the ONNX from 'isodeploy export --precision fp16'"
        ) from exc
    report = convert_fp16(Path(onnx_path), Path(out_path))
    return Path(getattr(report, "path", None) or out_path)


def _dtype_name(dtype: Any) -> str:
    from isodeploy.runtime.dtypes import trt_dtype_name

    return trt_dtype_name(dtype)


def _network_io(network: Any) -> tuple[list[TensorMeta], list[TensorMeta]]:
    def meta(t: Any) -> TensorMeta:
        return TensorMeta(t.name, _dtype_name(t.dtype), [int(d) for d in t.shape])

    return ([meta(network.get_input(i)) for i in range(network.num_inputs)],
            [meta(network.get_output(i)) for i in range(network.num_outputs)])


def _attach_timing_cache(config: Any, cache_file: Path | None, notes: list[str]) -> Any:
    blob = cache_file.read_bytes() if cache_file and cache_file.is_file() else b""
    cache = config.create_timing_cache(blob)
    if cache is None or config.set_timing_cache(cache, False) is False:
        notes.append(f"timing cache '{cache_file}' did not match this TensorRT/GPU; started a new one")
        cache = config.create_timing_cache(b"")
        config.set_timing_cache(cache, False)
    return cache


def _build_serialized(trt: ModuleType, caps: TrtCaps, onnx_path: Path, plan: BuildPlan, shapes: list[ProfileShape],
                      workspace_bytes: int | None, opt_level: int, cache_file: Path | None, notes: list[str],
                      label: str | None = None):
    """The TensorRT calls proper: network → parser → config → profile → timing cache → serialized plan."""
    from isodeploy.runtime.trt.runner import new_builder

    logger = make_logger(trt)
    since = logger.mark()
    builder = new_builder(trt)  # a TensorRT for another CUDA major fails here: exit 4, one line
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if plan.strongly_typed else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if caps.parse_from_file:
        ok = parser.parse_from_file(str(onnx_path))
    else:
        ok = parser.parse(Path(onnx_path).read_bytes(), str(onnx_path))
    if not ok:
        raise IsodeployError(parser_error_message(parser, onnx_path, label))
    config = builder.create_builder_config()
    if workspace_bytes:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)
    if caps.optimization_level:
        config.builder_optimization_level = opt_level
    if plan.builder_fp16_flag:
        config.set_flag(trt.BuilderFlag.FP16)
    if plan.disable_tf32:
        config.clear_flag(trt.BuilderFlag.TF32)
    profile = builder.create_optimization_profile()
    for shape in shapes:
        profile.set_shape(shape.name, shape.min, shape.opt, shape.max)
    config.add_optimization_profile(profile)
    if caps.timing_cache:
        _attach_timing_cache(config, cache_file, notes)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise IsodeployError(f"TensorRT could not build an engine from '{onnx_path}': {logger.last_error(since)}")
    cache_blob = config.get_timing_cache().serialize() if caps.timing_cache and cache_file else None
    inputs, outputs = _network_io(network)
    notes.extend(logger.warnings_since(since)[:20])
    return serialized, cache_blob, inputs, outputs


@contextmanager
def _work_dir(out_path: Path) -> Iterator[Path]:
    """A PID-tagged work folder beside the engine (a killed build's is recognised and removed later)."""
    work = make_temp_dir(out_path.parent, f"{out_path.name}.build")
    try:
        yield work
    finally:
        remove_quietly(work)


def check_build_args(out_path: Path, workspace_gb: float | None, opt_level: int) -> None:
    if out_path.suffix != ".plan":
        raise IsodeployError(f"engine path '{out_path}' must end in .plan (verify, bench and Triton recognise engines by it)")
    if workspace_gb is not None and not workspace_gb > 0:
        raise IsodeployError(f"--workspace-gb must be positive, got {workspace_gb}")
    if not 0 <= opt_level <= 5:
        raise IsodeployError(f"--opt-level must be in 0..5 (TensorRT's builder optimization level), got {opt_level}")


def build_engine(onnx_path: Path, out_path: Path, *, precision: str = "fp16", min_batch: int = 1, opt_batch: int | None = None,
                 max_batch: int = 256, workspace_gb: float | None = None, opt_level: int = 3,
                 timing_cache: Path | None = None, on_phase: Phase | None = None) -> EngineMeta:
    """Build ``out_path`` (a ``.plan``) and ``<out_path>.json`` from an ONNX file; return the metadata.

    ``timing_cache`` is a folder holding one cache per TensorRT version and GPU (see ``timing_cache_file``).
    ``opt_batch`` (default: ``max_batch``) is the batch TensorRT tunes kernels for: build it for the batch you
    will run (``bench`` times GPUs at 256 and builds with opt = max = its batch).
    """
    opt_batch = max_batch if opt_batch is None else opt_batch
    onnx_path, out_path = Path(onnx_path), Path(out_path)
    phase = on_phase or (lambda _msg: None)
    check_build_args(out_path, workspace_gb, opt_level)
    check_target(out_path)  # never onto a link, a FIFO or a device
    check_target(meta_path(out_path))
    io = read_onnx_io(onnx_path)
    shapes = profile_shapes(io, min_batch, opt_batch, max_batch)
    plan_precision(precision, io.low_precision, None, onnx_name=f"'{onnx_path}'")  # bad requests fail before TensorRT
    trt = trt_env.require_tensorrt()
    trt_env.require_cuda()
    caps = trt_env.detect_caps(trt)
    plan = plan_precision(precision, io.low_precision, caps, onnx_name=f"'{onnx_path}'")
    gpu = trt_env.gpu_info()
    cache_file = timing_cache_file(timing_cache, caps.version, gpu) if timing_cache else None
    workspace_bytes = int(workspace_gb * (1 << 30)) if workspace_gb else None
    out_path.parent.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    start = time.perf_counter()
    with _work_dir(out_path) as tmp:
        source = onnx_path
        if plan.convert_fp16:
            phase("converting the FP32 ONNX to mixed precision FP16")
            source = convert_to_fp16(onnx_path, Path(tmp) / "model.fp16.onnx")
        phase(f"building a {precision} engine with TensorRT {caps.version} on {gpu.name}")
        serialized, cache_blob, inputs, outputs = _build_serialized(
            trt, caps, source, plan, shapes, workspace_bytes, opt_level, cache_file, notes,
            label=f"'{onnx_path}' (converted to FP16)" if source != onnx_path else None)
        tmp_plan = Path(tmp) / "engine.plan"
        with open(tmp_plan, "wb") as fh:
            fh.write(serialized)
        seconds = time.perf_counter() - start
        meta = EngineMeta(
            plan=out_path.name, tensorrt_version=caps.version, cuda_version=gpu.cuda_version, gpu_name=gpu.name,
            compute_capability=gpu.compute_capability, precision=precision, strongly_typed=plan.strongly_typed,
            fp16_source=plan.fp16_source, profile=shapes, inputs=inputs, outputs=outputs,
            source_onnx=str(onnx_path), source_onnx_sha256=sha256_file(onnx_path), build_seconds=round(seconds, 3),
            builder_optimization_level=opt_level if caps.optimization_level else None, workspace_bytes=workspace_bytes,
            timing_cache=str(cache_file) if cache_file else None, plan_bytes=tmp_plan.stat().st_size,
            plan_sha256=sha256_file(tmp_plan), created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            isodeploy_version=__version__, warnings=notes,
            profile_batches={"min": min_batch, "opt": opt_batch, "max": max_batch},
        )
        phase("writing the engine and its metadata")
        tmp_meta = Path(tmp) / "engine.plan.json"
        tmp_meta.write_text(write_meta_text(meta))
        replace_into(tmp_plan, out_path)  # both temp files sit in the output folder: each rename is atomic
        replace_into(tmp_meta, meta_path(out_path))
    if cache_file is not None and cache_blob is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        _write_atomic(cache_file, cache_blob)
    return meta
