"""Ratios between artifacts measured in one interleaved run, each with a 95 % interval and a verdict.

Latency ratios pair round *i* of one artifact with round *i* of the other (the rounds are interleaved,
so both saw the same machine state; ``round_ids`` say which rounds an artifact ran). The value is the
Hodges–Lehmann estimate of the per-round log ratios (a robust geometric mean) and the interval the
Wilcoxon signed-rank one (:mod:`isodeploy.benchmarking.stats`); the verdict follows the interval. The median,
min–max and IQR of the per-round ratios stay beside it for readers who want the raw spread. Memory
ratios pair the repeats of the fresh-process probe the same way; one probe each gives no interval.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Iterable

from isodeploy.benchmarking.report import BenchResult, markdown_table, percentile
from isodeploy.benchmarking.stats import ratio_interval

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
    n: int  # paired rounds (latency) or probe repeats (memory)
    value: float = 0.0  # Hodges–Lehmann estimate over the pairs (a robust geometric mean)
    ci_low: float = 0.0
    ci_high: float = 0.0
    confidence: float = 0.0  # what the interval achieves; below 0.95 → verdict "too few rounds"
    method: str = ""
    verdict: str = ""  # faster | slower | no measurable difference | too few rounds (numerator vs denominator)

    def describe(self) -> str:
        if self.confidence < 0.95 - 1e-9:
            return f"{self.value:.3f}× (n={self.n}: too few rounds for a 95 % interval)"
        return f"{self.value:.3f}× (95 % CI {self.ci_low:.3f}–{self.ci_high:.3f}, n={self.n})"

    def sentence(self) -> str:
        """The verdict in words, numerator against denominator: what a report's reader needs."""
        ci = f"{self.value:.3f}×, 95 % CI {self.ci_low:.3f}–{self.ci_high:.3f}, n={self.n}"
        if self.verdict == "faster":
            return f"{(1 - self.value) * 100:.1f} % faster ({ci})"
        if self.verdict == "slower":
            return f"{(self.value - 1) * 100:.1f} % slower ({ci})"
        if self.verdict == "no measurable difference":
            return f"**no measurable difference** ({ci})"
        return f"not decided: {self.value:.3f}× from {self.n} paired rounds, too few for a 95 % interval"


def summarise(values: list[float]) -> tuple[float, float, float, float, float]:
    xs = sorted(values)
    return percentile(xs, 50), xs[0], xs[-1], percentile(xs, 25), percentile(xs, 75)


def _figure(metric: str, a: BenchResult, b: BenchResult, xs: list[float], ys: list[float], scale: float = 1.0) -> RatioFigure | None:
    kept = [(x, y) for x, y in zip(xs, ys) if x == x and y == y and x > 0 and y > 0]
    if not kept:
        return None
    med, lo, hi, q1, q3 = summarise([scale * x / y for x, y in kept])
    iv = ratio_interval([x for x, _ in kept], [y for _, y in kept], scale)
    return RatioFigure(metric, a.label, b.label, a.role, b.role, a.variant, a.device, med, lo, hi, q1, q3, len(kept),
                       value=iv.value, ci_low=iv.ci_low, ci_high=iv.ci_high, confidence=iv.confidence, method=iv.method, verdict=iv.verdict)


def paired_rounds(a: BenchResult, b: BenchResult) -> tuple[list[float], list[float]]:
    """Per-round medians of ``a`` and ``b`` over the rounds both ran (by round id when recorded)."""
    ra, rb = a.latency.rounds_ms or [a.latency.p50_ms], b.latency.rounds_ms or [b.latency.p50_ms]
    ia, ib = a.latency.round_ids, b.latency.round_ids
    if len(ia) == len(ra) and len(ib) == len(rb) and ia and ib:
        by_id = dict(zip(ib, rb))
        pairs = [(x, by_id[i]) for i, x in zip(ia, ra) if i in by_id]
        return [x for x, _ in pairs], [y for _, y in pairs]
    n = min(len(ra), len(rb))
    return list(ra[:n]), list(rb[:n])


def pair_ratios(a: BenchResult, b: BenchResult) -> list[RatioFigure]:
    """a ÷ b for latency, latency per GMAC and peak memory (where both sides have the figure)."""
    out: list[RatioFigure] = []
    xs, ys = paired_rounds(a, b)
    figs = [_figure("latency", a, b, xs, ys)]
    if a.macs and b.macs:
        figs.append(_figure("latency_per_gmac", a, b, xs, ys, b.macs / a.macs))
    if a.memory and b.memory and a.memory.method_id == b.memory.method_id:
        sa = a.memory.samples_mb or [a.memory.delta_mb if a.memory.delta_mb is not None else a.memory.peak_mb]
        sb = b.memory.samples_mb or [b.memory.delta_mb if b.memory.delta_mb is not None else b.memory.peak_mb]
        figs.append(_figure("peak_memory", a, b, list(sa), list(sb)))
    return [f for f in figs if f]


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
    """The ratios (pruned ÷ twin, ÷ dense, ÷ standard) with value, 95 % interval, verdict and n, as Markdown."""
    header = ["ratio", "runtime", "device", "metric", "value", "95 % CI", "verdict", "n", "min–max of rounds"]
    rows = []
    for r in ratios:
        name = f"{r['numerator_role'] or r['numerator']} ÷ {r['denominator_role'] or r['denominator']}"
        decided = r.get("confidence", 0) >= 0.95 - 1e-9
        rows.append([name, r["variant"], r["device"], METRICS.get(r["metric"], r["metric"]), f"{r.get('value', r['median']):.3f}×",
                     f"{r['ci_low']:.3f}–{r['ci_high']:.3f}" if decided else "-", r.get("verdict") or "-", str(r["n"]),
                     f"{r['low']:.3f}–{r['high']:.3f}"])
    return markdown_table(header, rows)
