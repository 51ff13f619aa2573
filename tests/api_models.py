"""Models the API tests build by factory string (``api_models:tiny_vit``), importable from a fresh process."""

from __future__ import annotations

import torch
from torch import nn


def tiny_vit(num_classes: int = 10) -> nn.Module:
    """A small torchvision VisionTransformer (nn.MultiheadAttention inside)."""
    from torchvision.models import VisionTransformer

    torch.manual_seed(0)
    return VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=4, hidden_dim=64, mlp_dim=128,
                             num_classes=num_classes).eval()


class TinyNet(nn.Module):
    """A user's own CNN: conv-bn-relu stem, a residual block, a grouped conv, a classifier."""

    def __init__(self, classes: int = 7) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU())
        self.block = nn.Sequential(nn.Conv2d(32, 64, 1), nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1, groups=8), nn.ReLU(),
                                   nn.Conv2d(64, 32, 1))
        self.head = nn.Linear(32, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = x + self.block(x)
        return self.head(x.mean((2, 3)))


def tiny_net() -> nn.Module:
    torch.manual_seed(0)
    return TinyNet().eval()
