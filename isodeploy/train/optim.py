"""AdamW with per-step linear warm-up then cosine decay, and mixed precision settings.

The schedule is a function of the global step alone and its state is that one counter, so a resumed
run sets exactly the learning rates the uninterrupted run would have.
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, ContextManager

import torch
from torch import nn

from isodeploy.core.errors import IsodeployError


def make_optimizer(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """AdamW; biases, norms and the model's ``no_weight_decay()`` names (pos-embed, cls token) get no decay."""
    from timm.optim import param_groups_weight_decay

    skip = model.no_weight_decay() if hasattr(model, "no_weight_decay") else ()
    groups = param_groups_weight_decay(model, weight_decay, no_weight_decay_list=skip)
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999))


@dataclass
class WarmupCosine:
    """Learning rate per optimizer step: linear warm-up to ``lr``, cosine down to ``min_lr`` at the last step."""

    optimizer: torch.optim.Optimizer
    lr: float
    min_lr: float
    warmup_steps: int
    total_steps: int
    step_count: int = 0

    def __post_init__(self) -> None:
        self.warmup_steps = min(self.warmup_steps, max(self.total_steps - 1, 0))
        self._apply()

    def rate(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        span = max(self.total_steps - self.warmup_steps - 1, 1)
        progress = min((step - self.warmup_steps) / span, 1.0)
        return self.min_lr + (self.lr - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))

    def _apply(self) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = self.rate(self.step_count)

    def step(self) -> None:
        self.step_count += 1
        self._apply()

    @property
    def current(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def state_dict(self) -> dict[str, Any]:
        return {"step_count": self.step_count, "warmup_steps": self.warmup_steps, "total_steps": self.total_steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("total_steps") != self.total_steps:
            raise IsodeployError(f"the checkpoint's schedule has {state.get('total_steps')} steps, this run "
                                 f"{self.total_steps}; the data set or world size changed? resume with the same data and ranks")
        self.step_count = int(state["step_count"])
        self._apply()


@dataclass
class Precision:
    """What ``--amp`` resolved to on this device; fp16 needs a loss scaler, bf16 and fp32 don't."""

    dtype: torch.dtype | None  # None: full precision
    device_type: str

    @property
    def name(self) -> str:
        return {torch.float16: "fp16", torch.bfloat16: "bf16"}.get(self.dtype, "fp32")

    def autocast(self) -> ContextManager:
        if self.dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=self.dtype)

    def scaler(self) -> torch.amp.GradScaler:
        return torch.amp.GradScaler(self.device_type, enabled=self.dtype == torch.float16)


def resolve_precision(mode: str, device: torch.device) -> Precision:
    """``auto``: bf16 on GPUs that support it, else fp16 on CUDA; full precision on CPU."""
    if device.type != "cuda":
        if mode in ("fp16", "bf16"):
            raise IsodeployError(f"--amp {mode} needs a CUDA device; on CPU use --amp off (or auto)")
        return Precision(None, device.type)
    if mode == "off":
        return Precision(None, "cuda")
    if mode == "bf16" or (mode == "auto" and torch.cuda.is_bf16_supported()):
        return Precision(torch.bfloat16, "cuda")
    return Precision(torch.float16, "cuda")
