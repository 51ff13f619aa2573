"""Turn importance scores and ratios into a :class:`PrunePlan`: which channels each group keeps.

Ranking modes (the method: docs/grouper.md §5):
- ``isomorphic`` (default): channels compete only with channels of groups in the same class; each
  class removes its own ratio. Heads and head dims are ranked across all blocks of their class.
- ``global``: all channels of all classes compete (the biased baseline of the paper); it removes the
  same total number of channels as ``isomorphic`` would.
- ``local``: every group removes the same fraction (uniform width reduction).
Widths are then rounded for hardware (multiples of ``round_to``; head dims ≥ 16).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

import torch

from isodeploy.core.errors import IsodeployError, ParameterError
from isodeploy.graph.analysis import Grouping
from isodeploy.pruning.cost import plan_cost

RANKINGS = ("isomorphic", "global", "local")
KIND_FIELDS = {"embedding": "embed_ratio", "hidden": "mlp_ratio", "heads": "head_ratio", "head_dim": "head_dim_ratio"}
MIN_HEAD_DIM = 16


@dataclass
class PruneConfig:
    """Everything that decides a plan, as the user gave it (ratios are fractions removed)."""

    ratio: float | None = None
    embed_ratio: float | None = None
    mlp_ratio: float | None = None
    head_ratio: float | None = None
    head_dim_ratio: float | None = None
    ranking: str = "isomorphic"
    importance: str = "magnitude"
    norm: str = "l2"
    round_to: int = 8
    max_group_ratio: float = 0.9
    target_macs: float | None = None
    preset: str | None = None

    def ratio_for(self, kind: str) -> float:
        specific = getattr(self, KIND_FIELDS[kind])
        value = specific if specific is not None else self.ratio
        return 0.0 if value is None else float(value)

    def validate(self) -> None:
        """Errors name the parameter as the API spells it (``ratio=``); the CLI shows its flag."""
        for name in ("ratio", *KIND_FIELDS.values()):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value < 1.0:
                raise ParameterError(name, f"must be in [0, 1) (a fraction removed); got {value}")
        if not 0.0 <= self.max_group_ratio < 1.0:
            raise ParameterError("max_group_ratio", f"must be in [0, 1); got {self.max_group_ratio}")
        if self.ranking not in RANKINGS:
            raise ParameterError("ranking", f"must be one of {', '.join(RANKINGS)}; got '{self.ranking}'")
        if not isinstance(self.round_to, int) or self.round_to < 1:
            raise ParameterError("round_to", f"must be an integer ≥ 1; got {self.round_to}")
        if self.target_macs is not None and not (math.isfinite(self.target_macs) and self.target_macs > 0):
            raise ParameterError("target_macs", f"must be a positive number of MACs; got {self.target_macs}")


@dataclass
class PrunePlan:
    """The decision: kept channel indices per group, with its cost before and after."""

    keep: dict[int, list[int]]
    widths_before: dict[int, int]
    widths_after: dict[int, int]
    macs_before: int
    macs_after: int
    params_before: int
    params_after: int
    macs_unrounded: int
    scale: float = 1.0  # ratio multiplier found by --target-macs (1.0 otherwise)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _min_keep(width: int, max_group_ratio: float) -> int:
    return max(1, math.ceil(width * (1.0 - max_group_ratio) - 1e-9))


def _removal_counts(grouping: Grouping, scores: dict[int, torch.Tensor], cfg: PruneConfig, scale: float,
                    frozen: frozenset[int] = frozenset(), class_ratios: dict[int, float] | None = None) -> dict[int, int]:
    """How many channels each group keeps before rounding; ``frozen`` groups keep all.

    ``class_ratios`` (class id → fraction removed) replaces the per-kind ratios: the latency solver
    chooses how much each class gives up, while the ranking inside a class stays the isomorphic one."""
    keep = {g.id: g.width for g in grouping.groups}
    floors = {g.id: _min_keep(g.width, cfg.max_group_ratio) for g in grouping.groups}
    if cfg.ranking == "local":
        for g in grouping.groups:
            if g.id in frozen:
                continue
            remove = int(round(cfg.ratio_for(g.kind) * scale * g.width))
            if g.width - remove < floors[g.id]:
                raise IsodeployError(
                    f"the recipe would remove {remove} of {g.width} channels of group {g.id} ({g.params[0]}); "
                    "lower the ratio or raise --max-group-ratio")
            keep[g.id] = g.width - remove
        return keep
    pools: list[tuple[int, list[int]]] = []  # (channels to remove, group ids competing)
    for iso in grouping.classes:
        members = [i for i in iso.group_ids if i not in frozen]
        total = sum(grouping.groups[i].width for i in members)
        if members:
            ratio = class_ratios.get(iso.id, 0.0) if class_ratios is not None else cfg.ratio_for(iso.kind) * scale
            pools.append((int(round(ratio * total)), members))
    if cfg.ranking == "global":
        pools = [(sum(n for n, _ in pools), [g.id for g in grouping.groups if g.id not in frozen])]
    for n_remove, group_ids in pools:
        if n_remove <= 0:
            continue
        candidates = torch.cat([scores[i] for i in group_ids])
        owners = torch.cat([torch.full((grouping.groups[i].width,), i, dtype=torch.long) for i in group_ids])
        removed = 0
        for idx in torch.argsort(candidates, stable=True).tolist():
            gid = int(owners[idx])
            if keep[gid] > floors[gid]:
                keep[gid] -= 1
                removed += 1
                if removed == n_remove:
                    break
        if removed < n_remove:
            raise IsodeployError(
                f"the recipe would remove {n_remove} channels from groups {group_ids[:3]}… but every group is at its "
                f"floor after {removed}; lower the ratio or raise --max-group-ratio")
    return keep


def _round(grouping: Grouping, counts: dict[int, int], round_to: int, max_group_ratio: float) -> dict[int, int]:
    """Hardware-aligned widths: multiples of ``round_to``, head dims ≥ 16; heads are counts, not rounded.
    Rounding never takes a group below its ``--max-group-ratio`` floor."""
    out = {}
    for g in grouping.groups:
        k = counts[g.id]
        if g.kind == "heads" or round_to == 1 or k == g.width:
            out[g.id] = k
            continue
        step = round_to
        if g.width % step != 0:  # a width that was never aligned stays as the ranking left it
            out[g.id] = k
            continue
        floor = int(math.ceil(_min_keep(g.width, max_group_ratio) / step)) * step
        rounded = max(step, floor, int(round(k / step)) * step)
        if g.kind == "head_dim" and g.width >= MIN_HEAD_DIM:
            rounded = max(rounded, int(math.ceil(MIN_HEAD_DIM / step)) * step)
        out[g.id] = min(rounded, g.width)
    return out


def _top_channels(scores: torch.Tensor, k: int) -> list[int]:
    order = torch.argsort(scores, descending=True, stable=True)[:k]
    return sorted(order.tolist())


def _plan_at(grouping: Grouping, scores: dict[int, torch.Tensor], cfg: PruneConfig, scale: float, base: tuple[int, int],
             frozen: frozenset[int] = frozenset(), class_ratios: dict[int, float] | None = None) -> PrunePlan:
    counts = _removal_counts(grouping, scores, cfg, scale, frozen, class_ratios)
    rounded = _round(grouping, counts, cfg.round_to, cfg.max_group_ratio)
    unrounded_macs, _ = plan_cost(grouping, {g.atom: counts[g.id] for g in grouping.groups})
    macs, params = plan_cost(grouping, {g.atom: rounded[g.id] for g in grouping.groups})
    keep = {g.id: _top_channels(scores[g.id], rounded[g.id]) for g in grouping.groups if rounded[g.id] < g.width}
    return PrunePlan(keep=keep, widths_before={g.id: g.width for g in grouping.groups}, widths_after=rounded,
                     macs_before=base[0], macs_after=macs, params_before=base[1], params_after=params,
                     macs_unrounded=unrounded_macs, scale=scale)


def make_plan(grouping: Grouping, scores: dict[int, torch.Tensor], cfg: PruneConfig,
              frozen: frozenset[int] | set[int] = frozenset()) -> PrunePlan:
    """The plan for ``cfg``; with ``target_macs`` the ratios are scaled until MACs land within 1 %.

    ``frozen`` group ids keep every channel (classes the self-check found unsafe to prune).
    """
    cfg.validate()
    frozen = frozenset(frozen)
    base = plan_cost(grouping, {})
    if cfg.target_macs is None:
        return _plan_at(grouping, scores, cfg, 1.0, base, frozen)
    if all(cfg.ratio_for(k) == 0 for k in KIND_FIELDS):
        # No ratios given: search one ratio shared by every class (the scale multiplies 0.5).
        cfg = replace(cfg, ratio=0.5)
    target = cfg.target_macs
    if target >= base[0]:
        raise IsodeployError(f"--target-macs {target / 1e9:.3g}G is not below the dense model's {base[0] / 1e9:.3g}G")
    # The scale multiplies every class ratio; the largest keeps every ratio below 1.
    top = 0.999 / max(cfg.ratio_for(k) for k in KIND_FIELDS)
    low, high, best = 0.0, top, None
    for _ in range(40):
        mid = (low + high) / 2
        try:
            plan = _plan_at(grouping, scores, cfg, mid, base, frozen)
        except IsodeployError:
            high = mid
            continue
        if best is None or abs(plan.macs_after - target) < abs(best.macs_after - target):
            best = plan
        if abs(plan.macs_after - target) <= 0.01 * target:
            return plan
        if plan.macs_after > target:
            low = mid
        else:
            high = mid
    reached = f"{best.macs_after / 1e9:.3g}G" if best else "nothing"
    raise IsodeployError(
        f"--target-macs {target / 1e9:.3g}G is unreachable with these ratios and --max-group-ratio "
        f"{cfg.max_group_ratio} (closest: {reached}); raise --max-group-ratio or use --ratio")


def plan_for_classes(grouping: Grouping, scores: dict[int, torch.Tensor], cfg: PruneConfig, class_ratios: dict[int, float],
                     frozen: frozenset[int] | set[int] = frozenset()) -> PrunePlan:
    """The plan that removes ``class_ratios[c]`` of class ``c``'s channels (isomorphic ranking within
    the class, the usual rounding); classes not named, and ``frozen`` groups, stay dense."""
    for cid, ratio in class_ratios.items():
        if not 0.0 <= ratio < 1.0:
            raise IsodeployError(f"class {cid}: a fraction removed must be in [0, 1); got {ratio}")
    return _plan_at(grouping, scores, replace(cfg, ranking="isomorphic"), 1.0, plan_cost(grouping, {}), frozenset(frozen), dict(class_ratios))
