"""Build a dense model from its source (alias, timm name, ``torchvision:NAME``, ``package.module:function``)
and its weights, and the records later stages need (:class:`LoadedModel`).

Resolving a ``MODEL`` argument (a name or an output folder) is :mod:`isodeploy.loading`, one layer up,
because folders need the pruning spec.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from isodeploy.core.errors import IsodeployError
from isodeploy.zoo.presets import Alias, load_presets
from isodeploy.zoo.sources import BuildError, Source, is_factory, torchvision_builder

SPEC_FILE = "isodeploy.json"
WEIGHTS_FILE = "model.safetensors"
RANDOM_WEIGHTS_SEED = 0


@dataclass
class ModelRef:
    """What a ``MODEL`` argument names, before anything is built."""

    query: str
    timm_name: str  # the display name: a timm name, "torchvision:NAME" or "package.module:function"
    alias: Alias | None = None
    folder: Path | None = None
    source: Source | None = None


@dataclass
class LoadedModel:
    """A ready model in eval mode plus what later stages need to know about it."""

    model: nn.Module
    timm_name: str
    input_size: tuple[int, int, int]
    weights: str  # "pretrained", "random", a file path, or "folder:<path>"
    alias: Alias | None = None
    folder: Path | None = None
    create_kwargs: dict[str, Any] = field(default_factory=dict)
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)
    num_classes: int = 1000
    source: Source | None = None

    def example_input(self, batch: int = 2) -> torch.Tensor:
        """A random input of the model's size; batch 2 by default because export specialises size-1 dims."""
        return torch.randn(batch, *self.input_size)


def _create(source: Source, pretrained: bool, img_size: int | None, extra: dict[str, Any]) -> tuple[nn.Module, dict]:
    """Build the model, passing the image size the way each source takes it (timm ``img_size``,
    torchvision ViT ``image_size``; fully convolutional models take any size at run time)."""
    kwargs = dict(extra)
    size_key = {"timm": "img_size", "torchvision": "image_size", "hf": "image_size"}.get(source.kind)
    if img_size is not None and size_key:
        kwargs[size_key] = img_size
    try:
        return Source(source.kind, source.name, kwargs).create(pretrained=pretrained, trust=True), kwargs
    except IsodeployError as exc:
        if img_size is None or not size_key or size_key not in str(exc):
            raise
    kwargs.pop(size_key)
    return Source(source.kind, source.name, kwargs).create(pretrained=pretrained, trust=True), kwargs


def _offline_error(timm_name: str, exc: Exception) -> IsodeployError:
    return IsodeployError(
        f"could not download pretrained weights for '{timm_name}' ({type(exc).__name__}); "
        "offline, use '--weights random' (random init) or '--weights PATH' (a local .safetensors/.pth file)"
    )


def _hub_reachable(timeout_s: float = 3.0) -> bool:
    """Whether the model hub's host resolves; offline machines fail fast instead of retrying for a minute.

    ``HF_HUB_OFFLINE=1`` skips the check so that timm can use a local hub cache.
    """
    import os
    import socket
    import threading

    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return True
    host = os.environ.get("HF_ENDPOINT", "https://huggingface.co").split("://")[-1].split("/")[0]
    result: list[bool] = []

    def probe() -> None:
        try:
            socket.getaddrinfo(host, 443)
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout_s)
    return bool(result and result[0])


def load_state_file(path: Path) -> dict[str, torch.Tensor]:
    """Read a weights file with safetensors or ``torch.load(weights_only=True)``; never unpickle code."""
    if not path.is_file():
        raise IsodeployError(f"weights file '{path}' does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt files raise many different types
        from isodeploy.core.artifacts import pickle_refusal

        raise (pickle_refusal(path, exc) or IsodeployError(
            f"weights file '{path}' could not be read ({type(exc).__name__}: {' '.join(str(exc).split())[:120]})")) from exc
    for key in ("state_dict", "model", "model_state", "module"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise IsodeployError(f"weights file '{path}' does not hold a state dict")
    from isodeploy.core.finite import check_finite_weights

    check_finite_weights(state.items(), f"weights file '{path}'")
    return {k.removeprefix("module."): v for k, v in state.items()}


def apply_state(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load ``state`` strictly, naming the first missing, unexpected or mis-shaped key."""
    own = model.state_dict()
    for key, value in own.items():
        if key not in state:
            raise IsodeployError(f"weights '{source}' lack key '{key}' (the file is for another model?)")
        if tuple(state[key].shape) != tuple(value.shape):
            raise IsodeployError(
                f"weights '{source}': key '{key}' has shape {tuple(state[key].shape)}, the model expects {tuple(value.shape)}"
            )
    extra = [k for k in state if k not in own]
    if extra:
        raise IsodeployError(f"weights '{source}' have unexpected key '{extra[0]}' (the file is for another model?)")
    model.load_state_dict(state, strict=True)


def _check_input_size(model: nn.Module, timm_name: str, input_size: tuple[int, int, int]) -> None:
    """Run one tiny forward so that a size the model can't take fails here, in one line, not deep in export."""
    from isodeploy.core.limits import check_input_fits

    check_input_fits(1, input_size, f"model '{timm_name}' at --img-size {input_size[1]}")
    try:
        with torch.no_grad():
            model(torch.zeros(1, *input_size))
    except Exception as exc:  # shape errors surface as many exception types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise IsodeployError(f"model '{timm_name}' can't take --img-size {input_size[1]}: {first[:160]}") from exc


def build_dense(ref: ModelRef, weights: str = "pretrained", img_size: int | None = None,
                create_kwargs: dict[str, Any] | None = None) -> LoadedModel:
    """Build the (dense) model a resolved name refers to, in eval mode.

    ``weights`` is ``pretrained`` (the source's own download: timm's hub, torchvision's DEFAULT
    weights; a factory decides itself), ``random`` or a path to a weights file. ``create_kwargs`` go
    to the builder (tests use them to make tiny variants).
    """
    create_kwargs = dict(create_kwargs or {})
    source = ref.source
    if weights not in ("pretrained", "random") and not Path(weights).exists():
        raise IsodeployError(f"--weights must be 'pretrained', 'random' or an existing file; '{weights}' is none of these")
    pretrained = weights == "pretrained" and source.kind != "factory"
    if pretrained and source.kind == "timm" and not _hub_reachable():
        raise _offline_error(ref.timm_name, ConnectionError("model hub unreachable"))
    if weights == "random" or source.kind == "factory":
        # Deterministic "random": two commands given the same model and --weights random build the
        # same weights, so `export` then `verify --reference` compare like with like.
        torch.manual_seed(RANDOM_WEIGHTS_SEED)
    try:
        model, used_kwargs = _create(source, pretrained, img_size, create_kwargs)
    except BuildError as exc:
        cause = exc.__cause__
        text = f"{type(cause).__name__}: {cause}".lower()
        if pretrained and (not isinstance(cause, (TypeError, ValueError, AssertionError)) or any(
                s in text for s in ("connect", "resolve", "offline", "hub", "http", "urlopen", "network", "download"))):
            raise _offline_error(ref.timm_name, cause) from exc
        if img_size is not None:
            raise IsodeployError(f"model '{ref.timm_name}' can't take --img-size {img_size}: {str(cause)[:160]}") from exc
        raise
    if weights not in ("pretrained", "random"):
        apply_state(model, load_state_file(Path(weights)), weights)
    model.eval()
    cfg = getattr(model, "pretrained_cfg", None) or {}
    default_size = used_kwargs.get("image_size", 224)
    channels, height, width = cfg.get("input_size", (3, default_size, default_size))
    if img_size is not None:
        height = width = img_size
        _check_input_size(model, ref.timm_name, (channels, height, width))
    loaded = LoadedModel(
        model=model,
        timm_name=ref.timm_name,
        input_size=(channels, height, width),
        weights=weights,
        alias=ref.alias,
        create_kwargs=used_kwargs,
        mean=tuple(cfg.get("mean", (0.485, 0.456, 0.406))),
        std=tuple(cfg.get("std", (0.229, 0.224, 0.225))),
        num_classes=getattr(model, "num_classes", 1000),
        source=Source(source.kind, source.name, dict(used_kwargs)),
    )
    attach_source(model, loaded)
    return loaded


def attach_source(model: nn.Module, loaded: "LoadedModel") -> None:
    """Remember on the module where it came from, so ``isodeploy.save`` can record it unasked."""
    object.__setattr__(model, "_isodeploy_source", loaded.source)
    object.__setattr__(model, "_isodeploy_input", {"input_size": list(loaded.input_size), "mean": list(loaded.mean),
                                                   "std": list(loaded.std), "weights": loaded.weights,
                                                   "alias": loaded.alias.name if loaded.alias else None})
