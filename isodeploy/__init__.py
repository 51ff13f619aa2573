"""isodeploy: isomorphic pruning, export and honest latency reports for vision models.

The public API (names are a contract)::

    model = isodeploy.create_model("torchvision:vit_b_16", weights="random")
    grouping = isodeploy.analyze(model, torch.randn(2, 3, 224, 224))
    result = isodeploy.prune(model, torch.randn(2, 3, 224, 224), ratio=0.3)
    isodeploy.save(result, "out/vit")
    pruned = isodeploy.load("out/vit")
    isodeploy.export_onnx(pruned, "out/vit/model.onnx")
    isodeploy.verify("out/vit/model.onnx", reference=pruned)
    isodeploy.bench(["out/vit/model.onnx"])
    fast = isodeploy.prune(model, torch.randn(2, 3, 224, 224), target_latency="0.5")  # measured on onnxruntime

Extension points: :func:`register_op` (a channel rule / MAC formula for an op) and
:func:`register_fixup` (attribute fix-ups for a module type); see ``docs/grouper.md``.
"""

from __future__ import annotations

from typing import Any

from isodeploy.core.version import __version__

from isodeploy.core.errors import IsodeployError

_LAZY = {
    "create_model": "isodeploy.api.models", "example_inputs": "isodeploy.api.models", "analyze": "isodeploy.api.models", "save": "isodeploy.api.models",
    "load": "isodeploy.api.models", "export_onnx": "isodeploy.api.deploy", "verify": "isodeploy.api.deploy",
    "register_op": "isodeploy.graph.ops", "register_fixup": "isodeploy.pruning.fixups",
    "latency_settings": "isodeploy.api.latency",
    "Importance": "isodeploy.pruning.importance", "Source": "isodeploy.zoo.sources", "PruneResult": "isodeploy.pruning.pruner",
}


def prune(*args: Any, **kwargs: Any):
    """Isomorphic pruning of a copy of ``model``; see `isodeploy.api.models.prune`."""
    from isodeploy.api.models import prune as _prune

    return _prune(*args, **kwargs)


def bench(*args: Any, **kwargs: Any):
    """Latency, memory and MACs of artifacts; see :func:`isodeploy.api.benchmark.bench`."""
    from isodeploy.api.benchmark import bench as _bench

    return _bench(*args, **kwargs)


def __getattr__(name: str) -> Any:
    """Import the heavy parts (torch, timm) only when the API is used, so the CLI starts fast."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'isodeploy' has no attribute '{name}'")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = ["__version__", "IsodeployError", "prune", "bench", *_LAZY]
