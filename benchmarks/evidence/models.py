"""The two networks of the benchmark and their uniformly narrower twins of a given MAC budget.

Both are real timm architectures shrunk through timm's own keyword arguments so that dozens of
trainings fit on two CPU cores: a 4-block DeiT (8×8 patches of a 32×32 image, width 96, 3 heads of
32 dims, MLP 384) and a ResNet-18-D (deep stem of width 16, stage widths 32/64/128/256). The uniform
twin scales every width by one factor (ViT: embedding and head dims; ResNet: stem and stages) and
then trims the last free width (ViT: MLP hidden; ResNet: none) so its MACs land near the budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

IMG_SIZE = 32
NUM_CLASSES = 10
# The digits fill the whole 32×32 image: evaluate on it as is (timm's default crop_pct would cut
# the borders, and the Taylor calibration loader does not crop), so every stage sees the same pixels.
FULL_FRAME = {"crop_pct": 1.0}


@dataclass
class ModelSetup:
    key: str
    label: str
    timm_name: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    def create_kwargs(self, **override: Any) -> dict[str, Any]:
        return {"num_classes": NUM_CLASSES, "pretrained_cfg_overlay": dict(FULL_FRAME), **self.kwargs, **override}


SETUPS = {
    "vit": ModelSetup("vit", "DeiT (4 blocks, d=96)", "deit_tiny_patch16_224",
                      {"patch_size": 8, "depth": 4, "embed_dim": 96, "num_heads": 3, "mlp_ratio": 4.0}),
    "resnet": ModelSetup("resnet", "ResNet-18-D (w=32…256)", "resnet18d",
                         {"channels": (32, 64, 128, 256), "stem_width": 16}),
}


def macs_of(setup: ModelSetup, **override: Any) -> int:
    """Exact MACs per image of the model built with ``override`` (random weights; shapes are all that matter)."""
    from isodeploy.benchmarking.macs import count_macs
    from isodeploy.loading import load_model

    loaded = load_model(setup.timm_name, weights="random", img_size=IMG_SIZE, **setup.create_kwargs(**override))
    return count_macs(loaded.model, loaded.example_input(2)).macs


def _vit_uniform(setup: ModelSetup, target: float) -> dict[str, Any]:
    """Embedding (and so head dims) scaled by √budget, then the MLP width solved for the exact MACs.

    MACs are linear in the MLP hidden width for a fixed embedding, so two counts give the solution.
    """
    heads = setup.kwargs["num_heads"]
    dense = macs_of(setup)
    fraction = target / dense
    embed = max(heads, heads * round(setup.kwargs["embed_dim"] * math.sqrt(fraction) / heads))
    lo, hi = embed, 4 * embed
    m_lo = macs_of(setup, embed_dim=embed, mlp_ratio=(lo + 0.1) / embed)
    m_hi = macs_of(setup, embed_dim=embed, mlp_ratio=(hi + 0.1) / embed)
    hidden = max(1, round(lo + (target - m_lo) * (hi - lo) / (m_hi - m_lo)))
    return {"embed_dim": embed, "mlp_ratio": (hidden + 0.1) / embed}  # +0.1: timm takes int(embed × ratio)


def _resnet_uniform(setup: ModelSetup, target: float) -> dict[str, Any]:
    """Every width × one factor, found by bisection on the exact MAC count (widths are integers)."""
    base_channels, base_stem = setup.kwargs["channels"], setup.kwargs["stem_width"]

    def widths(scale: float) -> dict[str, Any]:
        return {"channels": tuple(max(1, round(c * scale)) for c in base_channels), "stem_width": max(1, round(base_stem * scale))}

    low, high, best = 0.05, 1.0, None
    for _ in range(14):
        mid = (low + high) / 2
        kwargs = widths(mid)
        macs = macs_of(setup, **kwargs)
        if best is None or abs(macs - target) < abs(best[1] - target):
            best = (kwargs, macs)
        low, high = (low, mid) if macs > target else (mid, high)
    return best[0]


def uniform_kwargs(setup: ModelSetup, target_macs: float) -> dict[str, Any]:
    """timm kwargs of the uniformly narrower model of about ``target_macs`` (trained from scratch)."""
    return _vit_uniform(setup, target_macs) if setup.key == "vit" else _resnet_uniform(setup, target_macs)
