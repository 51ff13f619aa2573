"""Where TensorRT code meets the machine: is TensorRT importable, is there a GPU, what can this TensorRT do.

Capabilities are detected with ``hasattr`` on the imported module, never by parsing version strings:
TensorRT 11 removed ``BuilderFlag.FP16`` and friends, and a point release may add or remove more.
Everything here is tiny and side-effect free so that tests can swap in a narrow double for the module.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import ModuleType

from isodeploy.core.errors import ExitCode, IsodeployError

#: exit codes the pipeline relies on (docs/reliability.md: distinct outcomes for scripts)
EXIT_NO_TENSORRT = ExitCode.NO_TENSORRT
EXIT_NO_CUDA = ExitCode.NO_CUDA

TRT_INSTALL_HINT = 'pip install "isodeploy[trt]" (needs an NVIDIA GPU)'


def tensorrt_available() -> str | None:
    """None when ``import tensorrt`` works, else a one-line reason that says how to get it."""
    try:
        import tensorrt  # noqa: F401
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] != "tensorrt":
            return f"TensorRT could not be loaded (missing module {exc.name}): {TRT_INSTALL_HINT}"
        return f"TensorRT is not installed: {TRT_INSTALL_HINT}"
    except Exception as exc:  # missing libnvinfer, driver mismatch, ...: all mean "not usable here"
        return f"TensorRT could not be loaded ({type(exc).__name__}: {str(exc)[:120]}): {TRT_INSTALL_HINT}"
    return None


def cuda_available() -> str | None:
    """None when torch sees a CUDA GPU, else a one-line reason (TensorRT builds and runs only on a GPU)."""
    import torch

    if torch.version.cuda is None:
        return "CUDA is not available: this torch is a CPU-only build; TensorRT needs an NVIDIA GPU and a CUDA build of torch"
    if not torch.cuda.is_available():
        return "CUDA is not available: no NVIDIA GPU or driver found; TensorRT needs an NVIDIA GPU with a working driver"
    return None


def require_tensorrt() -> ModuleType:
    """Import TensorRT or raise the agreed one-line error with exit code 3."""
    reason = tensorrt_available()
    if reason:
        # An installed TensorRT that fails to load on a machine without a GPU/driver is a CUDA problem.
        no_cuda = None if reason.startswith("TensorRT is not installed") else cuda_available()
        if no_cuda:
            raise IsodeployError(no_cuda, exit_code=EXIT_NO_CUDA)
        raise IsodeployError(reason, exit_code=EXIT_NO_TENSORRT)
    import tensorrt

    caps = detect_caps(tensorrt)
    if not caps.usable:
        raise IsodeployError(
            f"TensorRT {caps.version} is too old: isodeploy needs TensorRT 10 or newer "
            f"(strongly typed networks, named I/O tensors): {TRT_INSTALL_HINT}",
            exit_code=EXIT_NO_TENSORRT,
        )
    return tensorrt


def require_cuda() -> None:
    """Raise the agreed one-line error with exit code 4 when there is no usable GPU."""
    reason = cuda_available()
    if reason:
        raise IsodeployError(reason, exit_code=EXIT_NO_CUDA)


@dataclass(frozen=True)
class TrtCaps:
    """What the imported TensorRT offers, found by ``hasattr``."""

    version: str
    strongly_typed_flag: bool  # NetworkDefinitionCreationFlag.STRONGLY_TYPED (10.x; accepted and ignored in 11.x)
    fp16_builder_flag: bool  # BuilderFlag.FP16: weak typing, removed in 11.x
    tf32_builder_flag: bool
    optimization_level: bool  # IBuilderConfig.builder_optimization_level
    timing_cache: bool  # IBuilderConfig.create_timing_cache / set_timing_cache
    parse_from_file: bool  # OnnxParser.parse_from_file (follows external data)
    named_io: bool  # the name-based I/O API (execute_async_v3, set_tensor_address), 8.5+

    @property
    def usable(self) -> bool:
        return self.strongly_typed_flag and self.named_io

    @property
    def weak_typing(self) -> bool:
        """Whether precision builder flags exist at all (10.x); 11.x networks are always strongly typed."""
        return self.fp16_builder_flag


def detect_caps(trt: ModuleType) -> TrtCaps:
    """Probe a TensorRT module for the features the builder and runner use."""
    flags = getattr(trt, "NetworkDefinitionCreationFlag", None)
    builder_flag = getattr(trt, "BuilderFlag", None)
    config_cls = getattr(trt, "IBuilderConfig", None)
    parser_cls = getattr(trt, "OnnxParser", None)
    context_cls = getattr(trt, "IExecutionContext", None)
    return TrtCaps(
        version=str(getattr(trt, "__version__", "unknown")),
        strongly_typed_flag=flags is not None and hasattr(flags, "STRONGLY_TYPED"),
        fp16_builder_flag=builder_flag is not None and hasattr(builder_flag, "FP16"),
        tf32_builder_flag=builder_flag is not None and hasattr(builder_flag, "TF32"),
        optimization_level=config_cls is not None and hasattr(config_cls, "builder_optimization_level"),
        timing_cache=config_cls is not None and hasattr(config_cls, "create_timing_cache") and hasattr(config_cls, "set_timing_cache"),
        parse_from_file=parser_cls is not None and hasattr(parser_cls, "parse_from_file"),
        named_io=context_cls is not None and hasattr(context_cls, "execute_async_v3") and hasattr(context_cls, "set_tensor_address"),
    )


@dataclass(frozen=True)
class GpuInfo:
    """The GPU an engine is built for or run on; engines are tied to its compute capability."""

    name: str
    compute_capability: str  # "9.0"
    cuda_version: str | None  # CUDA runtime torch was built with

    @property
    def sm(self) -> str:
        return "sm_" + self.compute_capability.replace(".", "")


def gpu_info(device: int | None = None) -> GpuInfo:
    """Describe the current (or given) CUDA device through torch, which the runner uses anyway."""
    import torch

    index = torch.cuda.current_device() if device is None else device
    major, minor = torch.cuda.get_device_capability(index)
    return GpuInfo(name=torch.cuda.get_device_name(index), compute_capability=f"{major}.{minor}", cuda_version=torch.version.cuda)


def slug(text: str) -> str:
    """A file-name-safe lower-case form ("NVIDIA H100 80GB HBM3" → "nvidia-h100-80gb-hbm3")."""
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-") or "unknown"
