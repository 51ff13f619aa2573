"""The timing loops: interleaved rounds by a fixed count (paper/fixed) or until the intervals are tight.

An *entry* is one artifact on one runtime with a ready ``timed`` step (see :mod:`isodeploy.benchmarking.suite`);
each round appends that entry's step times as one list to ``entry.rounds`` and the round's index to
``entry.round_ids``, so ratios pair round *i* of A with round *i* of B even when B skipped rounds.

Adaptive rounds (the default):
* every entry warms up by time (``warmup_s``, at least one step), which also estimates its step time;
* each entry's steps in a round last at least ``min_block_s`` (tiny models run several steps);
* the entries of the headline ratios run in mirrored order — A B … B A — so a machine that speeds up
  or slows down linearly within a round affects both sides alike; the others run in the middle;
* an entry in no headline ratio (the expensive dense model) runs only while its share of the time is
  below ``rationed_share``, and until it has ``min_rounds`` rounds;
* the loop stops when every headline interval is within ±``target`` (after ``min_rounds``), when the
  next round would pass the budget, or at ``max_rounds``.

The budget is hard: it counts from the first warm-up step, and it is checked after every round, also
before ``min_rounds`` — on a slow or busy machine the report then says "too few rounds" rather than
taking the user's afternoon. The warm-up per artifact shrinks so that warm-ups take at most a
quarter of the budget.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from isodeploy.benchmarking.latency import round_sizes, time_steps
from isodeploy.benchmarking.progress import SilentReporter, Tick
from isodeploy.benchmarking.protocol import Protocol
from isodeploy.benchmarking.stats import Interval, location_interval, ratio_interval, rounds_needed


@dataclass
class TimingOutcome:
    """How the timing loop ended; lands in the report as ``protocol.stop``."""

    reason: str  # converged | budget | max rounds | fixed
    rounds: int
    elapsed_s: float
    headline: list[dict] = field(default_factory=list)  # the headline intervals when it stopped

    def to_dict(self) -> dict:
        return {"reason": self.reason, "rounds": self.rounds, "elapsed_s": round(self.elapsed_s, 2), "headline": self.headline}


def paired(a: Any, b: Any) -> tuple[list[float], list[float]]:
    """Per-round medians of two entries over the rounds both ran."""
    from isodeploy.benchmarking.report import percentile

    mb = {i: percentile(sorted(r), 50) for i, r in zip(b.round_ids, b.rounds) if r}
    xs, ys = [], []
    for i, r in zip(a.round_ids, a.rounds):
        if r and i in mb:
            xs.append(percentile(sorted(r), 50))
            ys.append(mb[i])
    return xs, ys


def headline_intervals(pairs: Sequence[tuple[Any, Any]], singles: Sequence[Any]) -> list[Interval]:
    out = []
    for a, b in pairs:
        xs, ys = paired(a, b)
        if xs:
            out.append(ratio_interval(xs, ys))
    for e in singles:
        from isodeploy.benchmarking.report import percentile

        values = [percentile(sorted(r), 50) for r in e.rounds if r]
        if values:
            out.append(location_interval(values))
    return out


def _label(e: Any) -> str:
    return f"{e.ref.label} ({e.runtime})"


def run_fixed(entries: list[Any], protocol: Protocol, reporter: Any = None, clock: Callable[[], float] = time.monotonic) -> TimingOutcome:
    """Warm-up steps, then ``iters`` timed steps per entry in plain interleaved rounds (A B C A B C …)."""
    reporter = reporter or SilentReporter()
    start = clock()
    sizes = round_sizes(protocol.iters, protocol.rounds)
    step_s: dict[int, float] = {}
    for e in entries:
        reporter.tick(Tick("warmup", _label(e), 0, len(sizes), clock() - start, None))
        if protocol.warmup:
            t0 = clock()
            time_steps(e.timed, warmup=protocol.warmup - 1, iters=1)
            step_s[id(e)] = (clock() - t0) / protocol.warmup
        e.warmup_steps = protocol.warmup
    for k, n in enumerate(sizes):
        for e in entries:
            elapsed = clock() - start
            remaining = sum(sizes[k:]) * sum(step_s.get(id(x), 0.0) for x in entries) or None
            reporter.tick(Tick("step", _label(e), k + 1, len(sizes), elapsed, remaining))
            times = time_steps(e.timed, warmup=0, iters=n)
            step_s[id(e)] = sum(times) / len(times) / 1000
            e.rounds.append(times)
            e.round_ids.append(k)
        remaining = sum(sizes[k + 1:]) * sum(step_s.values())
        reporter.tick(Tick("round", "all artifacts", k + 1, len(sizes), clock() - start, remaining))
    outcome = TimingOutcome("fixed", len(sizes), clock() - start)
    reporter.tick(Tick("done", f"{len(sizes)} rounds (fixed counts)", len(sizes), len(sizes), outcome.elapsed_s, 0.0))
    return outcome


def _warm_up(e: Any, warmup_s: float, clock: Callable[[], float]) -> float:
    """Run steps until ``warmup_s`` has passed (at least one); returns the last step's seconds."""
    t_start = clock()
    steps, last = 0, 0.0
    while True:
        t0 = clock()
        time_steps(e.timed, warmup=0, iters=1)
        last = clock() - t0
        steps += 1
        if clock() - t_start >= warmup_s:
            break
    e.warmup_steps = steps
    return max(last, 1e-6)


def run_adaptive(entries: list[Any], protocol: Protocol, pairs: Sequence[tuple[Any, Any]], singles: Sequence[Any] = (),
                 reporter: Any = None, clock: Callable[[], float] = time.monotonic) -> TimingOutcome:
    """Rounds until every headline interval (``pairs`` ratios, ``singles`` latencies) is tight, or the budget ends."""
    reporter = reporter or SilentReporter()
    start = clock()
    headline = list({id(e): e for e in [e for pair in pairs for e in pair] + list(singles)}.values())
    if not headline:
        headline = list(entries)
    in_headline = {id(e) for e in headline}
    rationed = [e for e in entries if id(e) not in in_headline]
    block: dict[int, int] = {}
    warmup_s = min(protocol.warmup_s, 0.25 * protocol.budget_s / max(1, len(entries)))
    for e in entries:
        reporter.tick(Tick("warmup", _label(e), 0, None, clock() - start, None))
        step = _warm_up(e, warmup_s, clock)
        block[id(e)] = max(1, math.ceil(protocol.min_block_s / step))
    spent: dict[int, float] = {id(e): 0.0 for e in entries}
    precision: float | None = None
    intervals: list[Interval] = []
    expected: int | None = None
    reason = "max rounds"
    rounds_done = 0
    slowest_round = 0.0
    for r in range(protocol.max_rounds):
        round_start = clock()
        total = sum(spent.values())
        tight = precision is not None and precision <= protocol.target
        middle = [e for e in rationed if r == 0 or spent[id(e)] <= protocol.rationed_share * total
                  or (tight and len(e.rounds) < protocol.min_rounds)]
        order = [(e, 0) for e in headline] + [(e, 1) for e in middle] + [(e, 1) for e in reversed(headline)]
        times: dict[int, list[float]] = {}
        for e, _ in order:
            elapsed = clock() - start
            reporter.tick(Tick("step", _label(e), r + 1, expected, elapsed, _eta(protocol, elapsed, r, expected, start, clock), precision, protocol.target))
            t0 = clock()
            times.setdefault(id(e), []).extend(time_steps(e.timed, warmup=0, iters=block[id(e)]))
            spent[id(e)] += clock() - t0
        for e, _ in order:
            if id(e) in times:
                e.rounds.append(times.pop(id(e)))
                e.round_ids.append(r)
        rounds_done = r + 1
        elapsed = clock() - start
        slowest_round = max(slowest_round, clock() - round_start)
        if rounds_done >= 2:
            intervals = headline_intervals(pairs, singles) if (pairs or singles) else [i for i in headline_intervals([], headline)]
            precision = max((iv.half_width for iv in intervals), default=None)
            expected = max((rounds_needed(iv, protocol.target) for iv in intervals), default=None)
            if expected is not None:
                expected = _within_reach(max(expected, protocol.min_rounds), protocol, elapsed, rounds_done, slowest_round)
        reporter.tick(Tick("round", "all artifacts", rounds_done, expected, elapsed,
                           _eta(protocol, elapsed, rounds_done, expected, start, clock), precision, protocol.target))
        if rounds_done >= protocol.min_rounds:
            converged = intervals and all(iv.half_width <= protocol.target and iv.confidence >= protocol.confidence - 1e-9 for iv in intervals)
            if converged and all(len(e.rounds) >= protocol.min_rounds for e in entries):
                reason = "converged"
                break
        # the next round is the slowest so far plus the mean (a busy spell lasts): never pass the budget
        if elapsed + max(slowest_round, elapsed / rounds_done) > protocol.budget_s:
            reason = "budget"
            break
    outcome = TimingOutcome(reason, rounds_done, clock() - start, [iv.to_dict() for iv in intervals])
    reporter.tick(Tick("done", f"{rounds_done} rounds, stopped: {reason}", rounds_done, rounds_done, outcome.elapsed_s, 0.0, precision, protocol.target))
    return outcome


def _within_reach(expected: int, protocol: Protocol, elapsed: float, rounds: int, slowest_round: float) -> int:
    """The rounds the intervals want, capped by ``max_rounds`` and by what the rest of the budget can still run."""
    per_round = max(elapsed / max(1, rounds), 1e-9)
    fits = rounds + int(max(0.0, protocol.budget_s - elapsed) // per_round)
    return max(rounds, min(expected, protocol.max_rounds, fits))


def _eta(protocol: Protocol, elapsed: float, rounds: int, expected: int | None, start: float, clock: Callable[[], float]) -> float | None:
    """Seconds left: the rounds the intervals still need at the pace so far, never past the budget."""
    left_budget = max(0.0, protocol.budget_s - elapsed)
    if rounds == 0:
        return left_budget
    per_round = elapsed / rounds
    need = max(expected or protocol.min_rounds, protocol.min_rounds) - rounds
    return min(left_budget, max(0, need) * per_round) if need > 0 else min(left_budget, per_round)
