"""Models for tests/test_reliability_round3.py, importable as factories (``round3_models:data_dependent``)."""

from __future__ import annotations

import torch
from torch import nn


class DataDependent(nn.Module):
    """A CNN whose forward slices by a count only the data knows (``torch.nonzero`` then a slice).
    conv1 → conv2 channels are prunable; the channels that cross the data-dependent slice are not."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 16, 3, padding=1)
        self.fc = nn.Linear(16, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(torch.relu(self.conv1(x)))
        rows = torch.nonzero(y[0, 0] > 0).shape[0]
        y = y[:, :, : max(rows, 1)]
        return self.fc(y.mean(dim=(2, 3)))


def data_dependent(num_classes: int = 10, **_: object) -> nn.Module:
    return DataDependent(num_classes)


def tiny_cnn(num_classes: int = 10, **_: object) -> nn.Module:
    """A small plain CNN (a factory for CLI tests)."""
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, num_classes))
