"""Per-channel importance of every group, aggregated over every parameter slice of the group.

``magnitude`` (L1 or L2 of the channel's whole group slice), ``taylor`` (first-order |w·∂L/∂w|
accumulated over calibration batches), ``random`` (a control). Scores of one group are comparable
with scores of groups of the same isomorphic class, which is all the isomorphic ranking needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Protocol, runtime_checkable

import torch
from torch import nn

from isodeploy.core.errors import IsodeployError, ParameterError
from isodeploy.graph.analysis import Grouping
from isodeploy.graph.groups import Group

IMPORTANCES = ("magnitude", "taylor", "random")


def _per_index(tensor: torch.Tensor, dim: int, norm: str) -> torch.Tensor:
    """Reduce a tensor to one score per index along ``dim``."""
    moved = tensor.detach().float().movedim(dim, 0).reshape(tensor.shape[dim], -1)
    if norm == "l1":
        return moved.abs().sum(1)
    return moved.pow(2).sum(1)


def _channel_maps(group: Group) -> list[torch.Tensor]:
    return [torch.tensor(m.tree.channel_of_index(group.atom), dtype=torch.long) for m in group.members]


def group_scores(group: Group, tensor_of: Callable[[str], torch.Tensor | None], norm: str) -> torch.Tensor:
    """Sum of per-index scores over every member dim, folded onto the group's channels."""
    total = torch.zeros(group.width, dtype=torch.float64)
    for member, channel in zip(group.members, _channel_maps(group)):
        if not member.is_param:
            continue
        tensor = tensor_of(member.tensor)
        if tensor is None:
            continue
        per_index = _per_index(tensor, member.dim, norm).double()
        valid = channel >= 0
        total.index_add_(0, channel[valid], per_index[valid])
    if norm == "l2":
        total = total.sqrt()
    return total


def magnitude(model: nn.Module, grouping: Grouping, norm: str = "l2") -> dict[int, torch.Tensor]:
    params = dict(model.named_parameters())
    return {g.id: group_scores(g, params.get, norm) for g in grouping.groups}


def random_scores(grouping: Grouping, seed: int = 0) -> dict[int, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {g.id: torch.rand(g.width, generator=gen, dtype=torch.float64) for g in grouping.groups}


def taylor(model: nn.Module, grouping: Grouping, batches: Iterable[tuple[torch.Tensor, torch.Tensor | None]],
           progress: Callable[[int], None] | None = None) -> dict[int, torch.Tensor]:
    """First-order Taylor importance |w · ∂L/∂w|, accumulated over batches.

    With labels the loss is cross-entropy; without, it is cross-entropy against the dense model's own
    predictions (hard distillation): a soft KL to itself would have zero gradient at the start.
    """
    params = dict(model.named_parameters())
    accumulated = {name: torch.zeros_like(p, dtype=torch.float32) for name, p in params.items()}
    was_training = model.training
    model.eval()
    seen = 0
    for images, labels in batches:
        model.zero_grad(set_to_none=True)
        logits = model(images)
        if isinstance(logits, (tuple, list)):
            logits = logits[0]
        if labels is None:
            labels = logits.detach().argmax(-1)
        loss = nn.functional.cross_entropy(logits, labels)
        loss.backward()
        for name, p in params.items():
            if p.grad is not None:
                accumulated[name] += (p.detach() * p.grad.detach()).abs().float()
        seen += 1
        if progress:
            progress(seen)
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    if seen == 0:
        raise IsodeployError("taylor importance got no calibration batches; check --calib-data and --calib-batches")
    return {g.id: group_scores(g, accumulated.get, "l1") for g in grouping.groups}


# -- the pluggable form: an importance is an object with ``name`` and ``scores`` -------------------------
@runtime_checkable
class Importance(Protocol):
    """Per-channel scores of every group, comparable within an isomorphic class (public API).

    ``scores(model, grouping, data)`` returns ``{group id: tensor of shape (group.width,)}``; ``data``
    is an iterable of ``(images, labels or None)`` batches, or None when the importance needs none.
    """

    name: str

    def scores(self, model: nn.Module, grouping: Grouping, data: Iterable | None) -> dict[int, torch.Tensor]: ...


@dataclass
class Magnitude:
    """L1/L2 norm of each channel's whole group slice (the default)."""

    norm: str = "l2"
    name: str = "magnitude"

    def scores(self, model: nn.Module, grouping: Grouping, data: Iterable | None = None) -> dict[int, torch.Tensor]:
        return magnitude(model, grouping, self.norm)


@dataclass
class Taylor:
    """First-order Taylor |w·∂L/∂w| over calibration batches (the paper's choice)."""

    name: str = "taylor"
    progress: Callable[[int], None] | None = None

    def scores(self, model: nn.Module, grouping: Grouping, data: Iterable | None = None) -> dict[int, torch.Tensor]:
        if data is None:
            raise IsodeployError("importance='taylor' needs calibration data: pass calib_data= (batches of images, "
                                 "a folder of images, or 'synthetic')")
        return taylor(model, grouping, data, self.progress)


@dataclass
class RandomImportance:
    """Random scores: a control for experiments."""

    seed: int = 0
    name: str = "random"

    def scores(self, model: nn.Module, grouping: Grouping, data: Iterable | None = None) -> dict[int, torch.Tensor]:
        return random_scores(grouping, self.seed)


def importance_from(value: "str | Importance", norm: str = "l2", progress: Callable[[int], None] | None = None) -> Importance:
    """``"magnitude" | "taylor" | "random"`` or an object following :class:`Importance`."""
    if isinstance(value, str):
        if value == "magnitude":
            return Magnitude(norm=norm)
        if value == "taylor":
            return Taylor(progress=progress)
        if value == "random":
            return RandomImportance()
        raise ParameterError("importance", f"must be one of {', '.join(IMPORTANCES)} or an Importance object; got '{value}'")
    if not callable(getattr(value, "scores", None)):
        raise IsodeployError(f"importance= must be a name or an object with a scores(model, grouping, data) method; "
                             f"got {type(value).__name__}")
    return value


def check_scores(scores: object, grouping: Grouping, name: str) -> dict[int, torch.Tensor]:
    """A custom importance's answer: one finite score per channel of every group."""
    if not isinstance(scores, dict):
        raise IsodeployError(f"importance '{name}' returned {type(scores).__name__}, not a dict of group id → scores")
    out = {}
    for group in grouping.groups:
        value = scores.get(group.id)
        if value is None:
            raise IsodeployError(f"importance '{name}' gave no scores for group {group.id} ({group.params[0]})")
        value = torch.as_tensor(value, dtype=torch.float64).flatten()
        if value.numel() != group.width or not torch.isfinite(value).all():
            raise IsodeployError(f"importance '{name}': group {group.id} needs {group.width} finite scores; got {value.numel()}")
        out[group.id] = value
    return out
