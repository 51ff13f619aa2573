"""NaN/inf in weights, found before anything is computed from them.

A NaN weight makes every output NaN, and NaN compares unequal to everything: gates, self-checks and
importance scores then fail in confusing ways far from the cause (or, worse, pass). Every reader of
weights refuses them here, naming the file and the first tensor that holds one.
"""

from __future__ import annotations

from typing import Iterable

import torch

from isodeploy.core.errors import IsodeployError


def first_nonfinite(named: Iterable[tuple[str, torch.Tensor]]) -> tuple[str, int] | None:
    """The name and NaN/inf count of the first floating tensor that holds one, or None."""
    for name, tensor in named:
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point() and tensor.device.type != "meta":
            bad = int((~torch.isfinite(tensor)).sum())
            if bad:
                return name, bad
    return None


def check_finite_weights(named: Iterable[tuple[str, torch.Tensor]], what: str) -> None:
    """One line naming ``what`` (a weights file, a model) and its first non-finite tensor."""
    found = first_nonfinite(named)
    if found is not None:
        name, bad = found
        raise IsodeployError(f"{what} holds NaN/inf values ({bad} in '{name}'); nothing can be pruned, exported or "
                             "verified from them: use the weights before training diverged, or '--weights random'")
