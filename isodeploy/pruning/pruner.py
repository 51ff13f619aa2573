"""The pruning pipeline as one call: group → score → plan → checked apply → spec.

:func:`prune_module` works on any traceable ``nn.Module``; :func:`prune_model` is its form for a
:class:`~isodeploy.zoo.LoadedModel` (the CLI, the pipeline, the benchmarks). The public
``isodeploy.prune`` wraps :func:`prune_module` with keyword arguments.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from torch import nn

from isodeploy.core.version import __version__
from isodeploy.core.errors import IsodeployError
from isodeploy.graph.analysis import Grouping, analyze
from isodeploy.pruning.checked_apply import FrozenClass, apply_checked
from isodeploy.pruning.importance import Importance, check_scores, importance_from
from isodeploy.pruning.plan import KIND_FIELDS, PruneConfig, PrunePlan, make_plan
from isodeploy.pruning.spec import SCHEMA_VERSION, tied_names, write_folder
from isodeploy.zoo import LoadedModel
from isodeploy.zoo.sources import Source, source_of

Progress = Callable[[str], None]
Planner = Callable[[Grouping, dict, PruneConfig, frozenset], PrunePlan]


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
    frozen: str | None = None  # why the self-check kept this class dense


@dataclass
class PruneResult:
    """What a prune produced: the pruned copy (the input is left untouched) and how it was decided."""

    model: nn.Module
    grouping: Grouping
    plan: PrunePlan
    config: PruneConfig
    spec: dict[str, Any]
    classes: list[ClassSummary]
    frozen: list[FrozenClass]
    seconds: dict[str, float]
    loaded: LoadedModel | None = None  # set when the dense model came through the zoo

    @property
    def summary(self) -> dict[str, Any]:
        """MACs, params, per-class widths and what was frozen, as plain JSON-able data."""
        return {k: v for k, v in self.spec.items() if k not in ("groups", "modules")}


def config_from_recipe(recipe_name: str | None, overrides: dict[str, Any]) -> PruneConfig:
    """Start from a preset recipe (if any) and apply explicit options on top."""
    base = PruneConfig()
    if recipe_name:
        from isodeploy.zoo.presets import get_recipe

        recipe = get_recipe(recipe_name)
        fields = {k: getattr(recipe, k) for k in ("ratio", *KIND_FIELDS.values()) if getattr(recipe, k) is not None}
        base = replace(base, preset=recipe_name, **fields)
    explicit = {k: v for k, v in overrides.items() if v is not None}
    return replace(base, **explicit)


def check_family(grouping: Grouping, recipe_name: str | None) -> None:
    """A transformer recipe on a model without attention is a mistake worth one clear line."""
    if not recipe_name:
        return
    from isodeploy.zoo.presets import get_recipe

    recipe = get_recipe(recipe_name)
    kinds = {g.kind for g in grouping.groups}
    if recipe.family in ("vit", "swin") and not {"heads", "head_dim"} & kinds:
        raise IsodeployError(f"preset '{recipe_name}' is for {recipe.family} models, but {grouping.model} has no attention heads; "
                             "pick a CNN preset or use --ratio")


def summarize(grouping: Grouping, plan: PrunePlan, frozen: list[FrozenClass] = ()) -> list[ClassSummary]:
    why = {f.class_id: f.reason for f in frozen}
    out = []
    for iso in grouping.classes:
        groups = grouping.groups_of(iso)
        after = [plan.widths_after[g.id] for g in groups]
        out.append(ClassSummary(id=iso.id, kind=iso.kind, signature=iso.signature, groups=len(groups),
                                width_before=sum(g.width for g in groups), width_after=sum(after), widths_after=after,
                                frozen=why.get(iso.id)))
    return out


def example_batch(example_inputs: Any) -> torch.Tensor:
    """The example input as one tensor of batch ≥ 2 (torch.export specialises size-1 dims)."""
    if isinstance(example_inputs, (tuple, list)):
        if len(example_inputs) != 1:
            raise IsodeployError(f"example_inputs= must be one tensor (models with one image input); got {len(example_inputs)} inputs")
        example_inputs = example_inputs[0]
    if not isinstance(example_inputs, torch.Tensor):
        raise IsodeployError(f"example_inputs= must be a torch.Tensor such as torch.randn(2, 3, 224, 224); "
                             f"got {type(example_inputs).__name__}")
    if example_inputs.dim() == 0 or example_inputs.shape[0] == 0:
        raise IsodeployError(f"example_inputs= needs a batch dim; got shape {tuple(example_inputs.shape)}")
    if example_inputs.shape[0] < 2:
        example_inputs = example_inputs.expand(2, *example_inputs.shape[1:]).contiguous()
    return example_inputs.detach()


def check_example(model: nn.Module, example: torch.Tensor) -> list[int] | None:
    """Run the dense model once, so inputs that don't fit fail here, naming the parameter, not in the
    trace; returns the output shape per sample (None for non-tensor outputs)."""
    from isodeploy.core.finite import check_finite_weights

    check_finite_weights(list(model.named_parameters()) + list(model.named_buffers()), "the model to prune")
    try:
        with torch.no_grad():
            out = model(example)
    except Exception as exc:  # the model's own shape checks raise many types
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise IsodeployError(f"example_inputs= of shape {tuple(example.shape)} do not fit the model "
                             f"({type(exc).__name__}: {first[:160]})") from exc
    if isinstance(out, torch.Tensor) and out.is_floating_point() and not torch.isfinite(out).all():
        raise IsodeployError(f"the model to prune answers NaN/inf on example_inputs= of shape {tuple(example.shape)}; "
                             "the self-check cannot tell a broken pruned copy from it")
    return list(out.shape[1:]) if isinstance(out, torch.Tensor) else None


def prune_module(model: nn.Module, example: Any, cfg: PruneConfig, *, importance: "str | Importance | None" = None,
                 data: Iterable | None = None, strict: bool = False, progress: Progress | None = None,
                 name: str | None = None, input_meta: dict[str, Any] | None = None, verify: bool = True,
                 tie_attention: frozenset[str] = frozenset(), planner: Planner | None = None) -> PruneResult:
    """Prune a copy of any traceable ``model`` by ``cfg``; the original is left untouched.

    ``data`` feeds data-driven importances (Taylor). ``verify`` re-traces the pruned copy (the
    forward check always runs). Classes whose pruning breaks the model are frozen and reported.
    ``planner`` replaces :func:`make_plan` (the latency solver plugs in here); it is called again,
    with the frozen group ids, when the self-check freezes a class.
    """
    plan_fn: Planner = planner or make_plan
    say = progress or (lambda _msg: None)
    cfg.validate()
    example = example_batch(example)
    if data is not None and not isinstance(data, (list, tuple)):
        data = list(data)  # a generator would be spent by the first scoring, and a retry scores again
    name = name or type(model).__name__
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    say("tracing with torch.export and grouping channels")
    was_training = model.training
    model.eval()
    try:
        output_shape = check_example(model, example)
        grouping = analyze(model, example, name=name, strict=strict, tie_attention=tie_attention)
        check_family(grouping, cfg.preset)
        times["grouping"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        method = importance_from(importance if importance is not None else cfg.importance, cfg.norm)
        cfg = replace(cfg, importance=getattr(method, "name", type(method).__name__))
        say(f"scoring channels ({cfg.importance})")
        # A data-driven importance runs backward passes: on a copy, so the user's model keeps its grads.
        scored = copy.deepcopy(model) if data is not None else model
        scores = check_scores(method.scores(scored, grouping, data), grouping, cfg.importance)
        times["importance"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        say(f"planning ({cfg.ranking} ranking, round to {cfg.round_to})")
        plan = plan_fn(grouping, scores, cfg, frozenset())
        times["plan"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        say("slicing parameters and checking the pruned copy")
        checked = apply_checked(model, grouping, example, plan, lambda frozen: plan_fn(grouping, scores, cfg, frozenset(frozen)),
                                strict=strict, retrace=verify, say=say, output_shape=output_shape)
        times["apply"] = time.perf_counter() - t0
    finally:
        model.train(was_training)
    pruned = checked.model.eval()
    plan = checked.plan
    classes = summarize(grouping, plan, checked.frozen)
    meta = dict(input_meta or getattr(model, "_isodeploy_input", None) or {})
    meta["input_size"] = list(example.shape[1:])
    spec = build_spec(source_of(model), meta, grouping, plan, cfg, checked, classes, scores, output_shape, pruned)
    _inherit_source(pruned, model)
    if not hasattr(pruned, "_isodeploy_input"):  # the pruned module knows its input, for export and verify
        object.__setattr__(pruned, "_isodeploy_input", {"input_size": list(example.shape[1:])})
    result = PruneResult(model=pruned, grouping=grouping, plan=plan, config=cfg, spec=spec, classes=classes,
                         frozen=checked.frozen, seconds=times)
    ties = _attention_to_tie(model, grouping, checked.frozen) - set(tie_attention)
    if ties:  # the self-check blamed attention code that derives head widths from its input: tie and retry
        say(f"attention at {len(ties)} module(s) derives its head width from its input; retrying with that tie")
        retry = prune_module(model, example, cfg, importance=importance, data=data, strict=strict, progress=progress, name=name,
                             input_meta=input_meta, verify=verify, tie_attention=frozenset(tie_attention) | ties, planner=planner)
        if retry.plan.macs_after < result.plan.macs_after or len(retry.frozen) < len(result.frozen):
            retry.spec["tied_attention"] = sorted(frozenset(tie_attention) | ties)
            return retry
    return result


def _attention_to_tie(model: nn.Module, grouping: Grouping, frozen: list[FrozenClass]) -> set[str]:
    """Attention modules of the types the self-check blamed for a frozen attention or embedding class."""
    attention = grouping.prop.attention
    blamed = set()
    for f in frozen:
        # the attention module itself, or the nearest one around the blamed module (SegFormer's sequence_reduction)
        inside = [p for p in attention if p == f.module or (p and f.module.startswith(p + "."))]
        if f.kind in ("embedding", "heads", "head_dim", "hidden") and inside:
            owner = max(inside, key=len)
            blamed.add(type(model.get_submodule(owner)) if owner else type(model))
    return {p for p in attention if p and type(model.get_submodule(p)) in blamed}


def _inherit_source(pruned: nn.Module, dense: nn.Module) -> None:
    for attr in ("_isodeploy_source", "_isodeploy_input"):
        if hasattr(dense, attr):
            object.__setattr__(pruned, attr, getattr(dense, attr))


def prune_model(loaded: LoadedModel, cfg: PruneConfig, *, calib_data: str | None = None, calib_batches: int = 8,
                strict: bool = False, progress: Progress | None = None, prune_fn: Callable[..., PruneResult] | None = None) -> PruneResult:
    """Prune a copy of ``loaded.model`` by ``cfg`` (calibration images from ``calib_data`` for Taylor).

    ``prune_fn`` replaces :func:`prune_module` (same arguments): the latency-budget prune plugs in here."""
    data = None
    if cfg.importance == "taylor":
        from isodeploy.pruning.calib import calibration_batches

        data = calibration_batches(calib_data or "synthetic", loaded.input_size, loaded.mean, loaded.std, calib_batches)
    meta = {"input_size": list(loaded.input_size), "mean": list(loaded.mean), "std": list(loaded.std),
            "weights": loaded.weights, "alias": loaded.alias.name if loaded.alias else None}
    result = (prune_fn or prune_module)(loaded.model, loaded.example_input(2), cfg, data=data, strict=strict, progress=progress,
                                        name=loaded.timm_name, input_meta=meta)
    result.loaded = replace(loaded, model=result.model, weights=loaded.weights)
    return result


def build_spec(source: Source | None, meta: dict[str, Any], grouping: Grouping, plan: PrunePlan, cfg: PruneConfig,
               checked, classes: list[ClassSummary], scores, output_shape, pruned: nn.Module) -> dict:
    import timm

    return {
        "schema": SCHEMA_VERSION,
        "isodeploy_version": __version__,
        "source": source_record(source, meta),
        "config": asdict(cfg),
        "macs": {"before": plan.macs_before, "after": plan.macs_after, "unrounded": plan.macs_unrounded,
                 "rounding_cost": plan.macs_after - plan.macs_unrounded},
        "params": {"before": plan.params_before, "after": plan.params_after},
        "target_scale": plan.scale,
        "output_shape": output_shape,
        "classes": [asdict(c) for c in classes],
        "frozen_classes": [asdict(f) for f in checked.frozen],
        "self_check": {"attempts": checked.attempts, "retraced": checked.retraced, "seconds": round(checked.seconds, 3)},
        "versions": {"timm": timm.__version__, "torch": torch.__version__},
        "groups": [
            {"id": g.id, "class": g.class_id, "kind": g.kind, "width": g.width, "kept_width": plan.widths_after[g.id],
             "heads": list(g.heads) if g.heads else None, "params": g.params,
             "kept": plan.keep.get(g.id, list(range(g.width))),
             "importance": [round(float(v), 6) for v in scores[g.id].tolist()]}
            for g in grouping.groups
        ],
        "modules": [asdict(c) for c in checked.changes],
        "tied": tied_names(pruned),
        "unprunable": [asdict(u) for u in grouping.unprunable],
    }


def source_record(source: Source | None, meta: dict[str, Any]) -> dict[str, Any]:
    """The spec's ``source``: kind, name, kwargs (schema 2) plus the schema-1 keys for timm sources."""
    source = source or Source()
    record = {"kind": source.kind, "name": source.name, "kwargs": _plain(source.kwargs)}
    if source.kind == "timm":
        record.update({"timm": source.name, "create_kwargs": _plain(source.kwargs)})
    record.update({k: v for k, v in meta.items() if v is not None or k == "alias"})
    return record


def _plain(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in kwargs.items()}


def with_source(result: PruneResult, source: Source) -> PruneResult:
    """The same result, recording ``source`` as where the dense model comes from."""
    meta = {k: v for k, v in result.spec["source"].items() if k not in ("kind", "name", "kwargs", "timm", "create_kwargs")}
    spec = dict(result.spec, source=source_record(source, meta))
    return replace(result, spec=spec)


def save_pruned(result: PruneResult, folder: Path, force: bool = False) -> Path:
    return write_folder(Path(folder), result.model, result.spec, force=force)
