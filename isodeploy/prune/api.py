"""The pruning pipeline as one call: group → score → plan → apply → spec.

Used by ``isodeploy prune``, ``prune-export`` and the benchmarks; import it from Python as
``isodeploy.prune.api.prune_model``.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import torch

from isodeploy import __version__
from isodeploy.errors import IsodeployError
from isodeploy.graph.analysis import Grouping, analyze
from isodeploy.prune.apply import apply_keep
from isodeploy.prune.importance import IMPORTANCES, magnitude, random_scores, taylor
from isodeploy.prune.plan import KIND_FIELDS, PruneConfig, PrunePlan, make_plan
from isodeploy.prune.spec import SCHEMA_VERSION, write_folder
from isodeploy.zoo import LoadedModel

Progress = Callable[[str], None]


@dataclass
class ClassSummary:
    """One isomorphic class before → after, for people and for the spec."""

    id: int
    kind: str
    signature: str
    groups: int
    width_before: int
    width_after: int
    widths_after: list[int] = field(default_factory=list)


@dataclass
class PruneResult:
    loaded: LoadedModel  # the pruned model, ready to use
    grouping: Grouping
    plan: PrunePlan
    config: PruneConfig
    spec: dict[str, Any]
    classes: list[ClassSummary]
    seconds: dict[str, float]


def config_from_recipe(recipe_name: str | None, overrides: dict[str, Any]) -> PruneConfig:
    """Start from a preset recipe (if any) and apply explicit options on top."""
    base = PruneConfig()
    if recipe_name:
        from isodeploy.presets_store import get_recipe

        recipe = get_recipe(recipe_name)
        fields = {k: getattr(recipe, k) for k in ("ratio", *KIND_FIELDS.values()) if getattr(recipe, k) is not None}
        base = replace(base, preset=recipe_name, **fields)
    explicit = {k: v for k, v in overrides.items() if v is not None}
    return replace(base, **explicit)


def check_family(grouping: Grouping, recipe_name: str | None) -> None:
    """A transformer recipe on a model without attention is a mistake worth one clear line."""
    if not recipe_name:
        return
    from isodeploy.presets_store import get_recipe

    recipe = get_recipe(recipe_name)
    kinds = {g.kind for g in grouping.groups}
    if recipe.family in ("vit", "swin") and not {"heads", "head_dim"} & kinds:
        raise IsodeployError(f"preset '{recipe_name}' is for {recipe.family} models, but {grouping.model} has no attention heads; "
                             "pick a CNN preset or use --ratio")


def score(model: torch.nn.Module, grouping: Grouping, cfg: PruneConfig, loaded: LoadedModel,
          calib_data: str | None, calib_batches: int, progress: Progress | None) -> dict[int, torch.Tensor]:
    if cfg.importance == "magnitude":
        return magnitude(model, grouping, cfg.norm)
    if cfg.importance == "random":
        return random_scores(grouping)
    if cfg.importance == "taylor":
        from isodeploy.prune.calib import calibration_batches

        batches = calibration_batches(calib_data or "synthetic", loaded.input_size, loaded.mean, loaded.std, calib_batches)
        return taylor(model, grouping, batches, (lambda i: progress(f"taylor batch {i}/{calib_batches}")) if progress else None)
    raise IsodeployError(f"--importance must be one of {', '.join(IMPORTANCES)}; got '{cfg.importance}'")


def summarize(grouping: Grouping, plan: PrunePlan) -> list[ClassSummary]:
    out = []
    for iso in grouping.classes:
        groups = grouping.groups_of(iso)
        after = [plan.widths_after[g.id] for g in groups]
        out.append(ClassSummary(id=iso.id, kind=iso.kind, signature=iso.signature, groups=len(groups),
                                width_before=sum(g.width for g in groups), width_after=sum(after), widths_after=after))
    return out


def prune_model(loaded: LoadedModel, cfg: PruneConfig, *, calib_data: str | None = None, calib_batches: int = 8,
                strict: bool = False, progress: Progress | None = None) -> PruneResult:
    """Prune a copy of ``loaded.model`` by ``cfg``; the original is left untouched."""
    say = progress or (lambda _msg: None)
    cfg.validate()
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    say("tracing with torch.export and grouping channels")
    grouping = analyze(loaded.model, loaded.example_input(2), name=loaded.timm_name, strict=strict)
    check_family(grouping, cfg.preset)
    times["grouping"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    model = copy.deepcopy(loaded.model)
    say(f"scoring channels ({cfg.importance})")
    scores = score(model, grouping, cfg, loaded, calib_data, calib_batches, progress)
    times["importance"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    say(f"planning ({cfg.ranking} ranking, round to {cfg.round_to})")
    plan = make_plan(grouping, scores, cfg)
    times["plan"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    say("slicing parameters")
    changes = apply_keep(model, grouping, plan.keep)
    model.eval()
    times["apply"] = time.perf_counter() - t0
    classes = summarize(grouping, plan)
    spec = build_spec(loaded, grouping, plan, cfg, changes, classes, scores)
    pruned = replace(loaded, model=model, weights=loaded.weights)
    return PruneResult(loaded=pruned, grouping=grouping, plan=plan, config=cfg, spec=spec, classes=classes, seconds=times)


def build_spec(loaded: LoadedModel, grouping: Grouping, plan: PrunePlan, cfg: PruneConfig, changes, classes, scores) -> dict:
    import timm

    return {
        "schema": SCHEMA_VERSION,
        "isodeploy_version": __version__,
        "source": {
            "timm": loaded.timm_name,
            "timm_version": timm.__version__,
            "torch_version": torch.__version__,
            "create_kwargs": loaded.create_kwargs,
            "input_size": list(loaded.input_size),
            "mean": list(loaded.mean),
            "std": list(loaded.std),
            "weights": loaded.weights,
            "alias": loaded.alias.name if loaded.alias else None,
        },
        "config": asdict(cfg),
        "macs": {"before": plan.macs_before, "after": plan.macs_after, "unrounded": plan.macs_unrounded,
                 "rounding_cost": plan.macs_after - plan.macs_unrounded},
        "params": {"before": plan.params_before, "after": plan.params_after},
        "target_scale": plan.scale,
        "classes": [asdict(c) for c in classes],
        "groups": [
            {"id": g.id, "class": g.class_id, "kind": g.kind, "width": g.width, "kept_width": plan.widths_after[g.id],
             "heads": list(g.heads) if g.heads else None, "params": g.params,
             "kept": plan.keep.get(g.id, list(range(g.width))),
             "importance": [round(float(v), 6) for v in scores[g.id].tolist()]}
            for g in grouping.groups
        ],
        "modules": [asdict(c) for c in changes],
        "unprunable": [asdict(u) for u in grouping.unprunable],
    }


def save_pruned(result: PruneResult, folder: Path, force: bool = False) -> Path:
    return write_folder(Path(folder), result.loaded.model, result.spec, force=force)
