"""One training epoch: distillation steps with clipping, mixed precision, EMA, and a progress bar on rank 0."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from isodeploy.core.errors import IsodeployError
from isodeploy.train.data import EpochSampler, sample_seed
from isodeploy.train.dist import DistEnv
from isodeploy.train.distill import distill_loss
from isodeploy.train.optim import Precision, WarmupCosine

PROGRESS_EVERY = 10  # steps between progress-bar loss updates (each one syncs with the device)


@dataclass
class Trainer:
    """The moving parts of a run, built once by :mod:`isodeploy.train.loop`."""

    student: nn.Module  # DDP-wrapped when distributed
    plain: nn.Module  # the unwrapped student (what is saved)
    teacher: nn.Module | None
    loader: DataLoader
    sampler: EpochSampler
    optimizer: torch.optim.Optimizer
    scheduler: WarmupCosine
    scaler: torch.amp.GradScaler
    ema: Any  # timm ModelEmaV3 or None
    precision: Precision
    env: DistEnv
    labelled: bool
    temperature: float
    kd_weight: float
    clip_grad: float
    seed: int


@dataclass
class EpochStats:
    loss: float
    kd: float | None
    ce: float | None
    images: int  # over all ranks
    skipped: int  # decode failures replaced by other images, over all ranks
    seconds: float
    lr: float
    indices: list[int] = field(default_factory=list)  # this rank's sample indices, in order


def _step(t: Trainer, images: torch.Tensor, labels: torch.Tensor | None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    if t.teacher is not None:
        with torch.no_grad(), t.precision.autocast():
            teacher_logits = t.teacher(images)
    else:
        teacher_logits = None
    with t.precision.autocast():
        logits = t.student(images)
    loss, parts = distill_loss(logits, teacher_logits, labels, t.temperature, t.kd_weight)
    t.optimizer.zero_grad(set_to_none=True)
    t.scaler.scale(loss).backward()
    if t.clip_grad > 0:
        t.scaler.unscale_(t.optimizer)
        torch.nn.utils.clip_grad_norm_(t.student.parameters(), t.clip_grad)
    t.scaler.step(t.optimizer)
    t.scaler.update()
    t.scheduler.step()
    if t.ema is not None:
        t.ema.update(t.plain, step=t.scheduler.step_count)
    return loss.detach(), parts


def train_one_epoch(t: Trainer, epoch: int, progress: Any | None, task: Any | None) -> EpochStats:
    """Train over this rank's share of the data; ``progress``/``task`` are rank 0's rich bar (or None)."""
    t.sampler.set_epoch(epoch)
    # Dropout and drop-path draw from the global generator: seed it per (epoch, rank) so a resumed
    # run draws the same masks as an uninterrupted one.
    torch.manual_seed(sample_seed(t.seed, epoch, 10**9 + t.env.rank))
    t.student.train()
    device = t.env.device
    zero = torch.zeros((), device=device, dtype=torch.float64)
    sums = {"loss": zero.clone(), "kd": zero.clone(), "ce": zero.clone()}
    images_seen, failed, indices = 0, 0, []
    start = time.perf_counter()
    steps = len(t.loader)
    for step, (images, labels, index, failures) in enumerate(t.loader, 1):
        images = images.to(device, non_blocking=True)
        labels = labels.to(device, non_blocking=True) if t.labelled else None
        loss, parts = _step(t, images, labels)
        batch = images.shape[0]
        sums["loss"] += loss.double() * batch
        for name, value in parts.items():
            sums[name] += value.double() * batch
        images_seen += batch
        failed += int(failures.sum())
        indices.extend(index.tolist())
        if progress is not None and (step % PROGRESS_EVERY == 0 or step == steps):
            rate = images_seen * t.env.world / max(time.perf_counter() - start, 1e-9)
            progress.update(task, completed=step, loss=f"{float(loss):.4f}", rate=f"{rate:,.0f} img/s")
    seconds = time.perf_counter() - start
    totals = t.env.sum([float(sums["loss"]), float(sums["kd"]), float(sums["ce"]), float(images_seen), float(failed)])
    count = max(totals[3], 1.0)
    mean_loss = totals[0] / count
    if not math.isfinite(mean_loss):
        raise IsodeployError(f"the training loss became {mean_loss} in epoch {epoch}; lower --lr or use --amp off")
    return EpochStats(
        loss=mean_loss,
        kd=totals[1] / count if t.teacher is not None else None,
        ce=totals[2] / count if t.labelled else None,
        images=int(totals[3]),
        skipped=int(totals[4]),
        seconds=seconds,
        lr=t.scheduler.current,
        indices=indices,
    )
