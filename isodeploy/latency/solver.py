"""From a latency table to per-class cuts: the latency model and a multiple-choice knapsack.

**Latency model.** For class *c* cut to width *w*, the table gives the whole model's latency ratio
r_c(w) with every other class dense (linear between measured steps; the steps themselves are what the
solver picks, so flat stretches of a staircase are never paid for). Cuts of several classes add up,
except where two cut classes meet in one op (an MLP's fc1 is embedding × hidden): there the
additive sum counts the removed MACs twice. Those cross terms are priced from the exact MAC count
(``plan_cost``) at the table's fitted latency per MAC::

    ratio(w) = 1 − Σ_c (1 − r_c(w_c)) + slope · (MACs(w) − MACs_additive(w)) / MACs_dense

**Solver.** Each class picks one option (dense or one measured step) — a multiple-choice knapsack:
keep the most importance subject to saving enough latency. Solved exactly by dynamic programming
over latency saved in 1/2000ths of the dense latency (classes × steps × 2000 cells: milliseconds).
Exact rather than greedy because latency is a staircase: a greedy walk by importance per
millisecond stalls on flat steps and cannot trade one class's big step for two small ones.

**Value of an option.** Importance is not comparable across classes (the paper's point), so an
option's loss is the parameters it removes, weighted by how important the removed channels are
within their class: ``params removed × (importance share removed ÷ channel share removed)``. The
ranking inside a class stays the isomorphic one; the solver only decides how much each class gives.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable

from isodeploy.latency.table import ClassTable, LatencyTable

BINS = 2000
SUBSTEPS = 4  # options per measured drop: the step itself and 3 widths inside it


@dataclass(frozen=True)
class Option:
    """One choice for one class: keep ``keep`` of its channels (1.0 = dense)."""

    class_id: int
    keep: float
    width: int
    saved: float  # latency saved, as a fraction of the dense latency (1 − ratio)
    macs_saved: int
    loss: float  # importance-weighted parameters removed

    def to_dict(self) -> dict:
        return asdict(self)


def interpolate(ct: ClassTable, width: float) -> tuple[float, float]:
    """(ratio, MACs-fraction-of-the-dense-point) of class ``ct`` at ``width``, linear between measured steps."""
    pts = [(w, r, m) for w, r, m in ct.points()]
    if width >= pts[-1][0]:
        return 1.0, 0.0
    if width <= pts[0][0]:
        return pts[0][1], float(pts[0][2])
    for (w0, r0, m0), (w1, r1, m1) in zip(pts, pts[1:]):
        if w0 <= width <= w1:
            t = (width - w0) / (w1 - w0) if w1 > w0 else 0.0
            return r0 + t * (r1 - r0), float(m0 if m1 < 0 else m0 + t * (m1 - m0))
    return 1.0, 0.0


def fit_slope(table: LatencyTable) -> float:
    """Latency ratio per fraction of dense MACs removed, least squares through the origin over all steps."""
    xs, ys = [], []
    for c in table.classes:
        for s in c.steps:
            xs.append((table.dense_macs - s.macs) / table.dense_macs)
            ys.append(1.0 - s.ratio)
    sxx = sum(x * x for x in xs)
    return sum(x * y for x, y in zip(xs, ys)) / sxx if sxx > 0 else 0.0


def predict(table: LatencyTable, options: dict[int, Option], macs_exact: int) -> float:
    """The latency ratio of a set of per-class options, with the cross terms priced by MACs."""
    saved = sum(o.saved for o in options.values())
    macs_additive = table.dense_macs - sum(o.macs_saved for o in options.values())
    cross = table.slope * (macs_exact - macs_additive) / table.dense_macs
    return max(1e-3, 1.0 - saved + cross)


def class_options(ct: ClassTable, dense_macs: int, realize: Callable[[float], tuple[float, int]], noise: float,
                  between: int = SUBSTEPS) -> list[Option]:
    """Dense, every measured step where latency actually drops, and ``between - 1`` widths between two such
    steps (latency and MACs linear there). ``realize(keep)`` gives an option's loss and the width the
    plan's rounding really leaves; a width that rounds back to dense or repeats another is no option.

    The staircase is kept: a step that saves no more than a wider one (within the noise) is no option —
    it costs capacity and buys nothing — and it moves the start of the next drop to its own width, so
    interpolation never runs across a flat stretch."""
    out = [Option(ct.class_id, 1.0, ct.width, 0.0, 0, 0.0)]
    seen = {ct.width}
    best, flat_width, flat_macs = 0.0, ct.width, 0
    for s in sorted(ct.steps, key=lambda s: -s.width):
        saved, macs_saved = 1.0 - s.ratio, dense_macs - s.macs
        if saved <= best + noise:  # flat: the drop starts below this width
            flat_width, flat_macs = s.width, max(flat_macs, macs_saved)
            continue
        span = max(1, flat_width - s.width)
        for k in range(1, between):
            keep = (flat_width - k / between * (flat_width - s.width)) / ct.width
            loss, width = realize(keep)
            if width in seen or not s.width < width < flat_width:
                continue
            seen.add(width)
            t = (flat_width - width) / span  # the saving at the width the rounding really leaves
            out.append(Option(ct.class_id, keep, width, best + t * (saved - best), int(flat_macs + t * (macs_saved - flat_macs)), loss))
        loss, width = realize(s.keep)
        if width not in seen:
            seen.add(width)
            out.append(Option(ct.class_id, s.keep, s.width, saved, macs_saved, loss))
        best, flat_width, flat_macs = saved, s.width, macs_saved
    return out


def solve(options: dict[int, list[Option]], need: float, bins: int = BINS) -> dict[int, Option] | None:
    """The options (one per class) that save at least ``need`` of the dense latency with the least loss;
    None when even the deepest cuts save less."""
    need_b = max(0, math.ceil(need * bins - 1e-9))
    inf = math.inf
    dp = [0.0] + [inf] * need_b
    back: list[tuple[int, list[tuple[int, int] | None]]] = []
    for cid, opts in options.items():
        new = [inf] * (need_b + 1)
        arg: list[tuple[int, int] | None] = [None] * (need_b + 1)
        for b, cost in enumerate(dp):
            if cost == inf:
                continue
            for j, o in enumerate(opts):
                nb = min(need_b, b + max(0, int(o.saved * bins)))  # floor: never credit more than measured
                c = cost + o.loss
                if c < new[nb]:
                    new[nb], arg[nb] = c, (b, j)
        dp = new
        back.append((cid, arg))
    if dp[need_b] == inf:
        return None
    chosen: dict[int, Option] = {}
    b = need_b
    for cid, arg in reversed(back):
        prev, j = arg[b]
        chosen[cid] = options[cid][j]
        b = prev
    return chosen
