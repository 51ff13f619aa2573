"""Build a latency table: for every isomorphic class, cut that class alone to each grid step and time
the whole model against the dense one on the target runtime.

One class at a time, the whole model each time: every group of a class has the same topology, so
the class's total width prices it, and timing the whole model keeps whatever the runtime does
around the class (fusions, layout changes) in the number. Cost: classes × steps measurements — 4 × 6
for a DeiT, 9 × 6 for a ResNet-50 — each a few seconds on a CPU.
"""

from __future__ import annotations

import copy
import statistics
import time
from typing import Any, Callable

import torch

from isodeploy.core.errors import IsodeployError
from isodeploy.graph.analysis import Grouping
from isodeploy.latency.table import ClassTable, LatencyTable, Step
from isodeploy.pruning.apply import apply_keep
from isodeploy.pruning.plan import PruneConfig, plan_for_classes
from isodeploy.pruning.cost import plan_cost

DEFAULT_GRID = (0.875, 0.75, 0.625, 0.5, 0.375, 0.25)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:160]}" if text else type(exc).__name__


def build_table(model: torch.nn.Module, grouping: Grouping, scores: dict[int, torch.Tensor], cfg: PruneConfig, measurer: Any, *,
                key: str, fingerprint: dict[str, Any], grid: tuple[float, ...] = DEFAULT_GRID, frozen: frozenset[int] = frozenset(),
                say: Callable[[str], None] = lambda _m: None) -> LatencyTable:
    """Measure every class at every grid step (a class whose variants fail to build or run is recorded as unmeasurable)."""
    from isodeploy.benchmarking.loadwatch import LoadWatch

    watch = LoadWatch()
    start = time.perf_counter()
    macs0, params0 = plan_cost(grouping, {})
    total = len(grouping.classes) * len(grid)
    done = 0
    dense_ms: list[float] = []
    classes: list[ClassTable] = []
    for n, iso in enumerate(grouping.classes, 1):
        width = sum(grouping.groups[i].width for i in iso.group_ids)
        ct = ClassTable(class_id=iso.id, kind=iso.kind, signature=iso.signature, width=width, groups=len(iso.group_ids))
        classes.append(ct)
        if any(i in frozen for i in iso.group_ids):
            ct.unmeasurable = "frozen: the self-check found it unsafe to prune"
            done += len(grid)
            continue
        seen = {width}
        for keep in grid:
            done += 1
            try:
                plan = plan_for_classes(grouping, scores, cfg, {iso.id: 1.0 - keep}, frozen)
            except IsodeployError:
                break  # every group at its --max-group-ratio floor: narrower steps do not exist
            kept = sum(plan.widths_after[i] for i in iso.group_ids)
            if kept in seen:
                continue  # rounding made this step the same width as one already measured
            seen.add(kept)
            try:
                variant = copy.deepcopy(model)
                apply_keep(variant, grouping, plan.keep)
                paired = measurer.ratio_of(variant, f"class {iso.id} ({iso.kind}) at {kept}/{width}")
            except Exception as exc:  # an export or runtime failure of one class: the solver keeps it dense
                ct.unmeasurable = f"its cut variant does not export or run ({_first_line(exc)})"
                ct.steps.clear()
                break
            r = paired.ratio
            ct.steps.append(Step(keep=keep, width=kept, ratio=r.value, ci_low=r.ci_low, ci_high=r.ci_high, macs=plan.macs_after,
                                 params=plan.params_after, rounds=paired.rounds))
            dense_ms.append(paired.dense_ms.value)
            elapsed = time.perf_counter() - start
            eta = elapsed / done * (total - done)
            say(f"latency table: class {n}/{len(grouping.classes)} ({iso.kind}, {len(iso.group_ids)} groups) at {kept}/{width} "
                f"channels: {r.value:.3f}× dense (±{r.half_width:.1%}) · {elapsed:.0f} s, ETA {eta:.0f} s")
    if not dense_ms:
        raise IsodeployError("no class of this model could be timed cut (every class is frozen or fails to export/run); "
                             "--target-latency needs at least one prunable class")
    steps = [s for c in classes for s in c.steps]
    noise = statistics.median((max(s.ratio - s.ci_low, s.ci_high - s.ratio) for s in steps)) if steps else 0.01
    table = LatencyTable(key=key, fingerprint=fingerprint, model=str(fingerprint.get("model")), dense_ms=statistics.median(dense_ms),
                         dense_ci_ms=[min(dense_ms), max(dense_ms)], dense_macs=macs0, dense_params=params0, classes=classes,
                         build_seconds=round(time.perf_counter() - start, 2), measurements=len(steps), noise=float(noise),
                         load=watch.stop().to_dict())
    from isodeploy.latency.solver import fit_slope

    table.slope = fit_slope(table)
    return table
