"""Confidence intervals for latency figures and their ratios: rank-based, distribution-free, exact.

Why rank-based: CPU timings on a shared machine are not normal. A round disturbed by another process
is an outlier of 30–300 %, and a mean or a Student-t interval follows it. The Wilcoxon signed-rank
interval around the Hodges–Lehmann estimate (the median of the Walsh averages) assumes only that the
per-round values are symmetric about their centre; one disturbed round moves it by one rank, not by
its size. On log values, so a ratio's interval is symmetric in the ratio's direction
(A ÷ B and B ÷ A get reciprocal bounds) and the estimate is a robust geometric mean.

* paired (one interleaved run, round *i* of A and of B saw the same machine): the one-sample
  signed-rank interval on ``log(a_i / b_i)``;
* unpaired (a CI gate: this run against a baseline recorded on another day): the Mann–Whitney
  interval for the shift between ``log(new)`` and ``log(base)``.

Both use the exact null distribution up to :data:`EXACT_LIMIT` / :data:`EXACT_RANK_SUM` samples (a small dynamic program)
and the normal approximation beyond it. The interval's *achieved* confidence is reported: with
fewer than 6 pairs no two-sided 95 % interval exists (the widest one, min to max, covers 1 − 2/2ⁿ),
and the verdict says so instead of guessing.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import lru_cache
from statistics import NormalDist
from typing import Sequence

CONFIDENCE = 0.95
EXACT_LIMIT = 60  # signed-rank pairs with an exact null distribution
EXACT_RANK_SUM = 40  # rank-sum samples per side with an exact null distribution (the DP grows as n²m²)
MIN_PAIRS_95 = 6  # the fewest pairs for which a two-sided 95 % signed-rank interval exists
PAIRED_METHOD = "Hodges-Lehmann estimate with Wilcoxon signed-rank 95 % interval over paired rounds (log ratios)"
UNPAIRED_METHOD = "Hodges-Lehmann shift with Mann-Whitney 95 % interval over the two runs' rounds (log latency)"

FASTER, SLOWER, SAME, TOO_FEW = "faster", "slower", "no measurable difference", "too few rounds"


@dataclass
class Interval:
    """An estimate with its interval; ``confidence`` is what the interval actually achieves."""

    value: float
    ci_low: float
    ci_high: float
    confidence: float
    n: int
    method: str

    @property
    def half_width(self) -> float:
        """The larger side of the interval, relative to the value (0.02 = ±2 %)."""
        if not self.value > 0:
            return math.inf
        return max(self.value - self.ci_low, self.ci_high - self.value) / self.value

    @property
    def verdict(self) -> str:
        """For a ratio of latencies (numerator ÷ denominator): does the interval exclude 1?"""
        return verdict_of(self.ci_low, self.ci_high, self.confidence)

    def to_dict(self) -> dict:
        return {**asdict(self), "verdict": self.verdict}


def verdict_of(low: float, high: float, confidence: float) -> str:
    if confidence < CONFIDENCE - 1e-9:
        return TOO_FEW
    if low > 1.0:
        return SLOWER
    if high < 1.0:
        return FASTER
    return SAME


@lru_cache(maxsize=None)
def _signed_rank_cdf(n: int) -> tuple[float, ...]:
    """P(T ≤ t) for t = 0 … n(n+1)/2, T the signed-rank statistic of n pairs under the null."""
    top = n * (n + 1) // 2
    counts = [0] * (top + 1)
    counts[0] = 1
    for rank in range(1, n + 1):  # each rank is in the positive set or not
        for s in range(top, rank - 1, -1):
            counts[s] += counts[s - rank]
    total, acc, cdf = 2 ** n, 0, []
    for c in counts:
        acc += c
        cdf.append(acc / total)
    return tuple(cdf)


@lru_cache(maxsize=None)
def _rank_sum_cdf(n: int, m: int) -> tuple[float, ...]:
    """P(U ≤ u) for u = 0 … n·m, U the Mann–Whitney statistic of samples of sizes n and m."""
    # f[i][j][u]: arrangements of i x's and j y's with U = u; built row by row to keep memory small
    prev = [[1] + [0] * (n * m) for _ in range(m + 1)]  # i = 0: U = 0 for every j
    for i in range(1, n + 1):
        cur = [[0] * (n * m + 1) for _ in range(m + 1)]
        cur[0][0] = 1
        for j in range(1, m + 1):
            for u in range(i * j + 1):
                # the largest element is an x (it beats all j y's) or a y
                cur[j][u] = (prev[j][u - j] if u >= j else 0) + cur[j - 1][u]
        prev = cur
    counts = prev[m]
    total, acc, cdf = math.comb(n + m, n), 0, []
    for c in counts:
        acc += c
        cdf.append(acc / total)
    return tuple(cdf)


def _lower_rank(cdf: Sequence[float] | None, n_stat: int, mean: float, sd: float, alpha: float) -> tuple[int, float]:
    """k (1-based) such that [x_(k), x_(M+1−k)] is the interval, and its achieved confidence."""
    if cdf is not None:
        k = 0
        while k + 1 < len(cdf) and cdf[k] <= alpha / 2:
            k += 1  # the largest c with P(T ≤ c) ≤ α/2 is k − 1
        if k == 0:
            return 1, 1 - 2 * cdf[0]
        return k, 1 - 2 * cdf[k - 1]
    z = NormalDist().inv_cdf(1 - alpha / 2)
    k = max(1, int(math.floor(mean - z * sd)) + 1)
    return k, 1 - alpha


def paired_interval(logs: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float, float, float]:
    """(estimate, low, high, achieved confidence) for the centre of ``logs`` (signed-rank, Hodges–Lehmann)."""
    xs = [x for x in logs if math.isfinite(x)]
    n = len(xs)
    if n == 0:
        raise ValueError("no values")
    walsh = sorted((xs[i] + xs[j]) / 2 for i in range(n) for j in range(i, n))
    m = len(walsh)
    estimate = _median(walsh)
    if n == 1:
        return estimate, estimate, estimate, 0.0
    alpha = 1 - confidence
    cdf = _signed_rank_cdf(n) if n <= EXACT_LIMIT else None
    k, achieved = _lower_rank(cdf, n, n * (n + 1) / 4, math.sqrt(n * (n + 1) * (2 * n + 1) / 24), alpha)
    k = min(k, (m + 1) // 2)
    return estimate, walsh[k - 1], walsh[m - k], achieved


def shift_interval(new: Sequence[float], base: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float, float, float]:
    """(estimate, low, high, achieved confidence) of the shift ``new − base`` (Mann–Whitney, Hodges–Lehmann)."""
    xs = [x for x in new if math.isfinite(x)]
    ys = [y for y in base if math.isfinite(y)]
    n, m = len(xs), len(ys)
    if not n or not m:
        raise ValueError("no values")
    diffs = sorted(x - y for x in xs for y in ys)
    total = len(diffs)
    estimate = _median(diffs)
    if total == 1:
        return estimate, estimate, estimate, 0.0
    alpha = 1 - confidence
    cdf = _rank_sum_cdf(n, m) if max(n, m) <= EXACT_RANK_SUM else None
    k, achieved = _lower_rank(cdf, total, n * m / 2, math.sqrt(n * m * (n + m + 1) / 12), alpha)
    k = min(k, (total + 1) // 2)
    return estimate, diffs[k - 1], diffs[total - k], achieved


def ratio_interval(numerator: Sequence[float], denominator: Sequence[float], scale: float = 1.0,
                   confidence: float = CONFIDENCE) -> Interval:
    """Paired ratio ``numerator_i ÷ denominator_i`` (× ``scale``, e.g. a MAC factor) over rounds."""
    logs = [math.log(a / b) for a, b in zip(numerator, denominator) if a > 0 and b > 0]
    est, low, high, achieved = paired_interval(logs, confidence)
    return Interval(scale * math.exp(est), scale * math.exp(low), scale * math.exp(high), achieved, len(logs), PAIRED_METHOD)


def location_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> Interval:
    """The centre of one artifact's per-round latencies (for error bars), on the log scale."""
    logs = [math.log(v) for v in values if v > 0]
    est, low, high, achieved = paired_interval(logs, confidence)
    return Interval(math.exp(est), math.exp(low), math.exp(high), achieved, len(logs), PAIRED_METHOD.replace("over paired rounds (log ratios)", "over rounds (log latency)"))


def change_interval(new: Sequence[float], base: Sequence[float], confidence: float = CONFIDENCE) -> Interval:
    """Unpaired ratio new ÷ base of two runs' per-round latencies (the CI gate)."""
    est, low, high, achieved = shift_interval([math.log(v) for v in new if v > 0], [math.log(v) for v in base if v > 0], confidence)
    return Interval(math.exp(est), math.exp(low), math.exp(high), achieved, min(len(new), len(base)), UNPAIRED_METHOD)


def rounds_needed(interval: Interval, target: float) -> int:
    """Rounds at which the interval would shrink to ±``target`` (half-width falls as 1/√n)."""
    hw = interval.half_width
    if not math.isfinite(hw) or hw <= 0:
        return interval.n
    return max(interval.n, math.ceil(interval.n * (hw / target) ** 2))


def _median(sorted_xs: list[float]) -> float:
    m = len(sorted_xs)
    mid = m // 2
    return sorted_xs[mid] if m % 2 else (sorted_xs[mid - 1] + sorted_xs[mid]) / 2
