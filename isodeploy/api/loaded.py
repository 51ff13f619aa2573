"""What the deployment API runs: a :class:`~isodeploy.zoo.LoadedModel` made from whatever a Python user
holds (an ``nn.Module``, an isodeploy folder, a model name). Its own module so that
:mod:`isodeploy.api.deploy` and :mod:`isodeploy.api.verification` share it without importing each other."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from isodeploy.core.errors import IsodeployError

__all__ = ["as_loaded"]


def as_loaded(model: Any, example_inputs: Any = None, img_size: int | None = None, weights: str = "pretrained"):
    """A :class:`~isodeploy.zoo.LoadedModel` for a module, a folder or a model name."""
    from isodeploy.loading import load_model
    from isodeploy.zoo import LoadedModel
    from isodeploy.zoo.sources import source_of

    if isinstance(model, LoadedModel):
        return model
    if isinstance(model, (str, Path)):
        return load_model(str(model), weights=weights, img_size=img_size)
    if not isinstance(model, nn.Module):
        raise IsodeployError(f"model= must be an nn.Module, an isodeploy folder or a model name; got {type(model).__name__}")
    meta = dict(getattr(model, "_isodeploy_input", None) or {})
    if example_inputs is not None:
        from isodeploy.pruning.pruner import example_batch

        meta["input_size"] = list(example_batch(example_inputs).shape[1:])
    elif img_size is not None and meta.get("input_size"):
        meta["input_size"] = [meta["input_size"][0], img_size, img_size]
    if not meta.get("input_size"):
        raise IsodeployError("pass example_inputs= (e.g. torch.randn(2, 3, 224, 224)): this module does not know its input size")
    source = source_of(model)
    return LoadedModel(model=model.eval(), timm_name=source.label if source else type(model).__name__,
                       input_size=tuple(meta["input_size"]), weights="module",
                       create_kwargs=dict(source.kwargs) if source else {},
                       mean=tuple(meta.get("mean", (0.485, 0.456, 0.406))), std=tuple(meta.get("std", (0.229, 0.224, 0.225))),
                       source=source)
