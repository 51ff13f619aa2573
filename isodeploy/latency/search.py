"""Prune to a measured latency budget: table (cached) → solver → checked prune → measure → one correction.

:func:`prune_to_latency` wraps :func:`~isodeploy.pruning.pruner.prune_module` with a planner that
chooses each class's cut from the latency table, then exports the pruned model and times it against
the dense model with the bench's adaptive protocol. If the measured latency misses the budget by more
than 5 % (either way: too slow breaks the budget, too fast wastes capacity), the solver runs once
more with the target divided by the measured ÷ predicted error, and the closer of the two is kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from isodeploy.core.errors import IsodeployError
from isodeploy.graph.analysis import Grouping
from isodeploy.latency import cache
from isodeploy.latency.build import build_table
from isodeploy.latency.settings import LatencySettings
from isodeploy.latency.solver import BINS, Option, class_options, predict, solve
from isodeploy.latency.table import LatencyTable
from isodeploy.pruning.plan import PruneConfig, PrunePlan, plan_for_classes

TOLERANCE = 0.05  # a measured miss beyond this runs the corrective step


@dataclass(frozen=True)
class TableUse:
    """A table and how this run came by it."""

    table: LatencyTable
    file: Path | None  # where it is stored (None: not cached)
    reused: bool


@dataclass(frozen=True)
class Decision:
    """What the planner knew when it made one plan: the report describes the plan the prune kept
    (not, say, an attention-tie retry it dropped) by looking its decision up."""

    predicted: float
    chosen: dict[int, Option]
    table: TableUse


@dataclass
class _State:
    """What the planner learns across calls (the self-check's re-plans, the corrective step)."""

    settings: LatencySettings
    measurer: Any
    say: Callable[[str], None]
    model: torch.nn.Module
    target: float | None = None  # the solver's target ratio (the budget, or the corrected one)
    tables: dict[str, TableUse] = field(default_factory=dict)  # fingerprint key → table
    decisions: dict[int, Decision] = field(default_factory=dict)  # id(plan) → its decision

    def decision(self, plan: PrunePlan) -> Decision:
        return self.decisions[id(plan)]


def _fingerprint(state: _State, grouping: Grouping, cfg: PruneConfig, name: str, example: torch.Tensor) -> dict[str, Any]:
    m = state.measurer
    return cache.fingerprint(model=name, structure=cache.structure_digest(grouping, list(example.shape[1:])), runtime=m.runtime,
                             runtime_version=m.runtime_version, device=m.device, processor=m.processor, cores=m.cores, threads=m.threads,
                             batch=m.batch, precision=m.precision, grid=list(state.settings.grid), round_to=cfg.round_to,
                             max_group_ratio=cfg.max_group_ratio)


def _table(state: _State, grouping: Grouping, scores: dict, cfg: PruneConfig, frozen: frozenset[int], name: str,
           example: torch.Tensor) -> TableUse:
    fp = _fingerprint(state, grouping, cfg, name, example)
    key = cache.key_of(fp)
    if key in state.tables:  # the self-check's re-plans, an attention-tie retry, the corrective step
        return state.tables[key]
    s = state.settings
    path = s.table_path or cache.cache_file(fp)
    table = cache.load_table(path, fp, explicit=s.table_path is not None) if (s.use_cache or s.table_path) else None
    reused = table is not None
    if reused:
        state.say(f"latency table: reusing {path} (built in {table.build_seconds:.0f} s, {table.measurements} measurements)")
    else:
        state.say(f"latency table: timing {len(grouping.classes)} classes × {len(s.grid)} widths on {state.measurer.runtime} "
                  f"(batch {state.measurer.batch}, {state.measurer.threads} threads)")
        table = build_table(state.model, grouping, scores, cfg, state.measurer, key=key, fingerprint=fp, grid=s.grid, frozen=frozen,
                            say=state.say)
        busy = bool(table.load and table.load.get("busy"))
        if busy:
            state.say(f"warning: the machine was busy while the latency table was timed (other processes used "
                      f"{table.load['other_cores']:.2f} of {table.load['cores']} cores): "
                      + ("it is written as asked, but its steps may be off" if s.table_path else "not cached, so the next run times it again"))
        failed = [c for c in table.classes if c.unmeasurable and not c.unmeasurable.startswith("frozen")]
        if failed and not s.table_path:
            state.say(f"warning: {len(failed)} class(es) could not be timed cut ({failed[0].unmeasurable}); they stay dense "
                      "and the table is not cached, so the next run tries again")
        if s.table_path or (s.use_cache and not busy and not failed):
            try:
                cache.save_table(path, table)
                state.say(f"latency table: saved {path} ({table.build_seconds:.0f} s, {table.measurements} measurements)")
            except IsodeployError as exc:
                if s.table_path:
                    raise
                state.say(f"warning: the latency table is not cached ({exc}); set ISODEPLOY_CACHE_DIR to a writable folder")
                path = None
        else:
            path = None
    use = TableUse(table, path if (s.use_cache or s.table_path) else None, reused)
    state.tables[key] = use
    return use


def _loss_of(grouping: Grouping, scores: dict, cfg: PruneConfig, class_id: int, params0: int, frozen: frozenset[int]):
    """(loss, real width) of cutting the class to ``keep``: the loss is parameters removed × (importance share
    removed ÷ channel share removed) within the class; the width is what the plan's rounding really leaves."""
    iso = next(c for c in grouping.classes if c.id == class_id)
    total = sum(float(scores[i].abs().sum()) for i in iso.group_ids) or 1.0
    width = sum(grouping.groups[i].width for i in iso.group_ids)

    def loss(keep: float) -> tuple[float, int]:
        plan = plan_for_classes(grouping, scores, cfg, {class_id: 1.0 - keep}, frozen)
        real = sum(plan.widths_after[i] for i in iso.group_ids)
        removed_imp = removed_ch = 0.0
        for i in iso.group_ids:
            kept = set(plan.keep.get(i, range(grouping.groups[i].width)))
            s = scores[i].abs()
            gone = [j for j in range(grouping.groups[i].width) if j not in kept]
            removed_ch += len(gone)
            removed_imp += float(s[gone].sum()) if gone else 0.0
        if removed_ch == 0:
            return 0.0, real
        share = (removed_imp / total) / (removed_ch / width)
        return max(0, params0 - plan.params_after) * share, real

    return loss


def choose(table: LatencyTable, grouping: Grouping, scores: dict, cfg: PruneConfig, target: float,
           frozen: frozenset[int] = frozenset()) -> tuple[PrunePlan, float, dict[int, Option]]:
    """The least-loss per-class cuts whose predicted latency ratio is ≤ ``target`` (and MACs ≤ ``cfg.target_macs``)."""
    frozen_classes = {iso.id for iso in grouping.classes if any(i in frozen for i in iso.group_ids)}
    known = {iso.id for iso in grouping.classes}
    options: dict[int, list[Option]] = {}
    for ct in table.classes:
        if ct.class_id in frozen_classes or ct.class_id not in known or ct.unmeasurable or not ct.steps:
            continue
        options[ct.class_id] = class_options(ct, table.dense_macs, _loss_of(grouping, scores, cfg, ct.class_id, table.dense_params, frozen),
                                             table.noise)
    need = 1.0 - target
    best_reached = None
    for _ in range(40):
        chosen = solve(options, need)
        if chosen is None:
            break
        ratios = {cid: 1.0 - o.keep for cid, o in chosen.items() if o.keep < 1.0}
        plan = plan_for_classes(grouping, scores, cfg, ratios, frozen)
        pred = predict(table, chosen, plan.macs_after)
        best_reached = pred if best_reached is None else min(best_reached, pred)
        macs_ok = cfg.target_macs is None or plan.macs_after <= cfg.target_macs * 1.01
        if pred <= target + 0.5 / BINS and macs_ok:
            return plan, pred, chosen
        need += max(pred - target, 0.0) + (0.01 if not macs_ok else 0.0) + 1.0 / BINS
    deepest = f"{best_reached:.3g}× dense" if best_reached is not None else "nothing"
    also = " and --target-macs" if cfg.target_macs is not None else ""
    raise IsodeployError(f"--target-latency {target:.3g}× dense{also} is out of reach: the deepest cuts the table allows reach {deepest} "
                         f"(--max-group-ratio {cfg.max_group_ratio}); pass a larger budget or raise --max-group-ratio")


def planner_for(state: _State, name: str, example: torch.Tensor):
    """The planner :func:`prune_module` calls: table (built once, cached), then :func:`choose` at the state's target."""

    def plan(grouping: Grouping, scores: dict, cfg: PruneConfig, frozen: frozenset[int] = frozenset()) -> PrunePlan:
        use = _table(state, grouping, scores, cfg, frozen, name, example)
        if state.target is None:
            state.target = state.settings.budget.fraction_of(use.table.dense_ms)
        result, predicted, chosen = choose(use.table, grouping, scores, cfg, state.target, frozen)
        state.decisions[id(result)] = Decision(predicted, chosen, use)
        state.say(f"latency solver: predicted {predicted:.3f}× dense for a target of {state.target:.3f}×")
        return result

    return plan
