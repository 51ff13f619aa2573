"""A PyTorch module: eager on CPU or CUDA, FP32 or FP16 (CUDA only), optionally ``torch.compile``d.

The reference side of ``verify`` (true FP32: TF32 off on CUDA) and the torch rows of ``bench``.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

from isodeploy.core.errors import ExitCode, IsodeployError
from isodeploy.runtime.base import CPU_TIMING, CUDA_EVENT_TIMING, TimedStep
from isodeploy.runtime.dtypes import torch_dtype


def require_cuda() -> None:
    """A CUDA GPU visible to torch, else exit code 4."""
    import torch

    if not torch.cuda.is_available():
        why = "this torch is a CPU-only build" if torch.version.cuda is None else "no NVIDIA GPU or driver found"
        raise IsodeployError(f"CUDA is not available ({why}): --device cuda needs an NVIDIA GPU with a working driver and a CUDA build of torch", exit_code=ExitCode.NO_CUDA)


class TorchRunner:
    backend = "torch"

    def __init__(self, module: Any, device: str = "cpu", *, name: str = "torch", precision: str = "fp32",
                 compile: bool = False, threads: int | None = None, input_size: tuple[int, ...] | None = None,
                 input_names: list[str] | None = None, output_names: list[str] | None = None) -> None:
        if precision not in ("fp32", "fp16"):
            raise IsodeployError(f"unknown precision '{precision}': use fp32 or fp16")
        if precision == "fp16" and device != "cuda":
            raise IsodeployError("fp16 with the torch runtime needs --device cuda (CPU kernels for fp16 are not representative)")
        if device == "cuda":
            require_cuda()
        self.source = module
        self.device = device
        self.precision = precision
        self.compiled = compile
        self.threads = threads
        self.name = name + (f"@{device}" if device != "cpu" else "") + ("+fp16" if precision == "fp16" else "") + ("+compile" if compile else "")
        self.input_names = list(input_names or ["input"])
        self.output_names = list(output_names or ["logits"])
        self.input_size = tuple(input_size) if input_size else None
        self.input_shapes = {self.input_names[0]: ["batch", *self.input_size]} if self.input_size else {}
        self.module: Any = None
        self.activate()

    def activate(self) -> None:
        """Move (FP32) or copy (FP16: the caller may still export its FP32 model) the module to the device."""
        if self.module is not None:
            return
        import torch

        if self.threads:
            torch.set_num_threads(int(self.threads))
        model = self.source.eval()
        if self.precision == "fp16":
            import copy

            model = copy.deepcopy(model)
        model = model.to(device=self.device, dtype=torch_dtype(self.precision))
        self._eager = model
        self.module = torch.compile(model) if self.compiled else model

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        import torch

        dtype = torch_dtype(self.precision)
        args = [torch.from_numpy(np.ascontiguousarray(feeds[n], dtype=np.float32)).to(self.device, dtype) for n in self.input_names]
        with torch.no_grad(), strict_fp32(self.device if self.precision == "fp32" else "cpu"):
            out = self.module(*args)
        outs = list(out) if isinstance(out, (tuple, list)) else [out]
        return [o.detach().float().cpu().numpy() for o in outs]

    def timed_step(self, batch: int, img_size: int | None = None) -> TimedStep:
        import torch

        size = self.input_size
        if size is None:
            raise IsodeployError(f"{self.name}: the input size is unknown; build the runner with input_size")
        if self.device != "cuda":  # host memory; a GPU's own limit is reported by CUDA in one line
            from isodeploy.core.limits import check_batch_fits

            check_batch_fits(batch, size, "--batch")
        x = torch.randn(batch, *size, device=self.device, dtype=torch_dtype(self.precision))
        module = self.module

        def step() -> Any:
            with torch.inference_mode():
                return module(x)

        cuda = self.device == "cuda"
        notes = ["torch.compile: compiled during the warm-up steps (default mode)"] if self.compiled else []
        return TimedStep(step=step, input_shape=[batch, *size], precision=self.precision, notes=notes,
                         timing=CUDA_EVENT_TIMING if cuda else CPU_TIMING,
                         cuda_stream=torch.cuda.current_stream() if cuda else None, close=self.close)

    def close(self) -> None:
        """Hand an FP32 model that was moved to the GPU back to the caller on the CPU."""
        if self.device == "cuda":
            import torch

            self.source.to("cpu")
            torch.cuda.empty_cache()


@contextlib.contextmanager
def strict_fp32(device: Any):
    """A reference must be true FP32: on CUDA, switch TF32 off (cuDNN convolutions use it by default)."""
    import torch

    if str(getattr(device, "type", device)) != "cuda":
        yield
        return
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    old = (matmul.allow_tf32, cudnn.allow_tf32)
    matmul.allow_tf32 = cudnn.allow_tf32 = False
    try:
        yield
    finally:
        matmul.allow_tf32, cudnn.allow_tf32 = old
