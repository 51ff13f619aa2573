"""What every runner offers, and the timed step ``bench`` drives."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np

from isodeploy.core.errors import IsodeployError

CPU_TIMING = "CPU: time.perf_counter_ns (monotonic) around each step"
CUDA_EVENT_TIMING = "CUDA: events recorded on the inference stream around each step, read after one synchronize"
CUDA_SYNC_TIMING = "CUDA: monotonic clock around a run that returns when the device is done (the runtime exposes no stream)"

#: exit code when a runner cannot run where it was asked (no CUDA provider, TensorRT/driver mismatch)
EXIT_NO_CUDA = 4


@dataclass
class TimedStep:
    """A runner ready to run one batch repeatedly on a resident input."""

    step: Callable[[], Any]
    input_shape: list[int]
    timing: str
    precision: str = "fp32"
    cuda_stream: Any = None  # a torch.cuda.Stream the step enqueues on; None → host clock
    sync: Callable[[], None] | None = None  # run inside the timed region on the host clock (CUDA without a stream)
    notes: list[str] = field(default_factory=list)
    close: Callable[[], None] = lambda: None


@runtime_checkable
class Runner(Protocol):
    """Named numpy inputs → list of numpy outputs, plus a device-side timed step."""

    name: str
    backend: str  # torch | ort | reference | trt
    device: str  # cpu | cuda
    precision: str  # fp32 | fp16
    input_names: list[str]
    output_names: list[str]

    def activate(self) -> None: ...

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]: ...

    def timed_step(self, batch: int, img_size: int | None = None) -> TimedStep: ...


def first_line(exc: BaseException, limit: int = 240) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__


def image_input_shape(name: str, dims: list[Any], batch: int, img_size: int | None) -> list[int]:
    """N×C×H×W for a random image input: batch from the caller, C×H×W from the file (or ``img_size``)."""
    if len(dims) != 4:
        raise IsodeployError(f"input '{name}' has shape {dims}; bench expects N×C×H×W")
    if isinstance(dims[0], int) and dims[0] > 0 and dims[0] != batch:
        raise IsodeployError(f"input '{name}' has a fixed batch of {dims[0]}; re-export with a dynamic batch or pass --batch {dims[0]}")
    rest = []
    for i, d in enumerate(dims[1:], start=1):
        if isinstance(d, int) and d > 0:
            rest.append(d)
        elif i > 1 and img_size:
            rest.append(img_size)
        else:
            raise IsodeployError(f"input '{name}' has a symbolic dim '{d}' at position {i}; pass --img-size")
    from isodeploy.core.limits import check_batch_fits

    check_batch_fits(batch, rest, "--batch")  # before the input is allocated
    return [batch, *rest]


def single_input(runner: Any) -> str:
    if len(runner.input_names) != 1:
        raise IsodeployError(f"{runner.name} has {len(runner.input_names)} inputs ({', '.join(runner.input_names)}); "
                             "isodeploy runs single-input image models")
    return runner.input_names[0]
