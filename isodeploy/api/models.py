"""The public Python API (re-exported by ``isodeploy``): create, analyze, prune, save and load models.

Every function takes plain ``nn.Module`` objects and tensors; errors are
:class:`~isodeploy.core.errors.IsodeployError` with a one-line message that names the parameter (``ratio=``),
which the CLI rewrites to its flag (``--ratio``).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from torch import nn

from isodeploy.core.api_args import check_arg, check_mapping_arg, check_path_arg
from isodeploy.core.errors import IsodeployError, ParameterError

RATIO_KINDS = {"embedding": "embed_ratio", "hidden": "mlp_ratio", "heads": "head_ratio", "head_dim": "head_dim_ratio"}


def create_model(name: str, weights: str = "pretrained", img_size: int | None = None, **kwargs: Any) -> nn.Module:
    """Build a model by name, in eval mode: an alias from ``models/`` (``deit_b``), a timm name,
    ``torchvision:NAME``, ``package.module:function`` or an isodeploy output folder.

    ``weights``: ``"pretrained"`` (the source's download), ``"random"`` (seeded, offline) or a path to
    a ``.safetensors``/``.pth`` state dict. ``kwargs`` go to the builder (``num_classes=10``). The
    module remembers its source, so :func:`save` records it without being told.
    """
    from isodeploy.loading import load_model

    check_arg("name", name if isinstance(name, str) else (str(name) if isinstance(name, Path) else name), "str")
    check_arg("weights", weights if not isinstance(weights, Path) else str(weights), "str")
    check_arg("img_size", img_size, "positive int", optional=True)
    return load_model(str(name), weights=str(weights), img_size=img_size, **kwargs).model


def example_inputs(model: nn.Module, batch: int = 2) -> torch.Tensor:
    """A random batch shaped like the model's input, for models from :func:`create_model`, :func:`load`
    or :func:`prune` (they remember their input size)."""
    meta = getattr(model, "_isodeploy_input", None) or {}
    if not meta.get("input_size"):
        raise IsodeployError("this module does not know its input size; build your own example, e.g. torch.randn(2, 3, 224, 224)")
    return torch.randn(batch, *meta["input_size"])


def analyze(model: nn.Module, example_inputs: Any, strict: bool = False, *, rules: dict | None = None):
    """Groups of coupled channels and their isomorphic classes for any traceable ``model``.

    ``example_inputs``: a tensor (or a 1-tuple) shaped like a real batch; batch 1 is repeated to 2.
    ``strict=True`` makes any op without a channel rule that froze weights an error. ``rules`` maps
    ops to extra channel rules for this call (see ``docs/grouper.md``). Returns a
    :class:`~isodeploy.graph.analysis.Grouping` (``.classes``, ``.groups``, ``.to_json()``).
    """
    from isodeploy.graph.analysis import analyze as _analyze
    from isodeploy.pruning.pruner import check_example, example_batch

    _check_module(model)
    check_arg("strict", strict, "bool")
    check_mapping_arg("rules", rules, "any", "callable")
    example = example_batch(example_inputs)
    was_training = model.training
    model.eval()
    try:
        check_example(model, example)
        return _analyze(model, example, name=type(model).__name__, strict=strict, rules=rules)
    finally:
        model.train(was_training)


def default_preset(name: str) -> str | None:
    """The pruning recipe an alias from ``models/`` names (``deit_b`` → ``deit-4.2g``), else None."""
    from isodeploy.loading import resolve

    ref = resolve(str(name))
    return ref.alias.recipe if ref.alias else None


def prune(model: nn.Module, example_inputs: Any, *, ratio: float | None = None, ratios: dict[str, float] | None = None,
          ranking: str = "isomorphic", importance: Any = "magnitude", target_macs: float | None = None, round_to: int = 8,
          max_group_ratio: float = 0.9, norm: str = "l2", calib_data: Iterable | str | None = None, calib_batches: int = 8,
          preset: str | None = None, strict: bool = False, verify: bool = True, progress: Callable[[str], None] | None = None,
          target_latency: Any = None, latency: Any = None):
    """Isomorphic pruning of a copy of ``model`` (the input is left untouched).

    ``ratio`` is the fraction of channels removed from every class; ``ratios`` overrides it per class
    kind (``embedding``, ``hidden``, ``heads``, ``head_dim``). ``ranking``: ``isomorphic`` (within
    classes, the paper), ``global`` or ``local``. ``importance``: ``"magnitude"``, ``"taylor"``,
    ``"random"`` or an object with ``name`` and ``scores(model, grouping, data)``. ``target_macs``
    searches the ratio scale that lands within 1 % of that many MACs per image. ``calib_data``: batches
    ``(images, labels or None)``, a folder of images, or ``"synthetic"`` (Taylor). ``preset``: a recipe
    from ``models/`` (``isodeploy presets``) whose ratios the explicit ones override.

    ``target_latency`` (``'300ms'`` or a fraction of the dense latency such as ``0.5``) prunes to a
    *measured* latency instead: per-class latency tables timed on onnxruntime (cached), a solver that
    picks each class's cut, then the pruned model timed against the dense one; ``.spec['latency']``
    holds budget, predicted and measured latency. ``latency`` is a
    :func:`~isodeploy.api.latency_settings` result for runtime, batch, threads and table file.

    Classes whose pruning breaks the model's own code are frozen and reported in ``.frozen``; the
    returned ``.model`` always runs and matches ``.plan``. Returns a
    :class:`~isodeploy.pruning.pruner.PruneResult` (``.model``, ``.plan``, ``.grouping``, ``.summary``).
    """
    from isodeploy.pruning.pruner import example_batch, prune_module

    _check_module(model)
    check_arg("strict", strict, "bool")
    check_arg("verify", verify, "bool")
    check_arg("calib_batches", calib_batches, "positive int")
    check_arg("progress", progress, "callable", optional=True)
    settings = _latency(target_latency, latency, ratio=ratio, ratios=ratios, preset=preset)
    cfg = prune_config(ratio=ratio, ratios=ratios, ranking=ranking, importance=importance, target_macs=target_macs,
                       round_to=round_to, max_group_ratio=max_group_ratio, norm=norm, preset=preset,
                       target_latency=settings.budget.text if settings else None)
    example = example_batch(example_inputs)
    data = _calibration(calib_data, example, calib_batches, model) if cfg.importance == "taylor" else None
    if settings is not None:
        from isodeploy.latency.prune import prune_to_latency

        return prune_to_latency(model, example, cfg, settings, importance=importance, data=data, strict=strict, progress=progress,
                                verify=verify)
    return prune_module(model, example, cfg, importance=importance, data=data, strict=strict, progress=progress, verify=verify)


def prune_config(*, ratio: float | None = None, ratios: dict[str, float] | None = None, ranking: str = "isomorphic",
                 importance: Any = "magnitude", target_macs: float | None = None, round_to: int = 8,
                 max_group_ratio: float = 0.9, norm: str = "l2", preset: str | None = None, target_latency: str | None = None):
    """The checked :class:`~isodeploy.pruning.plan.PruneConfig` that :func:`prune` would use: call it to
    validate options before loading a model (the CLI does)."""
    from isodeploy.pruning.pruner import config_from_recipe

    check_mapping_arg("ratios", ratios, "str", "any", optional=True)
    check_arg("target_macs", target_macs, "positive number", optional=True,
              hint=" (MACs per image, e.g. 4.2e9; the CLI's --target-macs takes '4.2G')")
    check_arg("preset", preset, "str", optional=True)
    if norm not in ("l1", "l2"):
        raise ParameterError("norm", f"must be l1 or l2; got '{norm}'")
    overrides = dict(ratio=_fraction(ratio, "ratio"), ranking=ranking, norm=norm, round_to=round_to,
                     max_group_ratio=max_group_ratio, target_macs=target_macs,
                     importance=importance if isinstance(importance, str) else getattr(importance, "name", "custom"))
    for kind, value in (ratios or {}).items():
        if kind not in RATIO_KINDS:
            raise ParameterError("ratios", f"keys must be {', '.join(RATIO_KINDS)}; got '{kind}'")
        overrides[RATIO_KINDS[kind]] = _fraction(value, f"ratios['{kind}']")
    cfg = config_from_recipe(preset, overrides)
    cfg.validate()
    if target_latency is not None and cfg.ranking != "isomorphic":
        raise ParameterError("ranking", f"must be isomorphic with a latency target (the solver picks each class's cut); got '{cfg.ranking}'")
    if cfg.ratio is None and all(cfg.ratio_for(k) == 0 for k in RATIO_KINDS) and target_macs is None and target_latency is None:
        raise IsodeployError("prune() needs ratio=, ratios=, preset= or target_macs= (CLI: --ratio, --preset or --target-macs)")
    return cfg


def save(result, folder: str | Path, source: Any = None, force: bool = False) -> Path:
    """Write ``result`` (from :func:`prune`) to ``folder``: ``model.safetensors`` + ``isodeploy.json``.

    ``source`` says how :func:`load` rebuilds the dense architecture: a timm name,
    ``"torchvision:NAME"``, ``"package.module:function"``, a :class:`~isodeploy.zoo.Source`, or None
    (what :func:`create_model` recorded, else "the caller passes ``model=`` to :func:`load`").
    """
    from isodeploy.pruning.pruner import PruneResult, save_pruned, with_source

    if not isinstance(result, PruneResult):
        raise ParameterError("result", f"must be what isodeploy.prune() returned (a PruneResult); got {type(result).__name__}")
    folder = check_path_arg("folder", folder)
    check_arg("force", force, "bool")
    if source is not None:
        result = with_source(result, _as_source(source))
    return save_pruned(result, Path(folder), force=force)


def load(folder: str | Path, model: nn.Module | str | None = None, trust: bool = False) -> nn.Module:
    """Rebuild a pruned model from an isodeploy output folder, in eval mode; never unpickles.

    ``model``: the dense architecture to rebuild from (required for a folder saved from a custom
    model without a source), or the factory string the folder names (``"pkg.mod:fn"``), which
    confirms you trust it. A folder naming a factory is not imported on its own word: pass the same
    factory as ``model=`` or ``trust=True``.
    """
    from isodeploy.pruning.spec import load_folder

    folder = check_path_arg("folder", folder)
    if folder.exists() and not folder.is_dir():
        raise ParameterError("folder", f"must be an isodeploy output folder; '{folder}' is a file (load ONNX files with "
                                       "onnxruntime, state dicts with create_model(..., weights=PATH))")
    check_arg("trust", trust, "bool")
    if model is not None and not isinstance(model, (nn.Module, str)):
        raise IsodeployError(f"model= must be an nn.Module or a factory string; got {type(model).__name__}")
    if isinstance(model, str):
        return load_folder(Path(folder), trusted_factory=model, trust=trust).model
    return load_folder(Path(folder), model=model, trust=trust).model


# -- helpers ----------------------------------------------------------------------------------------------
def _latency(target_latency: Any, latency: Any, **ratios: Any):
    """The checked latency settings, or None; ratios or a preset beside a latency target are a contradiction."""
    from isodeploy.latency.budget import parse_latency_budget
    from isodeploy.latency.settings import LatencySettings, make_settings, refuse_explicit_cuts

    if latency is not None and not isinstance(latency, LatencySettings):
        raise ParameterError("latency", f"must come from isodeploy.latency_settings(...); got {type(latency).__name__}")
    if target_latency is None and latency is None:
        return None
    if target_latency is not None:
        latency = make_settings(target_latency) if latency is None else replace(latency, budget=parse_latency_budget(target_latency))
    refuse_explicit_cuts([f"{k}=" for k, v in ratios.items() if v not in (None, {})], "target_latency=", "target_macs=")
    return latency


def _check_module(model: Any) -> None:
    if not isinstance(model, nn.Module):
        raise IsodeployError(f"model= must be a torch.nn.Module; got {type(model).__name__}")


def _fraction(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) < 1.0:
        raise ParameterError(name, f"must be a fraction in [0, 1) (the share of channels removed); got {value!r}")
    return float(value)


def _replace(cfg, **fields):
    from dataclasses import replace

    return replace(cfg, **fields)


def _as_source(source: Any):
    from isodeploy.zoo.sources import Source, is_factory

    if isinstance(source, Source):
        return source
    if not isinstance(source, str) or not source:
        raise IsodeployError(f"source= must be a model name, 'torchvision:NAME', 'package.module:function' or a Source; got {source!r}")
    if source.startswith("torchvision:"):
        return Source("torchvision", source.split(":", 1)[1])
    if is_factory(source):
        return Source("factory", source)
    return Source("timm", source)


def _calibration(calib_data: Any, example: torch.Tensor, batches: int, model: nn.Module):
    """Taylor's batches: given batches, a folder of images, or synthetic noise shaped like the example."""
    if calib_data is None:
        raise IsodeployError("importance='taylor' needs calib_data=: batches of (images, labels), a folder of images, or 'synthetic'")
    if isinstance(calib_data, (str, Path)):
        from isodeploy.pruning.calib import calibration_batches

        meta = getattr(model, "_isodeploy_input", {}) or {}
        size = tuple(example.shape[1:])
        return calibration_batches(str(calib_data), size, tuple(meta.get("mean", (0.485, 0.456, 0.406))),
                                   tuple(meta.get("std", (0.229, 0.224, 0.225))), batches)
    return calib_data
