"""Plain supervised training on in-memory tensors: the dense teachers and the uniform baselines.

Both get the same recipe (AdamW, one-cycle learning rate, cross-entropy, no augmentation); only the
number of epochs differs. Fine-tuning of pruned models does *not* use this: it goes through
``isodeploy finetune`` so that the benchmark measures the tool as users run it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass
class TrainLog:
    steps: int = 0
    epochs: list[dict[str, float]] = field(default_factory=list)  # per epoch: train loss, val top-1


@torch.no_grad()
def top1(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 256) -> float:
    """Top-1 accuracy in percent (eval mode; the model's mode is restored)."""
    was_training = model.training
    model.eval()
    correct = sum(int((model(x[i:i + batch]).argmax(-1) == y[i:i + batch]).sum()) for i in range(0, len(x), batch))
    model.train(was_training)
    return 100.0 * correct / len(x)


def train_ce(model: nn.Module, data: tuple[torch.Tensor, torch.Tensor], val: tuple[torch.Tensor, torch.Tensor],
             epochs: int, batch_size: int, lr: float, seed: int, weight_decay: float = 0.05) -> TrainLog:
    """Train ``model`` in place; evaluates on ``val`` after every epoch (a record, never a selection)."""
    x, y = data
    steps_per_epoch = len(x) // batch_size
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps_per_epoch)
    gen = torch.Generator().manual_seed(seed)
    log = TrainLog()
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        total = 0.0
        for b in range(steps_per_epoch):
            idx = order[b * batch_size:(b + 1) * batch_size]
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss)
            log.steps += 1
        log.epochs.append({"epoch": epoch + 1, "train_loss": round(total / steps_per_epoch, 5),
                           "val_top1": round(top1(model, *val), 3)})
    model.eval()
    return log
