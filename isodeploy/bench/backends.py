"""One inference step per runtime (torch, onnxruntime, TensorRT) on fixed, pre-placed inputs.

Each backend returns a :class:`Prepared`: a ``step`` closure that runs one batch, plus what the
timer needs (the CUDA stream the work is enqueued on, when there is one) and an in-process memory
reading where the runtime offers one. Inputs live on the device before timing starts, so the
figures are inference only, not host↔device copies (except where a runtime forces them, noted).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from isodeploy.bench.report import MemoryFigure
from isodeploy.errors import IsodeployError

MB = 2**20
CPU_TIMING = "CPU: time.perf_counter_ns (monotonic) around each step"
CUDA_EVENT_TIMING = "CUDA: events recorded on the inference stream around each step, read after one synchronize"
CUDA_SYNC_TIMING = "CUDA: monotonic clock around a synchronous run (the runtime exposes no stream)"


@dataclass
class Prepared:
    """A runtime ready to run one batch repeatedly."""

    step: Callable[[], Any]
    input_shape: list[int]
    timing: str
    precision: str = "fp32"
    cuda_stream: Any = None  # a torch.cuda.Stream the step enqueues on; None → time with the host clock
    read_memory: Callable[[], MemoryFigure | None] = lambda: None
    notes: list[str] = field(default_factory=list)
    close: Callable[[], None] = lambda: None


# ----------------------------------------------------------------------------- torch


def prepare_torch(model: Any, input_size: tuple[int, ...], *, batch: int, device: str, threads: int | None, precision: str = "fp32") -> Prepared:
    """The model in eval mode under ``inference_mode`` on a resident random input."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    model.eval()
    dtype = {"fp32": torch.float32, "fp16": torch.float16}[precision]
    if precision == "fp16" and device != "cuda":
        raise IsodeployError("--precision fp16 with the torch runtime needs --device cuda (CPU kernels for fp16 are not representative)")
    baseline = 0
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        # What the model adds: allocated before the weights move to the GPU vs the peak while running.
        baseline = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    source = model
    if precision == "fp16":  # a half copy: the caller's fp32 model may still be exported afterwards
        import copy

        model = copy.deepcopy(model)
    model = model.to(device=device, dtype=dtype)
    x = torch.randn(batch, *input_size, device=device, dtype=dtype)

    def step() -> Any:
        with torch.inference_mode():
            return model(x)

    def read_memory() -> MemoryFigure | None:
        if device != "cuda":
            return None
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
        return MemoryFigure(
            peak_mb=(peak - baseline) / MB, baseline_mb=baseline / MB, delta_mb=(peak - baseline) / MB,
            method="torch CUDA: torch.cuda.max_memory_allocated() after reset_peak_memory_stats(), minus what was allocated before the model moved to the GPU (weights + activations, no allocator cache)",
        )

    def close() -> None:
        source.to("cpu")  # fp32 on cuda moved the caller's model: hand it back on the CPU
        if device == "cuda":
            torch.cuda.empty_cache()

    return Prepared(
        step=step, input_shape=[batch, *input_size], precision=precision,
        timing=CUDA_EVENT_TIMING if device == "cuda" else CPU_TIMING,
        cuda_stream=torch.cuda.current_stream() if device == "cuda" else None,
        read_memory=read_memory, close=close,
    )


# ----------------------------------------------------------------------------- onnxruntime


def ort_session(path: Path, *, device: str, threads: int | None) -> Any:
    """An InferenceSession with pinned thread counts: intra-op = ``threads``, inter-op 1, sequential."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    if device == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise IsodeployError("onnxruntime has no CUDAExecutionProvider: pip install onnxruntime-gpu (in place of onnxruntime) for --runtime ort --device cuda")
        providers = ["CUDAExecutionProvider"]
    else:
        providers = ["CPUExecutionProvider"]
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=providers)
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise IsodeployError(f"onnxruntime could not load '{path}' ({type(exc).__name__}: {first})") from exc


ORT_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}


def ort_input(session: Any, batch: int, img_size: int | None) -> tuple[str, np.ndarray]:
    """A random input for the session's only image input: batch from us, C×H×W from the file."""
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise IsodeployError(f"bench expects an ONNX with one image input; this one has {len(inputs)}: {', '.join(i.name for i in inputs)}")
    spec = inputs[0]
    dims = list(spec.shape)
    if len(dims) != 4:
        raise IsodeployError(f"ONNX input '{spec.name}' has shape {dims}; bench expects N×C×H×W")
    if isinstance(dims[0], int) and dims[0] != batch:
        raise IsodeployError(f"ONNX input '{spec.name}' has a fixed batch of {dims[0]}; re-export with a dynamic batch or pass --batch {dims[0]}")
    rest = []
    for i, d in enumerate(dims[1:], start=1):
        if isinstance(d, int) and d > 0:
            rest.append(d)
        elif i > 1 and img_size:
            rest.append(img_size)
        else:
            raise IsodeployError(f"ONNX input '{spec.name}' has a symbolic dim '{d}' at position {i}; pass --img-size")
    dtype = ORT_DTYPES.get(spec.type)
    if dtype is None:
        raise IsodeployError(f"ONNX input '{spec.name}' has type {spec.type}; bench feeds float inputs only")
    x = np.random.default_rng(0).standard_normal((batch, *rest)).astype(dtype)
    return spec.name, x


def prepare_ort(path: Path, *, batch: int, device: str, threads: int | None, img_size: int | None = None) -> Prepared:
    """onnxruntime on CPU (``session.run``) or CUDA (I/O binding, so inputs stay on the GPU)."""
    session = ort_session(path, device=device, threads=threads)
    name, x = ort_input(session, batch, img_size)
    precision = "fp16" if x.dtype == np.float16 else "fp32"
    if device == "cuda":
        import onnxruntime as ort

        binding = session.io_binding()
        binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(x, "cuda", 0))
        for out in session.get_outputs():
            binding.bind_output(out.name, "cuda")

        def step() -> Any:
            session.run_with_iobinding(binding)

        return Prepared(step=step, input_shape=list(x.shape), timing=CUDA_SYNC_TIMING, precision=precision,
                        notes=["onnxruntime CUDA: no peak-memory figure (the runtime does not report one)"])
    feeds = {name: x}
    return Prepared(step=lambda: session.run(None, feeds), input_shape=list(x.shape), timing=CPU_TIMING, precision=precision)


# ----------------------------------------------------------------------------- TensorRT


def require_tensorrt() -> None:
    """TensorRT importable, else exit code 3 (the pipeline relies on that code)."""
    try:
        from isodeploy.export.tensorrt import tensorrt_available
    except ImportError:
        import importlib.util

        def tensorrt_available() -> str | None:
            return None if importlib.util.find_spec("tensorrt") else 'TensorRT is not installed: pip install "isodeploy[trt]" (needs an NVIDIA GPU)'

    reason = tensorrt_available()
    if reason:
        raise IsodeployError(reason, exit_code=3)


def require_cuda() -> None:
    """A CUDA GPU visible to torch, else exit code 4."""
    import torch

    if not torch.cuda.is_available():
        why = "this torch is a CPU-only build" if torch.version.cuda is None else "no NVIDIA GPU or driver found"
        raise IsodeployError(f"CUDA is not available ({why}): --device cuda needs an NVIDIA GPU with a working driver and a CUDA build of torch", exit_code=4)


def plan_input_shape(meta: dict[str, Any], runner: Any) -> list[int] | None:
    """C×H×W of the engine's input, from the runner or its ``.plan.json`` (batch dim dropped)."""
    shape = getattr(runner, "input_shape", None)
    if shape:
        return [int(d) for d in shape][1:]
    for key in ("inputs", "io", "tensors"):
        items = meta.get(key)
        if isinstance(items, list):
            for item in items:
                if isinstance(item, dict) and item.get("mode", "input") in ("input", "INPUT") and "shape" in item:
                    return [int(d) for d in item["shape"][1:]]
    return None


def prepare_trt(plan: Path, *, batch: int, input_size: list[int] | None) -> Prepared:
    """A TensorRT engine through the TensorRT helper's ``TrtRunner``.

    Binds a device-resident input once and times ``execute`` (one ``execute_async_v3``) with CUDA
    events on the runner's stream; falls back to ``run_torch``/``run`` (numpy I/O, said so) for a
    runner without the device-side API.
    """
    import torch

    from isodeploy.bench.artifacts import plan_metadata

    try:
        from isodeploy.export.tensorrt_runner import TrtRunner
    except ImportError as exc:
        raise IsodeployError("the TensorRT runner (isodeploy.export.tensorrt_runner) is not available in this installation") from exc
    runner = TrtRunner(plan)
    meta = plan_metadata(plan)
    shape = input_size or plan_input_shape(meta, runner)
    if not shape:
        raise IsodeployError(f"can't tell the input shape of engine '{plan}' (no {plan}.json with input shapes); pass --img-size")
    name = runner.input_names[0]
    notes: list[str] = []
    x = torch.randn(batch, *shape, device="cuda")
    stream = getattr(runner, "stream", None)
    if not isinstance(stream, torch.cuda.Stream):  # events need a torch stream; else sync + host clock
        stream = None
    if hasattr(runner, "bind") and hasattr(runner, "execute") and stream is not None:
        runner.bind({name: x})  # shapes and addresses once; each step is one execute_async_v3
        step: Callable[[], Any] = runner.execute
        timing = CUDA_EVENT_TIMING
    elif hasattr(runner, "run_torch"):
        step = lambda: runner.run_torch({name: x})
        timing = CUDA_EVENT_TIMING if stream is not None else CUDA_SYNC_TIMING
    else:
        feeds = {name: x.cpu().numpy()}
        step = lambda: runner.run(feeds)
        stream, timing = None, CUDA_SYNC_TIMING + "; includes host-device copies (the runner has no device-side API)"
        notes.append("TensorRT latency includes host-device copies of inputs and outputs")

    def read_memory() -> MemoryFigure | None:
        device_mem = getattr(runner, "device_memory_bytes", None)
        if device_mem is None:
            engine = getattr(runner, "engine", None)
            if engine is None:
                return None
            device_mem = getattr(engine, "device_memory_size_v2", None) or getattr(engine, "device_memory_size", 0) or 0
        weights = plan.stat().st_size
        total = (int(device_mem) + weights) / MB
        return MemoryFigure(
            peak_mb=total, baseline_mb=None, delta_mb=total,
            method="TensorRT: engine.device_memory_size_v2 (activation/scratch memory) + the serialized plan size (an upper bound on the weights)",
        )

    return Prepared(step=step, input_shape=[batch, *shape], timing=timing, precision=str(meta.get("precision", "fp16")), cuda_stream=stream, read_memory=read_memory, notes=notes)
