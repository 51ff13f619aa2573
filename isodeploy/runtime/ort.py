"""onnxruntime on CPU or CUDA, one way of making sessions for ``verify`` and ``bench``.

A CUDA request never becomes a CPU timing: onnxruntime falls back to the CPU provider when the CUDA
one cannot start (missing libraries, no driver) and only logs it, so the session's *actual* providers
are checked after it is made.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from isodeploy.core.errors import IsodeployError
from isodeploy.runtime import onnx_info
from isodeploy.runtime.base import CPU_TIMING, CUDA_SYNC_TIMING, EXIT_NO_CUDA, TimedStep, first_line, image_input_shape, single_input
from isodeploy.runtime.dtypes import FLOAT_ORT_TYPES, ort_np_type

PROVIDERS = {"cpu": ["CPUExecutionProvider"], "cuda": ["CUDAExecutionProvider"]}
GPU_HINT = "pip install onnxruntime-gpu (in place of onnxruntime) with a CUDA matching the driver"


def session_options(threads: int | None, optimize: bool = True) -> Any:
    """Pinned threads (intra-op ``threads``, inter-op 1, sequential), full graph optimisation, quiet logs.

    Thread spinning is off: an idle session's pool would otherwise busy-wait and steal the cores of the
    session timed next to it (interleaved rounds keep several sessions alive at once)."""
    import onnxruntime as ort

    ort.set_default_logger_severity(3)  # optimizer notes ("cannot remove node") are not the user's concern
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = int(threads)
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize else ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return opts


def make_session(path: Path | str, *, device: str = "cpu", threads: int | None = None, optimize: bool = True) -> Any:
    """An InferenceSession on ``device``; CUDA asked but not running → exit 4, never a CPU session."""
    import onnxruntime as ort

    if device not in PROVIDERS:
        raise IsodeployError(f"unknown device '{device}' for onnxruntime: use cpu or cuda")
    if device == "cuda" and "CUDAExecutionProvider" not in ort.get_available_providers():
        raise IsodeployError(f"onnxruntime {ort.__version__} has no CUDAExecutionProvider: {GPU_HINT}", exit_code=EXIT_NO_CUDA)
    try:
        session = ort.InferenceSession(str(path), sess_options=session_options(threads, optimize), providers=PROVIDERS[device])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
        raise IsodeployError(f"onnxruntime cannot load '{path}': {first_line(exc)}") from exc
    actual = list(session.get_providers())
    if device == "cuda" and "CUDAExecutionProvider" not in actual:
        raise IsodeployError(f"onnxruntime could not start its CUDA provider for '{Path(path).name}' (the session runs on "
                             f"{', '.join(actual) or 'nothing'}): refusing to time a CPU run as cuda; {GPU_HINT}",
                             exit_code=EXIT_NO_CUDA)
    return session


class OrtRunner:
    """An ONNX file on onnxruntime; feeds are cast to the model's input types."""

    backend = "ort"

    def __init__(self, path: Path | str, threads: int | None = None, *, device: str = "cpu", optimize: bool = True,
                 providers: list[str] | None = None) -> None:
        self.path = Path(path)
        if providers and "CUDAExecutionProvider" in providers:
            device = "cuda"
        self.device = device
        self.threads = threads
        self.optimize = optimize
        model = onnx_info.load_header(self.path)  # one clear line for missing/foreign/truncated files
        self.metadata = onnx_info.metadata(model)
        self.precision = onnx_info.precision_of(model, self.metadata)
        self.name = f"onnxruntime:{self.path.name}" + ("@cuda" if device == "cuda" else "")
        declared = {v.name: v for v in onnx_info.declared_inputs(model)}
        from isodeploy.core.onnx_io import tensor_shape

        self._declared = {n: tensor_shape(v) for n, v in declared.items()}
        self.session: Any = None
        self.activate()

    def activate(self) -> None:
        if self.session is not None:
            return
        self.session = make_session(self.path, device=self.device, threads=self.threads, optimize=self.optimize)
        inputs = self.session.get_inputs()
        self.input_names = [i.name for i in inputs]
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.input_types = {i.name: i.type for i in inputs}
        self._types = {i.name: ort_np_type(i.type) for i in inputs}
        self.input_shapes = {i.name: self._declared.get(i.name, list(i.shape)) for i in inputs}
        self.providers = list(self.session.get_providers())

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        cast = {k: np.ascontiguousarray(v, dtype=self._types.get(k, v.dtype)) for k, v in feeds.items()}
        try:
            outs = self.session.run(self.output_names, cast)
        except Exception as exc:
            shapes = ", ".join(f"{k} {list(v.shape)}" for k, v in feeds.items())
            raise IsodeployError(f"onnxruntime failed on '{self.path.name}' with inputs {shapes}: {first_line(exc)}") from exc
        return [np.asarray(o) for o in outs]

    def random_input(self, batch: int, img_size: int | None = None) -> tuple[str, np.ndarray]:
        name = single_input(self)
        if self.input_types[name] not in FLOAT_ORT_TYPES:
            raise IsodeployError(f"ONNX input '{name}' has type {self.input_types[name]}; bench feeds float inputs only")
        shape = image_input_shape(name, list(self.input_shapes[name]), batch, img_size)
        return name, np.random.default_rng(0).standard_normal(shape).astype(self._types[name])

    def timed_step(self, batch: int, img_size: int | None = None) -> TimedStep:
        """CPU: ``session.run``; CUDA: I/O binding, so input and outputs stay on the GPU."""
        name, x = self.random_input(batch, img_size)
        if self.device == "cuda":
            import onnxruntime as ort

            binding = self.session.io_binding()
            binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(x, "cuda", 0))
            for out in self.session.get_outputs():
                binding.bind_output(out.name, "cuda")
            session = self.session
            return TimedStep(step=lambda: session.run_with_iobinding(binding), input_shape=list(x.shape),
                             timing=CUDA_SYNC_TIMING, precision=self.precision)
        feeds = {name: x}
        session = self.session
        return TimedStep(step=lambda: session.run(None, feeds), input_shape=list(x.shape), timing=CPU_TIMING, precision=self.precision)
