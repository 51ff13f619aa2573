"""Shared fixtures: small timm models and a cache of their groupings (tracing is the slow part)."""

from __future__ import annotations

import os
import tempfile
import warnings

import pytest
import timm
import torch

# Tiny models gain nothing from intra-op threads, and on a busy 2-core machine spinning threads
# make each small op hundreds of times slower.
torch.set_num_threads(1)
warnings.filterwarnings("ignore", category=UserWarning)
# Latency tables are cached in the user's cache folder: never the tester's own ~/.cache.
os.environ.setdefault("ISODEPLOY_CACHE_DIR", tempfile.mkdtemp(prefix="isodeploy-test-cache-"))

# Small variants of every family the grouper must handle: (timm name, create kwargs, image size).
SMALL_ZOO: dict[str, tuple[str, dict, int]] = {
    "deit": ("deit_tiny_patch16_224", {"img_size": 32, "patch_size": 8, "depth": 2}, 32),
    "swin": ("swin_tiny_patch4_window7_224", {"img_size": 64, "window_size": 4, "depths": (1, 1, 2, 1)}, 64),
    "convnext": ("convnext_atto", {}, 64),
    "resnet": ("resnet18", {}, 64),
    "mobilenetv2": ("mobilenetv2_050", {}, 64),
    "efficientnet": ("efficientnet_b0", {}, 64),
    "regnety": ("regnety_002", {}, 64),
    "levit": ("levit_128s", {"img_size": 64}, 64),
    "mobilevit": ("mobilevit_xxs", {}, 64),
}


def make_model(timm_name: str, seed: int = 0, **kwargs) -> torch.nn.Module:
    torch.manual_seed(seed)
    return timm.create_model(timm_name, pretrained=False, **kwargs).eval()


def randomize_norms(model: torch.nn.Module, seed: int = 1) -> torch.nn.Module:
    """Random-init norms have weight 1 / bias 0 / stats 0,1: make them non-trivial so tests see index errors."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (torch.nn.BatchNorm2d, torch.nn.LayerNorm, torch.nn.GroupNorm)):
                if getattr(module, "weight", None) is not None:
                    module.weight.copy_(torch.rand(module.weight.shape, generator=gen) + 0.5)
                    module.bias.copy_(torch.randn(module.bias.shape, generator=gen) * 0.1)
                if isinstance(module, torch.nn.BatchNorm2d):
                    module.running_mean.copy_(torch.randn(module.running_mean.shape, generator=gen) * 0.1)
                    module.running_var.copy_(torch.rand(module.running_var.shape, generator=gen) + 0.5)
    return model


_GROUPING_CACHE: dict = {}


@pytest.fixture(scope="session")
def grouped():
    """``grouped(key)`` → (model, example input, grouping) for a SMALL_ZOO key, traced once per session."""
    from isodeploy.graph.analysis import analyze

    def get(key: str):
        if key not in _GROUPING_CACHE:
            name, kwargs, size = SMALL_ZOO[key]
            model = randomize_norms(make_model(name, **kwargs))
            example = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
            _GROUPING_CACHE[key] = (model, example, analyze(model, example, name=name))
        return _GROUPING_CACHE[key]

    return get
