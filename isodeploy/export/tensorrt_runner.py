"""Run a TensorRT engine with torch CUDA tensors and a torch CUDA stream (no pycuda).

``TrtRunner`` implements the export helper's ``Runner`` protocol (``name``, ``input_names``,
``output_names``, ``run(feeds) -> list[np.ndarray]``) for ``verify``, and exposes the device-side steps
(``bind`` then ``execute`` on ``stream``) for ``bench`` to time with CUDA events. Before deserializing,
the plan's metadata is checked against the running TensorRT and GPU, so a foreign engine is one clear
error line, not a crash inside TensorRT.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

from isodeploy.errors import IsodeployError
from isodeploy.export import trt_env
from isodeploy.export.trt_meta import EngineMeta, TRT_DTYPES, check_engine_env, read_engine_meta

_TORCH_DTYPES = {"float32": "float32", "float16": "float16", "bfloat16": "bfloat16", "int8": "int8",
                 "int32": "int32", "int64": "int64", "bool": "bool", "uint8": "uint8"}


def _torch_dtype(trt_dtype: Any):
    import torch

    name = TRT_DTYPES.get(getattr(trt_dtype, "name", ""), "")
    if name not in _TORCH_DTYPES:
        raise IsodeployError(f"engine I/O type {trt_dtype} has no torch equivalent; isodeploy runs float/int engines only")
    return getattr(torch, _TORCH_DTYPES[name])


class TrtRunner:
    """One engine, one execution context, one CUDA stream; I/O as torch CUDA tensors."""

    name = "tensorrt"

    def __init__(self, path: Path | str, threads: int | None = None, *, device: int | None = None) -> None:
        # ``threads`` is accepted for signature parity with OrtRunner; TensorRT does not use CPU threads.
        self.path = Path(path)
        if not self.path.is_file():
            raise IsodeployError(f"engine file '{self.path}' does not exist")
        trt = trt_env.require_tensorrt()  # exit codes 3 and 4 come first: scripts rely on them
        trt_env.require_cuda()
        self.meta: EngineMeta = read_engine_meta(self.path)
        import torch

        from isodeploy.export.tensorrt import make_logger

        self.device = torch.device("cuda", torch.cuda.current_device() if device is None else device)
        gpu = trt_env.gpu_info(self.device.index)
        self.warnings = check_engine_env(self.meta, str(trt.__version__), gpu, plan_name=f"'{self.path}'")
        for line in self.warnings:
            print(f"warning: {line}", file=sys.stderr)
        data = self.path.read_bytes()
        if len(data) != self.meta.plan_bytes:
            raise IsodeployError(f"'{self.path}' is {len(data)} bytes but its metadata says {self.meta.plan_bytes}: "
                                 f"the plan and its .json do not belong together; rebuild with 'isodeploy build-engine'")
        self._logger = make_logger(trt)  # must outlive the runtime and engine
        with torch.cuda.device(self.device):
            self._runtime = trt.Runtime(self._logger)
            self.engine = self._runtime.deserialize_cuda_engine(data)
            if self.engine is None:
                last = self._logger.errors[-1] if self._logger.errors else "no error message"
                raise IsodeployError(f"TensorRT {trt.__version__} could not load '{self.path}': {last}")
            self.context = self.engine.create_execution_context()
            if self.context is None:
                raise IsodeployError(f"could not create an execution context for '{self.path}' (out of GPU memory?)")
            self.stream = torch.cuda.Stream(self.device)
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        is_input = {n: self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
        self.input_names = [n for n in names if is_input[n]]
        self.output_names = [n for n in names if not is_input[n]]
        self._dtypes = {n: _torch_dtype(self.engine.get_tensor_dtype(n)) for n in names}
        self._shapes = {n: [int(d) for d in self.engine.get_tensor_shape(n)] for n in names}
        self._profile = {n: [[int(d) for d in s] for s in self.engine.get_tensor_profile_shape(n, 0)]
                         for n in self.input_names}
        self._bound: list[Any] = []

    @property
    def device_memory_bytes(self) -> int:
        """Activation/scratch memory an execution context takes (weights are the plan size on top)."""
        if hasattr(self.engine, "device_memory_size_v2"):
            return int(self.engine.device_memory_size_v2)
        return int(self.engine.device_memory_size)

    def _check_input(self, name: str, shape: tuple[int, ...]) -> None:
        expected = self._shapes[name]
        lo, _, hi = self._profile[name]
        if len(shape) != len(expected) or any(e not in (-1, s) for e, s in zip(expected, shape)):
            raise IsodeployError(f"input '{name}' has shape {list(shape)} but '{self.path}' takes {expected} (-1: batch)")
        if not all(a <= s <= b for a, s, b in zip(lo, shape, hi)):
            raise IsodeployError(f"input '{name}' shape {list(shape)} is outside the engine's profile {lo}..{hi}: "
                                 f"rebuild with 'isodeploy build-engine --max-batch {shape[0]}'")

    def bind(self, feeds: dict[str, Any]) -> list[Any]:
        """Set shapes and addresses for the inputs (copied to the GPU on ``stream`` if needed); bind new outputs.

        For timing, call once, then ``execute()`` repeatedly. Inputs already on the GPU are used in place;
        ``stream`` waits for the caller's current stream first, so inputs it produced are ready.
        """
        import torch

        missing = [n for n in self.input_names if n not in feeds]
        if missing:
            raise IsodeployError(f"missing engine input(s) {missing}; '{self.path}' takes {self.input_names}")
        inputs = {}
        self.stream.wait_stream(torch.cuda.current_stream(self.device))  # inputs made on the caller's stream
        with torch.cuda.stream(self.stream):
            for name in self.input_names:
                tensor = feeds[name]
                self._check_input(name, tuple(tensor.shape))
                tensor = tensor.to(self.device, self._dtypes[name]).contiguous()
                inputs[name] = tensor
                if not self.context.set_input_shape(name, tuple(int(d) for d in tensor.shape)):
                    raise IsodeployError(f"TensorRT rejected shape {list(tensor.shape)} for input '{name}'")
                self.context.set_tensor_address(name, tensor.data_ptr())
            outputs = []
            for name in self.output_names:
                shape = tuple(int(d) for d in self.context.get_tensor_shape(name))
                out = torch.empty(shape, dtype=self._dtypes[name], device=self.device)
                self.context.set_tensor_address(name, out.data_ptr())
                outputs.append(out)
        self._bound = [inputs, outputs]  # keep the memory alive while TensorRT holds the addresses
        return outputs

    def execute(self) -> None:
        """Enqueue one inference on ``self.stream`` with the last ``bind``; does not synchronize."""
        if not self._bound:
            raise IsodeployError("TrtRunner.execute() called before bind()")
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            last = self._logger.errors[-1] if self._logger.errors else "no error message"
            raise IsodeployError(f"TensorRT failed to run '{self.path}': {last}")

    def run_torch(self, feeds: dict[str, Any]) -> list[Any]:
        """Inputs as torch tensors (any device), outputs as CUDA tensors ready on the caller's stream."""
        import torch

        caller = torch.cuda.current_stream(self.device)
        self.stream.wait_stream(caller)
        outputs = self.bind(feeds)
        self.execute()
        caller.wait_stream(self.stream)
        for out in outputs:  # the caller frees them on its stream: keep the allocator from reusing them early
            out.record_stream(caller)
        return outputs

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """The Runner protocol: numpy in, numpy out (host copies included)."""
        import torch

        tensors = {name: torch.from_numpy(np.ascontiguousarray(arr)) for name, arr in feeds.items()}
        outputs = self.run_torch(tensors)
        self.stream.synchronize()
        return [o.float().cpu().numpy() if o.dtype == torch.bfloat16 else o.cpu().numpy() for o in outputs]
