"""Top-1/top-5 accuracy on a labelled folder, sharded over ranks and summed exactly."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from isodeploy.train.config import EvalResult
from isodeploy.train.dist import DistEnv
from isodeploy.train.optim import Precision


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, env: DistEnv, precision: Precision) -> EvalResult:
    """Accuracy in percent; top-5 becomes top-k with k = min(5, classes). Restores the model's mode."""
    was_training = model.training
    model.eval()
    correct1 = correct5 = loss_sum = 0.0
    count = 0
    for images, labels, _index, _failed in loader:
        images = images.to(env.device, non_blocking=True)
        labels = labels.to(env.device, non_blocking=True)
        with precision.autocast():
            logits = model(images)
        logits = logits.float()
        loss_sum += float(F.cross_entropy(logits, labels, reduction="sum"))
        k = min(5, logits.shape[-1])
        top = logits.topk(k, dim=-1).indices
        hits = top.eq(labels.unsqueeze(-1))
        correct1 += float(hits[:, 0].sum())
        correct5 += float(hits.any(dim=-1).sum())
        count += labels.numel()
    model.train(was_training)
    correct1, correct5, loss_sum, total = env.sum([correct1, correct5, loss_sum, float(count)])
    total = max(total, 1.0)
    return EvalResult(top1=100.0 * correct1 / total, top5=100.0 * correct5 / total, loss=loss_sum / total, images=int(total))
