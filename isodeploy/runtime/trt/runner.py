"""TensorRT (10 and 11) through torch CUDA tensors and a torch CUDA stream (no pycuda).

* One process-wide logger: TensorRT keeps a single logger pointer for the whole process, so a second
  logger object given to another builder or runtime is at best ignored and at worst a dangling pointer.
* A package built for another CUDA major version than the driver's fails in ``trt.Builder()`` /
  ``trt.Runtime()`` with a pybind ``TypeError`` (the C++ constructor returned null): that is exit 4 with
  one line, not a traceback.
* Before deserializing, the plan's metadata is checked against the running TensorRT and GPU.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from isodeploy.core.errors import IsodeployError
from isodeploy.runtime.base import CUDA_EVENT_TIMING, EXIT_NO_CUDA, TimedStep, single_input
from isodeploy.runtime.dtypes import torch_dtype, trt_dtype_name

_LOCK = threading.Lock()
_SHARED: tuple[Any, Any] | None = None  # (tensorrt module, its one logger)


def shared_logger(trt: ModuleType) -> Any:
    """The process's one TensorRT logger; it keeps errors and warnings so failures fit in one line."""
    global _SHARED
    with _LOCK:
        if _SHARED is not None and _SHARED[0] is trt:
            return _SHARED[1]

        class CollectingLogger(trt.ILogger):
            def __init__(self) -> None:
                trt.ILogger.__init__(self)
                self.errors: list[str] = []
                self.warnings: list[str] = []

            def log(self, severity, msg) -> None:  # called by TensorRT, possibly from its threads
                level = int(severity)
                if level <= int(trt.ILogger.ERROR):
                    self.errors.append(" ".join(str(msg).split()))
                elif level == int(trt.ILogger.WARNING):
                    self.warnings.append(" ".join(str(msg).split()))

            def mark(self) -> tuple[int, int]:
                return len(self.errors), len(self.warnings)

            def last_error(self, since: tuple[int, int] = (0, 0)) -> str:
                new = self.errors[since[0]:]
                return new[-1] if new else "no error message"

            def warnings_since(self, since: tuple[int, int]) -> list[str]:
                return self.warnings[since[1]:]

        logger = CollectingLogger()
        _SHARED = (trt, logger)  # kept for the life of the process: TensorRT holds the pointer
        return logger


def _mismatch(trt: ModuleType, what: str, exc: BaseException) -> IsodeployError:
    version = getattr(trt, "__version__", "?")
    return IsodeployError(
        f"TensorRT {version} could not create its {what} ({type(exc).__name__}): the installed package was most likely built "
        f"for another CUDA major version than this driver supports; install the TensorRT wheel for the driver's CUDA "
        f"(e.g. tensorrt-cu12 or tensorrt-cu13, see nvidia-smi)", exit_code=EXIT_NO_CUDA)


def _start(trt: ModuleType, factory: Any, what: str) -> Any:
    """``factory(logger)`` on the shared logger, or exit 4 when TensorRT cannot start on this driver."""
    try:
        made = factory(shared_logger(trt))
    except TypeError as exc:
        raise _mismatch(trt, what, exc) from exc
    if made is None:
        raise _mismatch(trt, what, RuntimeError(f"null {what}"))
    return made


def new_builder(trt: ModuleType) -> Any:
    """``trt.Builder`` on the shared logger, or exit 4 when TensorRT cannot start on this driver."""
    return _start(trt, trt.Builder, "builder")


def new_runtime(trt: ModuleType) -> Any:
    """``trt.Runtime`` on the shared logger, or exit 4 when TensorRT cannot start on this driver."""
    return _start(trt, trt.Runtime, "runtime")


def engine_device_memory(engine: Any) -> int:
    """Activation/scratch memory of one context: ``device_memory_size_v2`` (10.x, 11.x) or the older name."""
    if hasattr(engine, "device_memory_size_v2"):
        return int(engine.device_memory_size_v2)
    return int(getattr(engine, "device_memory_size", 0) or 0)


class TrtRunner:
    """One engine, one execution context, one CUDA stream; I/O as torch CUDA tensors."""

    backend = "trt"

    def __init__(self, path: Path | str, threads: int | None = None, *, device: Any = None) -> None:
        # ``threads`` is accepted for signature parity with OrtRunner; TensorRT does not use CPU threads.
        from isodeploy.runtime.trt import env as trt_env
        from isodeploy.runtime.trt.meta import check_engine_env, read_engine_meta

        self.path = Path(path)
        self.name = "tensorrt"
        if not self.path.is_file():
            raise IsodeployError(f"engine file '{self.path}' does not exist")
        trt = trt_env.require_tensorrt()  # exit codes 3 and 4 come first: scripts rely on them
        trt_env.require_cuda()
        self.meta = read_engine_meta(self.path)
        self.precision = "fp32" if self.meta.precision == "fp32" else "fp16"
        self.metadata: dict[str, Any] = {}
        import torch

        index = device if isinstance(device, int) else (torch.cuda.current_device() if device in (None, "cuda") else int(device))
        self.torch_device = torch.device("cuda", index)
        self.device = "cuda"
        gpu = trt_env.gpu_info(index)
        self.warnings = check_engine_env(self.meta, str(trt.__version__), gpu, plan_name=f"'{self.path}'")
        for line in self.warnings:
            print(f"warning: {line}", file=sys.stderr)
        data = self.path.read_bytes()
        if len(data) != self.meta.plan_bytes:
            raise IsodeployError(f"'{self.path}' is {len(data)} bytes but its metadata says {self.meta.plan_bytes}: "
                                 f"the plan and its .json do not belong together; rebuild with 'isodeploy build-engine'")
        self._trt = trt
        self._logger = shared_logger(trt)
        since = self._logger.mark()
        with torch.cuda.device(self.torch_device):
            self._runtime = new_runtime(trt)
            self.engine = self._runtime.deserialize_cuda_engine(data)
            if self.engine is None:
                raise IsodeployError(f"TensorRT {trt.__version__} could not load '{self.path}': {self._logger.last_error(since)}")
            self.context = self.engine.create_execution_context()
            if self.context is None:
                raise IsodeployError(f"could not create an execution context for '{self.path}' (out of GPU memory?)")
            self.stream = torch.cuda.Stream(self.torch_device)
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        is_input = {n: self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
        self.input_names = [n for n in names if is_input[n]]
        self.output_names = [n for n in names if not is_input[n]]
        self._dtypes = {n: torch_dtype(trt_dtype_name(self.engine.get_tensor_dtype(n))) for n in names}
        self._shapes = {n: [int(d) for d in self.engine.get_tensor_shape(n)] for n in names}
        self.input_shapes = {n: self._shapes[n] for n in self.input_names}
        self._profile = {n: [[int(d) for d in s] for s in self.engine.get_tensor_profile_shape(n, 0)]
                         for n in self.input_names}
        self._bound: list[Any] = []

    def activate(self) -> None:
        """The engine and context are made in ``__init__`` (the metadata checks must come first)."""

    @property
    def device_memory_bytes(self) -> int:
        return engine_device_memory(self.engine)

    @property
    def input_shape(self) -> list[int]:
        return self._shapes[self.input_names[0]]

    def _check_input(self, name: str, shape: tuple[int, ...]) -> None:
        expected = self._shapes[name]
        lo, _, hi = self._profile[name]
        if len(shape) != len(expected) or any(e not in (-1, s) for e, s in zip(expected, shape)):
            raise IsodeployError(f"input '{name}' has shape {list(shape)} but '{self.path}' takes {expected} (-1: batch)")
        if not all(a <= s <= b for a, s, b in zip(lo, shape, hi)):
            raise IsodeployError(f"input '{name}' shape {list(shape)} is outside the engine's profile {lo}..{hi}: "
                                 f"rebuild with 'isodeploy build-engine --opt-batch {shape[0]} --max-batch {shape[0]}'")

    def bind(self, feeds: dict[str, Any]) -> list[Any]:
        """Set shapes and addresses for the inputs (copied to the GPU on ``stream`` if needed); bind new outputs."""
        import torch

        missing = [n for n in self.input_names if n not in feeds]
        if missing:
            raise IsodeployError(f"missing engine input(s) {missing}; '{self.path}' takes {self.input_names}")
        inputs = {}
        self.stream.wait_stream(torch.cuda.current_stream(self.torch_device))  # inputs made on the caller's stream
        with torch.cuda.stream(self.stream):
            for name in self.input_names:
                tensor = feeds[name]
                self._check_input(name, tuple(tensor.shape))
                tensor = tensor.to(self.torch_device, self._dtypes[name]).contiguous()
                inputs[name] = tensor
                if not self.context.set_input_shape(name, tuple(int(d) for d in tensor.shape)):
                    raise IsodeployError(f"TensorRT rejected shape {list(tensor.shape)} for input '{name}'")
                self.context.set_tensor_address(name, tensor.data_ptr())
            outputs = []
            for name in self.output_names:
                shape = tuple(int(d) for d in self.context.get_tensor_shape(name))
                out = torch.empty(shape, dtype=self._dtypes[name], device=self.torch_device)
                self.context.set_tensor_address(name, out.data_ptr())
                outputs.append(out)
        self._bound = [inputs, outputs]  # keep the memory alive while TensorRT holds the addresses
        return outputs

    def execute(self) -> None:
        """Enqueue one inference on ``self.stream`` with the last ``bind``; does not synchronize."""
        if not self._bound:
            raise IsodeployError("TrtRunner.execute() called before bind()")
        since = self._logger.mark()
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise IsodeployError(f"TensorRT failed to run '{self.path}': {self._logger.last_error(since)}")

    def run_torch(self, feeds: dict[str, Any]) -> list[Any]:
        """Inputs as torch tensors (any device), outputs as CUDA tensors ready on the caller's stream."""
        import torch

        caller = torch.cuda.current_stream(self.torch_device)
        self.stream.wait_stream(caller)
        outputs = self.bind(feeds)
        self.execute()
        caller.wait_stream(self.stream)
        for out in outputs:  # the caller frees them on its stream: keep the allocator from reusing them early
            out.record_stream(caller)
        return outputs

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """numpy in, numpy out (host copies included): what ``verify`` compares."""
        import torch

        tensors = {name: torch.from_numpy(np.ascontiguousarray(arr)) for name, arr in feeds.items()}
        outputs = self.run_torch(tensors)
        self.stream.synchronize()
        return [o.float().cpu().numpy() if o.dtype == torch.bfloat16 else o.cpu().numpy() for o in outputs]

    def timed_step(self, batch: int, img_size: int | None = None) -> TimedStep:
        """Bind a device-resident input once; each step is one ``execute_async_v3`` on the runner's stream."""
        import torch

        name = single_input(self)
        shape = [batch, *[d if d > 0 else (img_size or d) for d in self._shapes[name][1:]]]
        if any(d <= 0 for d in shape):
            raise IsodeployError(f"engine '{self.path}' has a dynamic image size; pass --img-size")
        notes = []
        opt = self.meta.opt_batch
        if opt != batch:
            notes.append(f"{self.path.name}: timed at batch {batch} but its profile was tuned for batch {opt} "
                         f"(TensorRT picks kernels for the opt shape); rebuild with --opt-batch {batch}")
            print(f"warning: {notes[-1]}", file=sys.stderr)
        self.bind({name: torch.randn(*shape, device=self.torch_device)})
        return TimedStep(step=self.execute, input_shape=shape, timing=CUDA_EVENT_TIMING, precision=self.precision,
                         cuda_stream=self.stream, notes=notes)
