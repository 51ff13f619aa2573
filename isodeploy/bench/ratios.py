"""Ratios between artifacts measured in one interleaved run, each with its spread.

Latency ratios are computed round by round (the artifacts ran A B C A B C …, so round *i* of every
artifact saw the same machine state) and summarised by the median of the per-round ratios, their
min–max and their IQR: a noisy machine shows up as a wide interval rather than a wrong number. Memory
ratios pair the repeats of the fresh-process probe the same way.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Iterable

from isodeploy.bench.report import BenchResult, markdown_table, percentile

#: (numerator role, denominator role): the comparisons a pruned-vs-uniform report exists for
ROLE_PAIRS = (("pruned", "uniform-twin"), ("pruned", "dense"), ("uniform-twin", "dense"), ("pruned", "standard"))
METRICS = {"latency": "latency (p50 per round)", "latency_per_gmac": "latency per GMAC", "peak_memory": "peak memory (delta)"}


@dataclass
class RatioFigure:
    metric: str  # latency | latency_per_gmac | peak_memory
    numerator: str  # label
    denominator: str
    numerator_role: str
    denominator_role: str
    variant: str  # runtime variant, e.g. ort, torch+fp16
    device: str
    median: float
    low: float
    high: float
    q1: float
    q3: float
    n: int  # rounds (latency) or probe repeats (memory)

    def describe(self) -> str:
        spread = f"{self.low:.3f}–{self.high:.3f}" if self.n > 1 else "one sample"
        return f"{self.median:.3f}× (min–max {spread}, IQR {self.q1:.3f}–{self.q3:.3f}, n={self.n})"


def summarise(values: list[float]) -> tuple[float, float, float, float, float]:
    xs = sorted(values)
    return percentile(xs, 50), xs[0], xs[-1], percentile(xs, 25), percentile(xs, 75)


def _figure(metric: str, a: BenchResult, b: BenchResult, values: list[float]) -> RatioFigure | None:
    values = [v for v in values if v == v and v > 0]
    if not values:
        return None
    med, lo, hi, q1, q3 = summarise(values)
    return RatioFigure(metric, a.label, b.label, a.role, b.role, a.variant, a.device, med, lo, hi, q1, q3, len(values))


def pair_ratios(a: BenchResult, b: BenchResult) -> list[RatioFigure]:
    """a ÷ b for latency, latency per GMAC and peak memory (where both sides have the figure)."""
    out: list[RatioFigure] = []
    ra, rb = a.latency.rounds_ms or [a.latency.p50_ms], b.latency.rounds_ms or [b.latency.p50_ms]
    per_round = [x / y for x, y in zip(ra, rb) if y > 0]
    for metric, values in (("latency", per_round),
                           ("latency_per_gmac", [v * (b.macs / a.macs) for v in per_round] if a.macs and b.macs else [])):
        fig = _figure(metric, a, b, values)
        if fig:
            out.append(fig)
    if a.memory and b.memory and a.memory.method_id == b.memory.method_id:
        sa = a.memory.samples_mb or [a.memory.delta_mb if a.memory.delta_mb is not None else a.memory.peak_mb]
        sb = b.memory.samples_mb or [b.memory.delta_mb if b.memory.delta_mb is not None else b.memory.peak_mb]
        fig = _figure("peak_memory", a, b, [x / y for x, y in zip(sa, sb) if y and y > 0])
        if fig:
            out.append(fig)
    return out


def compute_ratios(results: Iterable[BenchResult]) -> list[RatioFigure]:
    """Every role pair present, per runtime variant and device; without roles, each artifact vs the first."""
    results = list(results)
    groups: dict[tuple[str, str], list[BenchResult]] = {}
    for r in results:
        groups.setdefault((r.variant, r.device), []).append(r)
    out: list[RatioFigure] = []
    for members in groups.values():
        by_role = {r.role: r for r in members if r.role}
        if by_role:
            for num, den in ROLE_PAIRS:
                if num in by_role and den in by_role:
                    out += pair_ratios(by_role[num], by_role[den])
        else:
            ref = members[0]
            for r in members[1:]:
                out += pair_ratios(r, ref)
    return out


def as_dicts(figures: list[RatioFigure]) -> list[dict[str, Any]]:
    return [asdict(f) for f in figures]


def find(ratios: list[dict[str, Any]], metric: str, num_role: str, den_role: str, variant: str | None = None) -> dict[str, Any] | None:
    for r in ratios:
        if r["metric"] == metric and r["numerator_role"] == num_role and r["denominator_role"] == den_role and variant in (None, r["variant"]):
            return r
    return None


def describe(r: dict[str, Any]) -> str:
    return RatioFigure(**r).describe()


def ratio_table(ratios: list[dict[str, Any]]) -> str:
    header = ["ratio", "runtime", "device", "metric", "median", "min–max", "IQR", "n"]
    rows = []
    for r in ratios:
        name = f"{r['numerator_role'] or r['numerator']} ÷ {r['denominator_role'] or r['denominator']}"
        rows.append([name, r["variant"], r["device"], METRICS.get(r["metric"], r["metric"]), f"{r['median']:.3f}×",
                     f"{r['low']:.3f}–{r['high']:.3f}", f"{r['q1']:.3f}–{r['q3']:.3f}", str(r["n"])])
    return markdown_table(header, rows)
