"""Refuse work that cannot fit in memory *before* allocating it.

A batch of images costs ``batch × C × H × W × bytes`` for the input alone, and a forward pass holds
several activations of similar size at once (a ViT's MLP hidden is 4× its tokens, attention adds
more). ``ACTIVATION_FACTOR`` input-sized buffers is a rough estimate of that peak: far too large a
batch is refused in one line instead of growing to tens of GB until the kernel kills the process.
``ISODEPLOY_MEMORY_LIMIT_MB`` replaces the detected available memory (a larger machine share, tests).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

from isodeploy.core.errors import IsodeployError

ACTIVATION_FACTOR = 16  # input-sized buffers a forward pass holds at its peak (rough; measured on ViTs/CNNs)


def available_memory_bytes() -> int | None:
    """Memory this process may still use: MemAvailable, capped by a cgroup (container) limit."""
    avail = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                avail = int(line.split()[1]) * 1024
                break
    except (OSError, ValueError, IndexError):
        pass
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            limit = Path(limit_file).read_text().strip()
            if limit != "max" and int(limit) < 1 << 60:
                room = int(limit) - int(Path(usage_file).read_text().strip())
                avail = room if avail is None else min(avail, room)
            break
        except (OSError, ValueError):
            continue
    override = os.environ.get("ISODEPLOY_MEMORY_LIMIT_MB")  # tests and shared machines
    if override:
        try:
            limit = float(override)
        except ValueError:
            limit = float("nan")
        if not math.isfinite(limit) or limit <= 0:  # a typo must not silently switch the check off
            raise IsodeployError(f"ISODEPLOY_MEMORY_LIMIT_MB must be a number of MiB > 0; got '{override[:40]}' (unset it to "
                                 "use the detected available memory)")
        avail = int(limit * 2**20)
    return avail


def batch_bytes(batch: int, sample_shape: Sequence[int], dtype_bytes: int = 4) -> int:
    return int(batch) * math.prod(int(d) for d in sample_shape) * dtype_bytes


def check_batch_fits(batch: int, sample_shape: Sequence[int], option: str, dtype_bytes: int = 4,
                     factor: int = ACTIVATION_FACTOR) -> None:
    """One line, before any allocation, when ``batch`` samples of ``sample_shape`` cannot fit."""
    avail = available_memory_bytes()
    if avail is None or batch < 1:
        return
    need = factor * batch_bytes(batch, sample_shape, dtype_bytes)
    if need > avail:
        per_sample = factor * batch_bytes(1, sample_shape, dtype_bytes)
        fits = max(1, avail // max(per_sample, 1))
        raise IsodeployError(f"{option} {batch} needs at least {need / 2**30:.1f} GiB for {batch} inputs of "
                             f"{'×'.join(map(str, sample_shape))} and their activations; {avail / 2**30:.1f} GiB is available: "
                             f"use at most about {fits}")


#: copies of the parameters a rebuild holds at once (the model, and the state dict loaded into it)
PARAM_COPIES = 2


def check_input_fits(batch: int, sample_shape: Sequence[int], what: str) -> None:
    """One line, before a forward pass, when ``batch`` inputs of a size read from a file cannot fit."""
    avail = available_memory_bytes()
    need = ACTIVATION_FACTOR * batch_bytes(batch, sample_shape)
    if avail is not None and need > avail:
        raise IsodeployError(f"{what}: a forward pass at input {'×'.join(map(str, sample_shape))} needs at least "
                             f"{need / 2**30:.1f} GiB; {avail / 2**30:.1f} GiB is available: use a smaller input size")


def check_build_fits(build, label: str) -> None:
    """Build the model on PyTorch's ``meta`` device (no memory, no init) and refuse, in one line, one
    whose parameters cannot fit, before the real build allocates them. A builder that cannot run on
    ``meta`` is not estimated (the bounds on its sizes still hold)."""
    import torch

    avail = available_memory_bytes()
    if avail is None:
        return
    try:
        with torch.device("meta"):
            model = build()
        tensors = list(model.parameters()) + list(model.buffers())
        count = sum(t.numel() for t in tensors)
        need = PARAM_COPIES * sum(t.numel() * t.element_size() for t in tensors)
    except Exception:  # some builders compute with tensors in __init__; meta cannot
        return
    if need > avail:
        raise IsodeployError(f"'{label}' has {count / 1e6:.0f} M parameters and needs at least {need / 2**30:.1f} GiB to build "
                             f"and load; {avail / 2**30:.1f} GiB is available (are its sizes, e.g. num_classes, what you meant?)")
